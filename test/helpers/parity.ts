// What the parity tests (test/js-*-parity.test.ts) share: a call run on the native engine then
// on the JS engine, an outcome to compare (a value or an error code), a digest of bytes, a
// sorted listing, the read tests every provider runs. The engine chosen last stays set: each
// test sets what it needs.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  download,
  get,
  getDetailed,
  head,
  list,
  type ByteRange,
  type Progress,
  type StoreOptions,
} from '../../src/index.js';
import { faultProxy, type FaultProxy } from './fault-proxy.js';
import { everything, rejection } from './expect.js';
import { bytes, SENTINEL_SECRET, tempDir, useEngine } from './servers.js';

/** Restore OBJGET_ENGINE when the test file ends. */
export function restoreEngine(): void {
  const previous = process.env.OBJGET_ENGINE;
  afterAll(() => {
    if (previous === undefined) delete process.env.OBJGET_ENGINE;
    else process.env.OBJGET_ENGINE = previous;
  });
}

/** `fn` under the native engine, then under the JS engine. */
export async function both<T>(fn: (engine: 'native' | 'js') => Promise<T>): Promise<[T, T]> {
  useEngine('native');
  const a = await fn('native');
  useEngine('js');
  const b = await fn('js');
  return [a, b];
}

/** A call's outcome as something to compare: its value, or its error's code. */
export async function outcome<T>(p: Promise<T>): Promise<T | { error: string }> {
  return p.then(
    (v) => v,
    (e: { code?: string }) => ({ error: e.code ?? 'not a StorageError' }),
  );
}

export const digest = (b: Buffer): string =>
  `${b.length}:${createHash('sha256').update(b).digest('hex')}`;

/** Every listed object under `prefixUrl`, sorted by key. */
export async function listAll(prefixUrl: string, s: StoreOptions) {
  const out = [];
  for await (const o of list(prefixUrl, { store: s })) out.push(o);
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

/** Where a provider's parity test reads: the URL of a key, its store, a way to seed objects. */
export interface ReadTarget {
  url(key: string): string;
  store(): StoreOptions;
  put(objects: Record<string, Buffer>): Promise<void>;
  /** The checksum a verified whole read reports, when the store keeps one for every object. */
  algorithm?: string;
}

/**
 * The read tests every provider's parity test runs: objects of the sizes around a 64 KiB part,
 * read by get (whole and every kind of range), head, download in parallel parts (verified) and
 * getDetailed on both engines, with identical bytes, results and error codes.
 */
export function readsAlike(t: ReadTarget, prefix: string): void {
  const KiB = 1024;
  const SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 3 * 64 * KiB + 7];
  const seeded = (size: number): Buffer => bytes(size, size + 41);
  beforeAll(async () => {
    await t.put(Object.fromEntries(SIZES.map((size) => [`${prefix}/${size}`, seeded(size)])));
  });

  it('get, ranges and head: identical bytes, metadata and error codes', async () => {
    for (const size of SIZES) {
      const u = t.url(`${prefix}/${size}`);
      const ranges: (ByteRange | undefined)[] = [
        undefined,
        { suffix: 1 },
        { suffix: size + 5 },
        { offset: size },
        { offset: size, length: 1 },
        { offset: 0, length: Math.max(1, size) },
        { offset: Math.floor(size / 2), length: 70_000 },
      ];
      for (const range of ranges) {
        const [a, b] = await both(() =>
          outcome(get(u, { store: t.store(), range, partSize: 64 * KiB }).then(digest)),
        );
        expect(b, `${size} ${JSON.stringify(range)}`).toEqual(a);
      }
      const [ha, hb] = await both(() => head(u, { store: t.store() }));
      expect(hb).toEqual(ha);
    }
  });

  it('download in parallel parts: identical files and results', async () => {
    const dir = tempDir();
    for (const size of SIZES) {
      const u = t.url(`${prefix}/${size}`);
      const [a, b] = await both((e) =>
        download(u, join(dir, `${size}-${e}`), {
          store: t.store(),
          partSize: 64 * KiB,
          concurrency: 3,
          checksum: 'required',
        }),
      );
      const pick = (r: typeof a) => [r.bytes, r.etag, r.parts, r.checksum, r.resumedBytes];
      expect(pick(b), String(size)).toEqual(pick(a));
      expect(b.engine).toBe('js');
      if (t.algorithm) expect(b.checksum?.algorithm).toBe(t.algorithm);
      expect(readFileSync(join(dir, `${size}-js`)).equals(seeded(size))).toBe(true);
    }
    const [ga, gb] = await both(() =>
      getDetailed(t.url(`${prefix}/${SIZES.at(-1)}`), { store: t.store(), partSize: 64 * KiB }),
    );
    expect(gb.data.equals(ga.data)).toBe(true);
    expect([gb.result.parts, gb.result.checksum]).toEqual([ga.result.parts, ga.result.checksum]);
  });
}

