// The transfer engine: parts, pinning, cancellation and progress, on real servers.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { download, downloadMany, get, type Progress } from '../../src/index.js';
import { rejection } from '../helpers/expect.js';
import { clearFaults, fault, seedHttp } from '../helpers/fixture.js';
import type { EngineName } from '../helpers/matrix.js';
import { bytes, servers, tempDir, uniqueKey, type Backend } from '../helpers/servers.js';

const PART = 1024 * 1024;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function inflight(): Promise<number> {
  const r = await fetch(`${servers().http.url}/__stats`);
  return ((await r.json()) as { inflight: number }).inflight;
}

/**
 * A throttled object on the fixture that is replaced (a new version: new ETag) once the first
 * part has arrived, through the options' onProgress.
 */
async function replacedMidway(size: number, nextSeed: number) {
  const { url, file, path } = seedHttp(size, 'transfer', 17);
  await fault({ path, kind: 'throttle', bytesPerSec: 4 * PART });
  // Made before the download starts: generating it blocks this thread for a second or more on
  // a loaded machine, long enough for the whole download to finish before the replacement.
  const next = bytes(size, nextSeed);
  let replaced = false;
  const options = {
    partSize: PART,
    concurrency: 1,
    store: { maxRetries: 0 },
    onProgress: (p: Progress) => {
      if (!replaced && p.bytes >= PART) {
        replaced = true;
        writeFileSync(file, next);
      }
    },
  };
  return { url, replacing: { options, replaced: () => replaced } };
}

