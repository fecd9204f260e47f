// What a small object costs, counted at the real MinIO through a pass-through proxy: at defaults
// (verification on) one GET without a Range header per object, which S3 answers with the stored
// CRC, and no HEAD. A large object's first GET is the same unranged request, read for its first
// part only; its CRC comes with that reply, so it needs no HEAD either. With checksum 'off'
// nothing needs the CRC and the native engine's GETs are all ranged (the JS engine's first GET
// stays unranged: it learns the size from it). Both engines, the same requests otherwise.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { download, downloadMany, getDetailed } from '../src/index.js';
import type { StoreOptions } from '../src/index.js';
import { type FaultProxy, faultProxy } from './helpers/fault-proxy.js';
import {
  bytes,
  s3Client,
  s3Store,
  servers,
  tempDir,
  uniqueKey,
  useEngine,
} from './helpers/servers.js';

const PART = 1024 * 1024;

/** Every request the proxy passed, as `METHOD key [range]`. */
const seen: string[] = [];
let proxy: FaultProxy;
let store: StoreOptions;

beforeAll(async () => {
  const s = servers();
  proxy = await faultProxy(s.s3.endpoint, (req: http.IncomingMessage) => {
    const key = decodeURIComponent(req.url?.split('?')[0] ?? '');
    seen.push(`${req.method} ${key}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    return false;
  });
  const direct = s3Store(s);
  store = { ...direct, config: { ...direct.config, aws_endpoint: proxy.url } };
});
afterAll(() => proxy.close());

/** Put objects with @aws-sdk, which stores a CRC32 with each; their CRC32s (base64). */
async function put(objects: [string, Buffer][]): Promise<string[]> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  try {
    return await Promise.all(
      objects.map(async ([Key, Body]) => {
        const r = await c.send(new PutObjectCommand({ Bucket: servers().s3.bucket, Key, Body }));
        return r.ChecksumCRC32!;
      }),
    );
  } finally {
    c.destroy();
  }
}

/** The requests for `key`, with the path prefix (`/bucket/`) cut off. */
function requestsFor(key: string): string[] {
  return seen
    .filter((r) => r.split(' ')[1]?.endsWith(`/${key}`))
    .map((r) => r.replace(/ \/[^ ]*/, ''));
}

for (const engine of ['native', 'js'] as const) {
  describe(`${engine} engine`, () => {
    beforeEach(() => useEngine(engine));
    describe('a small object', () => {
      it('downloadMany at defaults: one unranged GET per object, no HEAD, verified by its CRC32', async () => {
        const prefix = uniqueKey('small');
        const objects = Array.from(
          { length: 12 },
          (_, i) => [`${prefix}/o${i}.bin`, bytes(1000 + i * 20_000, i + 3)] as [string, Buffer],
        );
        const crcs = await put(objects);
        const dir = tempDir();
        const results = await downloadMany(
          objects.map(([key]) => ({
            url: `s3://${servers().s3.bucket}/${key}`,
            dest: join(dir, key),
          })),
          { store, partSize: PART, concurrency: 4 },
        );
        objects.forEach(([key, data], i) => {
          expect(results[i]!.engine).toBe(engine);
          expect(requestsFor(key)).toEqual(['GET']);
          expect(results[i]!.parts).toBe(1);
          expect(results[i]!.checksum).toEqual({ algorithm: 'crc32', value: crcs[i] });
          expect(readFileSync(join(dir, key)).equals(data)).toBe(true);
        });
      });

      it('get at defaults: one unranged GET, no HEAD, verified by its CRC32', async () => {
        const key = `${uniqueKey('small-get')}/o.bin`;
        const data = bytes(300 * 1024, 41);
        const [crc] = await put([[key, data]]);
        const g = await getDetailed(`s3://${servers().s3.bucket}/${key}`, {
          store,
          partSize: PART,
        });
        expect(requestsFor(key)).toEqual(['GET']);
        expect(g.result.checksum).toEqual({ algorithm: 'crc32', value: crc });
        expect(g.data.equals(data)).toBe(true);
      });

      it('an empty object: one GET (no ranged GET answered 416 first)', async () => {
        const key = `${uniqueKey('small-empty')}/o.bin`;
        await put([[key, Buffer.alloc(0)]]);
        const dest = join(tempDir(), 'empty.bin');
        const r = await download(`s3://${servers().s3.bucket}/${key}`, dest, { store });
        expect(requestsFor(key)).toEqual(['GET']);
        expect(r.bytes).toBe(0);
        expect(readFileSync(dest)).toHaveLength(0);
      });

      it("with checksum 'off': one GET (ranged on the native engine), no HEAD", async () => {
        const key = `${uniqueKey('small-off')}/o.bin`;
        const data = bytes(5000, 43);
        await put([[key, data]]);
        const dest = join(tempDir(), 'off.bin');
        const r = await download(`s3://${servers().s3.bucket}/${key}`, dest, {
          store,
          partSize: PART,
          checksum: 'off',
        });
        expect(requestsFor(key)).toEqual([engine === 'native' ? `GET bytes=0-${PART - 1}` : 'GET']);
        expect(r.checksum).toBeUndefined();
        expect(readFileSync(dest).equals(data)).toBe(true);
      });
    });

    describe('a large object', () => {
      it('its first GET is unranged and read for one part, later parts ranged; no HEAD; CRC32 verified', async () => {
        const key = `${uniqueKey('large')}/o.bin`;
        const data = bytes(3 * PART + 5, 47);
        const [crc] = await put([[key, data]]);
        const url = `s3://${servers().s3.bucket}/${key}`;
        const dest = join(tempDir(), 'large.bin');
        const r = await download(url, dest, { store, partSize: PART, concurrency: 2 });
        const requests = requestsFor(key);
        expect(requests[0]).toBe('GET');
        expect(requests.slice(1).sort()).toEqual([
          `GET bytes=${PART}-${2 * PART - 1}`,
          `GET bytes=${2 * PART}-${3 * PART - 1}`,
          `GET bytes=${3 * PART}-${3 * PART + 4}`,
        ]);
        expect(r.parts).toBe(4);
        expect(r.checksum).toEqual({ algorithm: 'crc32', value: crc });
        expect(readFileSync(dest).equals(data)).toBe(true);
        // Into a Buffer: the same requests.
        seen.length = 0;
        const g = await getDetailed(url, { store, partSize: PART, concurrency: 2 });
        expect(requestsFor(key)).toHaveLength(4);
        expect(requestsFor(key)[0]).toBe('GET');
        expect(g.result.checksum).toEqual({ algorithm: 'crc32', value: crc });
        expect(g.data.equals(data)).toBe(true);
      });
    });
  });
}