/** A store behind a fault proxy: how to start one in front of it, and its store through one. */
export interface Proxied extends ReadTarget {
  proxy(
    fail: Parameters<typeof faultProxy>[1],
    options?: Parameters<typeof faultProxy>[2],
  ): Promise<FaultProxy>;
  through(proxyUrl: string, extra?: Partial<StoreOptions>): StoreOptions;
}

/** A body cut mid-way (once, by the proxy) is resumed from where it stopped on both engines,
 * byte-identical. */
export async function resumesAlike(t: Proxied, key: string): Promise<void> {
  const MiB = 1024 * 1024;
  const data = bytes(3 * MiB + 5, 3);
  await t.put({ [key]: data });
  for (const engine of ['native', 'js'] as const) {
    let cut = 0;
    // (Matched decoded: the native engine's GCS requests escape every byte but letters and digits.)
    const proxy = await t.proxy((req) =>
      req.method === 'GET' && decodeURIComponent(req.url ?? '').includes(key) && cut++ === 0
        ? { kind: 'reset', afterBytes: 100_000 }
        : false,
    );
    try {
      useEngine(engine);
      const dest = join(tempDir(), 'o.bin');
      const r = await download(t.url(key), dest, {
        store: t.through(proxy.url, { maxRetries: 3 }),
        partSize: MiB,
      });
      expect(proxy.failed, engine).toBe(1);
      expect(r.engine).toBe(engine);
      expect(readFileSync(dest).equals(data), engine).toBe(true);
    } finally {
      await proxy.close();
    }
  }
}

/** An object replaced once its download has started (pinned parts, served slowly by the proxy):
 * `Precondition` and no file, on both engines. */
export async function replacedAlike(t: Proxied, key: string): Promise<void> {
  const MiB = 1024 * 1024;
  const proxy = await t.proxy(() => false, { bytesPerSec: 2 * MiB });
  try {
    for (const engine of ['native', 'js'] as const) {
      await t.put({ [key]: bytes(4 * MiB, 6) });
      let replacing: Promise<void> | undefined;
      const dir = tempDir();
      useEngine(engine);
      const err = await rejection(
        download(t.url(key), join(dir, 'o.bin'), {
          store: t.through(proxy.url, { maxRetries: 0 }),
          partSize: MiB,
          concurrency: 1,
          onProgress: (p: Progress) => {
            if (p.bytes > 0) replacing ??= t.put({ [key]: bytes(4 * MiB, 7) });
          },
        }),
      );
      await replacing;
      expect(err.code, engine).toBe('Precondition');
      expect(readdirSync(dir)).toEqual([]);
    }
  } finally {
    await proxy.close();
  }
}

/** A store.credentials function that throws (its message holding a secret): `Unauthenticated`
 * on both engines, the secret shown nowhere. */
export async function throwingCredentialsAlike(u: string, s: StoreOptions): Promise<void> {
  const bad: StoreOptions = {
    ...s,
    maxRetries: 0,
    credentials: async () => {
      throw new Error(`vault said ${SENTINEL_SECRET}`);
    },
  };
  const [ea, eb] = await both(() => rejection(get(u, { store: bad })));
  expect(eb.code).toBe(ea.code);
  expect(eb.code).toBe('Unauthenticated');
  expect(everything(eb)).not.toContain(SENTINEL_SECRET);
}