export function transfer(engine: EngineName, backend: Backend): void {
  afterEach(clearFaults);

  // The JS engine reads in parallel parts from S3 (http(s) and files in one stream).
  if (engine === 'native' || backend.name === 's3') {
    describe('part boundaries', () => {
      it(`sizes 0, 1, partSize-1, partSize, partSize+1, 3×partSize+7 to file and Buffer`, async () => {
        const prefix = uniqueKey(`parts-${backend.name}`);
        const dir = tempDir();
        for (const size of [0, 1, PART - 1, PART, PART + 1, 3 * PART + 7]) {
          const data = bytes(size, size + 99);
          await backend.put(`${prefix}/${size}`, data);
          const url = backend.url(`${prefix}/${size}`);
          const opts = { store: backend.store, partSize: PART, concurrency: 3 };
          const buf = await get(url, opts);
          expect(buf.length, `get ${size}`).toBe(size);
          expect(buf.equals(data), `get ${size}`).toBe(true);
          const r = await download(url, join(dir, String(size)), opts);
          expect(readFileSync(join(dir, String(size))).equals(data), `download ${size}`).toBe(true);
          if (backend.name !== 'file') expect(r.parts).toBe(Math.max(1, Math.ceil(size / PART)));
        }
      });

      if (backend.name === 's3') {
        it('300 MiB to file and to Buffer at default settings, byte-identical', async () => {
          const key = `${uniqueKey('large')}/300m.bin`;
          const data = bytes(300 * PART, 300);
          const want = sha(data);
          await backend.put(key, data);
          const dir = tempDir();
          const r = await download(backend.url(key), join(dir, 'large.bin'), {
            store: backend.store,
          });
          expect(r.bytes).toBe(data.length);
          expect(r.parts).toBe(Math.ceil(data.length / (8 * PART)));
          expect(sha(readFileSync(join(dir, 'large.bin')))).toBe(want);
          const buf = await get(backend.url(key), { store: backend.store });
          expect(buf.length).toBe(data.length);
          expect(sha(buf)).toBe(want);
        }, 180_000);
      }
    });
  }

  if (engine === 'native' && backend.name === 'http') {
    describe('pinned parts', () => {
      it('an object replaced mid-download fails with Precondition and leaves no file', async () => {
        const { url, replacing } = await replacedMidway(8 * PART, 18);
        const dir = tempDir();
        const err = await rejection(download(url, join(dir, 'x.bin'), replacing.options));
        expect(replacing.replaced()).toBe(true);
        expect(err.code).toBe('Precondition');
        expect(readdirSync(dir)).toEqual([]);
      });

      it('the same replacement into a Buffer is Precondition too', async () => {
        const { url, replacing } = await replacedMidway(6 * PART, 19);
        const err = await rejection(get(url, replacing.options));
        expect(err.code).toBe('Precondition');
      });
    });
  }

  if (backend.name === 'http') {
    describe('abort and progress', () => {
      it('abort: Aborted, no file, and no request still running a second later', async () => {
        const { url, path } = seedHttp(32 * PART, 'transfer', 17);
        await fault({ path, kind: 'throttle', bytesPerSec: 8 * PART });
        const dir = tempDir();
        const ac = new AbortController();
        let started = false;
        const p = download(url, join(dir, 'a.bin'), {
          partSize: 2 * PART,
          concurrency: 4,
          signal: ac.signal,
          onProgress: () => (started = true),
        });
        while (!started) await new Promise((r) => setTimeout(r, 10));
        expect(await inflight()).toBeGreaterThan(0);
        ac.abort();
        expect((await rejection(p)).code).toBe('Aborted');
        await new Promise((r) => setTimeout(r, 1000));
        expect(await inflight()).toBe(0);
        expect(readdirSync(dir)).toEqual([]);
      });

      it('progress: non-decreasing, ending at every byte and every part', async () => {
        const { url, path, data } = seedHttp(6 * PART + 5, 'transfer', 17);
        await fault({ path, kind: 'throttle', bytesPerSec: 4 * PART });
        const events: Progress[] = [];
        const r = await download(url, join(tempDir(), 'p.bin'), {
          partSize: PART,
          onProgress: (e) => events.push(e),
        });
        expect(events.length).toBeGreaterThan(1);
        for (let i = 1; i < events.length; i++) {
          expect(events[i]!.bytes).toBeGreaterThanOrEqual(events[i - 1]!.bytes);
        }
        const last = events.at(-1)!;
        expect(last.bytes).toBe(data.length);
        expect(last.total).toBe(data.length);
        expect(last.partsDone).toBe(last.partsTotal);
        expect(last.partsTotal).toBe(r.parts);
      });

      it('downloadMany progress carries each item index', async () => {
        const items = [
          seedHttp(1000, 'transfer', 17),
          seedHttp(2000, 'transfer', 17),
          seedHttp(3000, 'transfer', 17),
        ];
        const dir = tempDir();
        const finals = new Map<number, number>();
        await downloadMany(
          items.map((it, i) => ({ url: it.url, dest: join(dir, `${i}`) })),
          { onProgress: (p) => p.index !== undefined && finals.set(p.index, p.bytes) },
        );
        expect([...finals.entries()].sort()).toEqual([
          [0, 1000],
          [1, 2000],
          [2, 3000],
        ]);
      });

      for (const kind of ['no-ranges', 'weak-etag'] as const) {
        it(`a server with ${kind} is read in one stream, byte-identical`, async () => {
          const { url, path, data } = seedHttp(3 * PART + 11, 'transfer', 17);
          await fault({ path, kind });
          const dir = tempDir();
          const r = await download(url, join(dir, 'x.bin'), { partSize: PART });
          expect(r.parts).toBe(1);
          expect(readFileSync(join(dir, 'x.bin')).equals(data)).toBe(true);
          expect((await get(url, { partSize: PART })).equals(data)).toBe(true);
        });
      }

      it('durable: false still lands a complete file atomically', async () => {
        const { url, data } = seedHttp(2 * PART + 3, 'transfer', 17);
        const dir = tempDir();
        const r = await download(url, join(dir, 'n.bin'), { partSize: PART, durable: false });
        expect(r.bytes).toBe(data.length);
        expect(readdirSync(dir)).toEqual(['n.bin']);
        expect(readFileSync(join(dir, 'n.bin')).equals(data)).toBe(true);
      });

      it('bad part settings are InvalidArgument', async () => {
        const { url } = seedHttp(10, 'transfer', 17);
        expect((await rejection(get(url, { partSize: 1000 }))).code).toBe('InvalidArgument');
        expect((await rejection(get(url, { concurrency: 0 }))).code).toBe('InvalidArgument');
      });
    });
  }
}
