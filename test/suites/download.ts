// Reading: get, head, download and downloadMany of objects of every size, on every backend
// through both engines (the behaviour suite), and URLs and arguments refused before any request.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  download,
  downloadMany,
  DownloadManyError,
  get,
  head,
  type ErrorCode,
} from '../../src/index.js';
import { rejection } from '../helpers/expect.js';
import type { EngineName } from '../helpers/matrix.js';
import { bytes, tempDir, uniqueKey, type Backend } from '../helpers/servers.js';

/** The code of the StorageError a promise rejects with. */
async function code(p: Promise<unknown>): Promise<ErrorCode> {
  return (await rejection(p)).code;
}

const SIZES = [0, 1, 1000, 1024 * 1024 + 3];

export function reads(engine: EngineName, backend: Backend): void {
  const prefix = uniqueKey(`behaviour-${engine}-${backend.name}`);
  const data = new Map<number, Buffer>();
  beforeAll(async () => {
    for (const size of SIZES) {
      const d = bytes(size, size + 7);
      data.set(size, d);
      await backend.put(`${prefix}/obj-${size}`, d);
    }
  });
  const url = (size: number): string => backend.url(`${prefix}/obj-${size}`);
  const opts = { store: backend.store };

  if (!backend.js && engine === 'js') {
    it('answers NotSupported for a scheme only the native engine reads', async () => {
      expect(await code(get(url(1), opts))).toBe('NotSupported');
      expect(await code(download(url(1), join(tempDir(), 'x'), opts))).toBe('NotSupported');
    });
    return;
  }

  it('gets whole objects of every size', async () => {
    for (const size of SIZES) {
      const buf = await get(url(size), opts);
      expect(buf.length).toBe(size);
      expect(buf.equals(data.get(size)!)).toBe(true);
    }
  });

  it('gets ranges: bounded, open-ended and suffix', async () => {
    const size = 1024 * 1024 + 3;
    const d = data.get(size)!;
    const cases = [
      { range: { offset: 0, length: 1 }, want: d.subarray(0, 1) },
      { range: { offset: 12345, length: 70000 }, want: d.subarray(12345, 82345) },
      { range: { offset: size - 10 }, want: d.subarray(size - 10) },
      { range: { suffix: 4096 }, want: d.subarray(size - 4096) },
      { range: { offset: size - 5, length: 100 }, want: d.subarray(size - 5) },
      { range: { offset: 5, length: 0 }, want: Buffer.alloc(0) },
    ];
    for (const c of cases) {
      const buf = await get(url(size), { ...opts, range: c.range });
      expect(buf.equals(c.want), JSON.stringify(c.range)).toBe(true);
    }
  });

  it('heads: size, etag, last modified', async () => {
    const info = await head(url(1000), opts);
    expect(info.size).toBe(1000);
    expect(info.etag).toBeTruthy();
    expect(info.lastModified).toBeInstanceOf(Date);
    expect((await head(url(0), opts)).size).toBe(0);
  });

  it('downloads to a file, creating directories, leaving no temporary', async () => {
    const dir = tempDir();
    for (const size of SIZES) {
      const dest = join(dir, 'nested', `out-${size}.bin`);
      const r = await download(url(size), dest, opts);
      expect(r.engine).toBe(engine);
      expect(r.bytes).toBe(size);
      expect(r.elapsedMs).toBeGreaterThanOrEqual(0);
      expect(readFileSync(dest).equals(data.get(size)!)).toBe(true);
    }
    expect(readdirSync(join(dir, 'nested')).sort()).toEqual(
      SIZES.map((s) => `out-${s}.bin`).sort(),
    );
  });

  it('overwrites an existing destination atomically', async () => {
    const dir = tempDir();
    const dest = join(dir, 'same.bin');
    await download(url(1), dest, opts);
    await download(url(1000), dest, opts);
    expect(readFileSync(dest).equals(data.get(1000)!)).toBe(true);
  });

  it('downloadMany returns results in input order', async () => {
    const dir = tempDir();
    const items = [...SIZES, ...SIZES].map((size, i) => ({
      url: url(size),
      dest: join(dir, `${i}.bin`),
    }));
    const results = await downloadMany(items, { ...opts, concurrency: 3 });
    expect(results.map((r) => r.dest)).toEqual(items.map((i) => i.dest));
    for (const [i, r] of results.entries()) {
      expect(r.engine).toBe(engine);
      expect(readFileSync(items[i]!.dest).equals(data.get([...SIZES, ...SIZES][i]!)!)).toBe(true);
    }
  });

  it('downloadMany with a missing object rejects with every outcome and no partial file', async () => {
    const dir = tempDir();
    const items = [
      { url: url(1000), dest: join(dir, 'a.bin') },
      { url: backend.url(`${prefix}/missing`), dest: join(dir, 'b.bin') },
      { url: url(1), dest: join(dir, 'c.bin') },
    ];
    const err = await downloadMany(items, { ...opts, concurrency: 2 }).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadManyError);
    expect(err.code).toBe('NotFound');
    expect(err.failed).toBe(1);
    expect(err.outcomes.map((o: { status: string }) => o.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect(err.outcomes[1].reason.code).toBe('NotFound');
    expect(readdirSync(dir).sort()).toEqual(['a.bin', 'c.bin']);
  });

  it('a missing object is NotFound for get, head and download, and writes nothing', async () => {
    const missing = backend.url(`${prefix}/no-such-object`);
    expect(await code(get(missing, opts))).toBe('NotFound');
    expect(await code(head(missing, opts))).toBe('NotFound');
    const dir = tempDir();
    expect(await code(download(missing, join(dir, 'x.bin'), opts))).toBe('NotFound');
    expect(readdirSync(dir)).toEqual([]);
  });

  if (backend.wrongSecret) {
    it('a wrong secret is PermissionDenied or Unauthenticated', async () => {
      const c = await code(get(url(1), { store: backend.wrongSecret }));
      expect(['PermissionDenied', 'Unauthenticated']).toContain(c);
      const dir = tempDir();
      await code(download(url(1), join(dir, 'x'), { store: backend.wrongSecret }));
      expect(existsSync(join(dir, 'x'))).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    });
  }
}

export function badInput(): void {
  describe('bad input', () => {
    it('names the supported schemes for an unknown one', async () => {
      const e = await rejection(get('ftp://x/y'));
      expect(e.code).toBe('UnsupportedScheme');
      expect(e.message).toContain('s3://');
      expect(await code(download('ftp://x/y', join(tempDir(), 'y')))).toBe('UnsupportedScheme');
    });
    it('rejects URLs that name no object or do not parse', async () => {
      expect(await code(get('http://[::1'))).toBe('InvalidUrl');
      expect(await code(get(''))).toBe('InvalidUrl');
      expect(await code(head('http://127.0.0.1:9/'))).toBe('InvalidUrl');
    });
    it('rejects bad ranges and bad downloadMany arguments', async () => {
      expect(
        await code(get(fileURLToPath(import.meta.url), { range: { offset: -1, length: 2 } })),
      ).toBe('InvalidArgument');
      expect(await code(downloadMany([], { concurrency: 0 }))).toBe('InvalidArgument');
      expect(
        await code(downloadMany([{ url: 'x' } as unknown as { url: string; dest: string }])),
      ).toBe('InvalidArgument');
    });
  });
}
