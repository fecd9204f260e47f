// opendal (npm): the other Rust-backed napi-rs storage binding. Files through its reader's
// stream, memory through read().
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Operator } from 'opendal';
import { job, pool, report, sha256 } from './common.mjs';

const op = new Operator('s3', {
  bucket: job.s3.bucket,
  endpoint: job.s3.endpoint,
  region: job.s3.region,
  access_key_id: job.s3.accessKeyId,
  secret_access_key: job.s3.secretAccessKey,
});
const toFile = async (key, dest) => {
  mkdirSync(dirname(dest), { recursive: true });
  const reader = await op.reader(key);
  await pipeline(reader.createReadStream(), createWriteStream(dest));
};

switch (job.kind) {
  case 'file':
    await toFile(job.keys[0], join(job.out, 'out.bin'));
    report();
    break;
  case 'memory':
    report({ sha256: sha256(await op.read(job.keys[0])) });
    break;
  case 'many':
    await pool(job.keys, job.concurrency, (k) => toFile(k, join(job.out, k)));
    report();
    break;
  default:
    throw new Error(`unknown job ${job.kind}`);
}
