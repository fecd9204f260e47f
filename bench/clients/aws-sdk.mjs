// @aws-sdk/client-s3 used idiomatically: GetObject streamed to a file with pipeline, a
// concurrency limit for many objects, transformToByteArray for memory, and @aws-sdk/lib-storage's
// Upload (its own multipart defaults) for uploads.
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { job, pool, report, sha256 } from './common.mjs';

const s3 = new S3Client({
  endpoint: job.s3.endpoint,
  region: job.s3.region,
  forcePathStyle: true,
  credentials: { accessKeyId: job.s3.accessKeyId, secretAccessKey: job.s3.secretAccessKey },
  requestHandler: { httpAgent: { maxSockets: 256, keepAlive: true } },
});
const get = (Key) => s3.send(new GetObjectCommand({ Bucket: job.s3.bucket, Key }));
const toFile = async (key, dest) => {
  mkdirSync(dirname(dest), { recursive: true });
  await pipeline((await get(key)).Body, createWriteStream(dest));
};

switch (job.kind) {
  case 'file':
    await toFile(job.keys[0], join(job.out, 'out.bin'));
    report();
    break;
  case 'memory': {
    const bytes = await (await get(job.keys[0])).Body.transformToByteArray();
    report({ sha256: sha256(bytes) });
    break;
  }
  case 'many':
    await pool(job.keys, job.concurrency, (k) => toFile(k, join(job.out, k)));
    report();
    break;
  case 'upload': {
    const { Upload } = await import('@aws-sdk/lib-storage');
    await new Upload({
      client: s3,
      params: { Bucket: job.s3.bucket, Key: job.keys[0], Body: createReadStream(job.src) },
    }).done();
    report();
    break;
  }
  default:
    throw new Error(`unknown job ${job.kind}`);
}
s3.destroy();
