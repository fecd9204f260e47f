// Which checksum verifies an object read in one request, on the real MinIO: a CRC stored with
// the object wins over the MD5 ETag (S3 withholds x-amz-checksum-* on a ranged GET, so the
// engine's first GET asks for the whole object: test/small-objects.test.ts counts the requests),
// and MD5 verifies only when it is all there is.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { download, getDetailed } from '../src/index.js';
import { rejection } from './helpers/expect.js';
import { bytes, s3Client, s3Store, servers, tempDir, uniqueKey } from './helpers/servers.js';

const PART = 1024 * 1024;

type Algorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME';

/** Put `data` with @aws-sdk: with `algorithm`, or with no checksum at all (an MD5 ETag only). */
async function put(key: string, data: Buffer, algorithm?: Algorithm): Promise<string | undefined> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const s = servers();
  // @aws-sdk adds a CRC32 to every PUT unless told to send checksums only when required.
  const c = await s3Client(algorithm ? {} : { requestChecksumCalculation: 'WHEN_REQUIRED' });
  try {
    const r = await c.send(
      new PutObjectCommand({
        Bucket: s.s3.bucket,
        Key: key,
        Body: data,
        ...(algorithm ? { ChecksumAlgorithm: algorithm } : {}),
      }),
    );
    return algorithm
      ? { CRC32: r.ChecksumCRC32, CRC32C: r.ChecksumCRC32C, CRC64NVME: r.ChecksumCRC64NVME }[
          algorithm
        ]
      : undefined;
  } finally {
    c.destroy();
  }
}

describe('an object read in one request', () => {
  const cases: [Algorithm, number][] = [
    ['CRC32', 1000],
    ['CRC32C', 300 * 1024],
    ['CRC64NVME', 700 * 1024 + 3],
  ];
  for (const [algorithm, size] of cases) {
    it(`stored with ${algorithm} (${size} bytes) is verified with ${algorithm}, not MD5`, async () => {
      const s = servers();
      const key = `${uniqueKey('pref')}/${algorithm}`;
      const data = bytes(size, size + 11);
      const sent = await put(key, data, algorithm);
      expect(sent).toBeTruthy();
      const url = `s3://${s.s3.bucket}/${key}`;
      const opts = { store: s3Store(s), partSize: PART, checksum: 'required' as const };
      const dest = join(tempDir(), 'o.bin');
      const r = await download(url, dest, opts);
      expect(r.engine).toBe('native');
      expect(r.parts).toBe(1);
      expect(r.checksum).toEqual({ algorithm: algorithm.toLowerCase(), value: sent });
      expect(readFileSync(dest).equals(data)).toBe(true);
      // Into a Buffer: the same.
      const g = await getDetailed(url, opts);
      expect(g.result.parts).toBe(1);
      expect(g.result.checksum).toEqual({ algorithm: algorithm.toLowerCase(), value: sent });
      expect(g.data.equals(data)).toBe(true);
    });
  }

  it('with only an MD5 ETag is still verified with MD5', async () => {
    const s = servers();
    const key = `${uniqueKey('pref')}/md5-only`;
    const data = bytes(5000, 23);
    await put(key, data);
    const url = `s3://${s.s3.bucket}/${key}`;
    const opts = { store: s3Store(s), partSize: PART, checksum: 'required' as const };
    const md5 = (await import('node:crypto')).createHash('md5').update(data).digest('base64');
    const r = await download(url, join(tempDir(), 'o.bin'), opts);
    expect(r.engine).toBe('native');
    expect(r.checksum).toEqual({ algorithm: 'md5', value: md5 });
    const g = await getDetailed(url, opts);
    expect(g.result.checksum).toEqual({ algorithm: 'md5', value: md5 });
    expect(g.data.equals(data)).toBe(true);
  });

  it('uploaded in parts with a composite CRC32 is not verified against it', async () => {
    // A composite checksum is a CRC of the parts' CRCs: without the upload's part boundaries
    // it cannot verify the whole bytes, and a multipart ETag is no MD5.
    const s = servers();
    const key = `${uniqueKey('pref')}/composite`;
    const data = bytes(10 * PART + 5, 31);
    const { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCommand } =
      await import('@aws-sdk/client-s3');
    const c = await s3Client();
    try {
      const Bucket = s.s3.bucket;
      const up = await c.send(
        new CreateMultipartUploadCommand({ Bucket, Key: key, ChecksumAlgorithm: 'CRC32' }),
      );
      const Parts = [];
      for (const [i, start] of [0, 5 * PART].entries()) {
        const Body = data.subarray(start, i === 0 ? 5 * PART : data.length);
        const part = { Bucket, Key: key, UploadId: up.UploadId, PartNumber: i + 1, Body };
        const r = await c.send(new UploadPartCommand({ ...part, ChecksumAlgorithm: 'CRC32' }));
        Parts.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 });
      }
      const done = await c.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key: key,
          UploadId: up.UploadId,
          MultipartUpload: { Parts },
        }),
      );
      expect(done.ChecksumCRC32).toMatch(/-2$/);
    } finally {
      c.destroy();
    }
    const url = `s3://${s.s3.bucket}/${key}`;
    const opts = { store: s3Store(s), partSize: 16 * PART };
    const dest = join(tempDir(), 'o.bin');
    const r = await download(url, dest, opts);
    expect(r.parts).toBe(1);
    expect(r.checksum).toBeUndefined();
    expect(readFileSync(dest).equals(data)).toBe(true);
    const err = await rejection(
      download(url, join(tempDir(), 'req.bin'), { ...opts, checksum: 'required' }),
    );
    expect(err.code).toBe('ChecksumUnavailable');
  });
});
