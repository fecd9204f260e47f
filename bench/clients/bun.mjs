// Bun's built-in S3 client (`S3Client` from 'bun'), run by the bun binary as its own process:
// what a JavaScript user picks when S3 speed matters. Used as documented: `Bun.write(path,
// s3file)` to a file, `s3file.bytes()` into memory, `s3.write(key, Bun.file(src))` for uploads
// (Bun's own multipart defaults), a concurrency limit for many objects.
import { S3Client, file, write } from 'bun';
import { join } from 'node:path';
import { job, pool, report, sha256 } from './common.mjs';

const s3 = new S3Client({
  endpoint: job.s3.endpoint,
  region: job.s3.region,
  bucket: job.s3.bucket,
  accessKeyId: job.s3.accessKeyId,
  secretAccessKey: job.s3.secretAccessKey,
});

switch (job.kind) {
  case 'file':
    await write(join(job.out, 'out.bin'), s3.file(job.keys[0]));
    report();
    break;
  case 'memory':
    report({ sha256: sha256(await s3.file(job.keys[0]).bytes()) });
    break;
  case 'many':
    await pool(job.keys, job.concurrency, (k) => write(join(job.out, k), s3.file(k)));
    report();
    break;
  case 'upload':
    await s3.write(job.keys[0], file(job.src));
    report();
    break;
  default:
    throw new Error(`unknown job ${job.kind}`);
}
