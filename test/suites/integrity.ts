// Integrity: the checksum each store advertises is verified, a corrupted byte is caught, and
// what `checksum` asks for is what happens, on real servers.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { download, get } from '../../src/index.js';
import { rejection } from '../helpers/expect.js';
import { clearFaults, fault, seedHttp } from '../helpers/fixture.js';
import type { EngineName } from '../helpers/matrix.js';
import {
  bytes,
  s3Client,
  servers,
  tempDir,
  uniqueKey,
  serves,
  type Backend,
} from '../helpers/servers.js';

const PART = 1024 * 1024;

export function integrity(engine: EngineName, backend: Backend): void {
  afterEach(clearFaults);

  if (serves(engine, backend, 'download')) {
    describe('each store’s own checksum is verified across parts', () => {
      // What each server advertises for an object written the way the tests write it: @aws-sdk
      // sends CRC32 by default and MinIO returns it on a HEAD; fake-gcs-server sends x-goog-hash
      // crc32c; Azurite stores the blob's MD5. The plain fixture and local files offer nothing.
      const want: Record<string, string | undefined> = {
        s3: 'crc32',
        gcs: 'crc32c',
        azure: 'md5',
        http: undefined,
        https: undefined,
        file: undefined,
      };
      it(`${want[backend.name] ?? 'nothing to verify'}, small and in parts`, async () => {
        const dir = tempDir();
        for (const size of [1000, 3 * PART + 7]) {
          const key = `${uniqueKey(`sum-${backend.name}`)}/${size}`;
          const data = bytes(size, size + 5);
          await backend.put(key, data);
          const opts = { store: backend.store, partSize: PART, concurrency: 3 };
          const r = await download(backend.url(key), join(dir, String(size)), opts);
          expect(readFileSync(join(dir, String(size))).equals(data)).toBe(true);
          // A small object is one ranged read, which carries no x-amz-checksum: S3's CRC comes
          // from a HEAD pinned to the ETag, as for an object in parts.
          expect(r.checksum?.algorithm, `${backend.name} ${size}`).toBe(want[backend.name]);
          if (want[backend.name] === undefined) {
            const err = await rejection(
              download(backend.url(key), join(dir, `req-${size}`), {
                ...opts,
                checksum: 'required',
              }),
            );
            expect(err.code).toBe('ChecksumUnavailable');
            expect(readdirSync(dir).some((f) => f.startsWith(`req-${size}`))).toBe(false);
          }
        }
      });

      if (backend.name === 's3') {
        for (const algorithm of ['CRC64NVME', 'CRC32C', 'SHA256'] as const) {
          it(`an object stored with ${algorithm} is verified with it, combined over 4 parts`, async () => {
            const s = servers();
            const key = `${uniqueKey('sum-alg')}/${algorithm}`;
            const data = bytes(3 * PART + 7, 77);
            const { PutObjectCommand } = await import('@aws-sdk/client-s3');
            const c = await s3Client();
            const put = await c.send(
              new PutObjectCommand({
                Bucket: s.s3.bucket,
                Key: key,
                Body: data,
                ChecksumAlgorithm: algorithm,
              }),
            );
            c.destroy();
            const dest = join(tempDir(), 'o.bin');
            const r = await download(backend.url(key), dest, {
              store: backend.store,
              partSize: PART,
              checksum: 'required',
            });
            expect(r.parts).toBe(4);
            expect(r.checksum?.algorithm).toBe(algorithm.toLowerCase());
            const sent = {
              CRC64NVME: put.ChecksumCRC64NVME,
              CRC32C: put.ChecksumCRC32C,
              SHA256: put.ChecksumSHA256,
            };
            expect(r.checksum?.value).toBe(sent[algorithm]);
            expect(readFileSync(dest).equals(data)).toBe(true);
            // A Buffer is verified the same way.
            expect(
              (
                await get(backend.url(key), {
                  store: backend.store,
                  partSize: PART,
                  checksum: 'required',
                })
              ).equals(data),
            ).toBe(true);
          });
        }
      }
    });
  }

  if (backend.name === 'http') {
    describe('a digest the server advertises', () => {
      it('is verified (RFC 9530 Repr-Digest, sha-256), to file and to Buffer', async () => {
        const o = seedHttp(3 * PART + 7, 'digest');
        await fault({ path: o.path, kind: 'digest' });
        const dest = join(tempDir(), 'd.bin');
        const r = await download(o.url, dest, { partSize: PART, checksum: 'required' });
        expect(r.checksum).toEqual({
          algorithm: 'sha256',
          value: (await import('node:crypto')).createHash('sha256').update(o.data).digest('base64'),
        });
        expect(readFileSync(dest).equals(o.data)).toBe(true);
        expect((await get(o.url, { partSize: PART, checksum: 'required' })).equals(o.data)).toBe(
          true,
        );
      });

      it('a byte corrupted by the server → ChecksumMismatch and no file', async () => {
        const o = seedHttp(3 * PART + 7, 'corrupt');
        // In the third part, so the native engine sees it in a parallel part, not the first.
        await fault({ path: o.path, kind: 'corrupt', at: 2 * PART + 12345 });
        const dir = tempDir();
        const err = await rejection(download(o.url, join(dir, 'c.bin'), { partSize: PART }));
        expect(err.code).toBe('ChecksumMismatch');
        expect(err.message).toMatch(/sha256 mismatch/);
        expect(readdirSync(dir)).toEqual([]);
        expect((await rejection(get(o.url, { partSize: PART }))).code).toBe('ChecksumMismatch');
        // With resume on, a corrupt download is not kept for later either.
        if (engine === 'native') {
          const again = await rejection(
            download(o.url, join(dir, 'c.bin'), { partSize: PART, resume: true }),
          );
          expect(again.code).toBe('ChecksumMismatch');
          expect(readdirSync(dir)).toEqual([]);
        }
        // checksum: 'off' really is off: the corrupted bytes arrive, unverified.
        const r = await download(o.url, join(dir, 'off.bin'), { partSize: PART, checksum: 'off' });
        expect(r.checksum).toBeUndefined();
        const got = readFileSync(join(dir, 'off.bin'));
        expect(got.equals(o.data)).toBe(false);
        expect(got[2 * PART + 12345]).toBe(o.data[2 * PART + 12345]! ^ 0xff);
      });

      it("'required' is refused for a range and a local file; a bad mode is InvalidArgument", async () => {
        const o = seedHttp(1000, 'required');
        expect(
          (await rejection(get(o.url, { range: { offset: 0, length: 10 }, checksum: 'required' })))
            .code,
        ).toBe('InvalidArgument');
        const dest = join(tempDir(), 'f.bin');
        expect((await rejection(download(o.file, dest, { checksum: 'required' }))).code).toBe(
          'ChecksumUnavailable',
        );
        expect(existsSync(dest)).toBe(false);
        expect(
          (await rejection(download(o.url, dest, { checksum: 'sometimes' as 'auto' }))).code,
        ).toBe('InvalidArgument');
      });
    });
  }
}
