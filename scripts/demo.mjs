// `npm run demo`: start a local S3 server (MinIO), seed one large object, download it with
// objget while showing progress, verify it, and print MB/s and the engine that ran.
//   npm run demo -- --size 512     (MiB, default 256)
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServers } from './lib/servers.mjs';

let lastTenth = -1;
const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const args = process.argv.slice(2);
const sizeArg = args.indexOf('--size');
const sizeMiB = sizeArg >= 0 ? Number(args[sizeArg + 1]) : 256;
if (!Number.isInteger(sizeMiB) || sizeMiB < 1) {
  console.error('usage: npm run demo -- [--size MiB]');
  process.exit(2);
}

const objget = await import(join(ROOT, 'dist', 'index.js'));
const work = join(ROOT, '.objget', 'demo');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const info = objget.engineInfo();
console.log(
  `objget engine: ${info.engine}${info.native.loaded ? ` (native ${info.native.version}, object_store ${info.native.objectStoreVersion}, ${info.native.tls})` : ` (${info.native.reason})`}`,
);

const { info: servers, stop } = await startServers({
  workDir: join(work, 'servers'),
  which: ['s3'],
});
try {
  const s3 = servers.s3;
  const size = sizeMiB * 1024 * 1024;
  console.log(
    `seeding s3://${s3.bucket}/demo/large.bin (${sizeMiB} MiB) into MinIO at ${s3.endpoint} …`,
  );
  const data = Buffer.allocUnsafe(size);
  randomFillSync(data);
  const want = createHash('sha256').update(data).digest('hex');
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'demo/large.bin', Body: data }));
  client.destroy();

  const store = {
    config: {
      aws_access_key_id: s3.accessKeyId,
      aws_secret_access_key: s3.secretAccessKey,
      aws_endpoint: s3.endpoint,
      aws_region: s3.region,
    },
  };
  const outDir = join(work, 'out');
  const dest = join(outDir, 'large.bin');
  mkdirSync(outDir, { recursive: true });

  const started = performance.now();
  const result = await objget.download(`s3://${s3.bucket}/demo/large.bin`, dest, {
    store,
    onProgress: (p) => draw(p.bytes, p.total ?? size, started),
  });
  draw(result.bytes, size, started);
  if (process.stderr.isTTY) process.stderr.write('\n');

  const got = await sha256(dest);
  if (got !== want) throw new Error(`checksum mismatch: ${got} != ${want}`);
  const mbps = result.bytes / 1e6 / (result.elapsedMs / 1000);
  console.log(
    `downloaded ${sizeMiB} MiB in ${(result.elapsedMs / 1000).toFixed(2)} s: ${mbps.toFixed(0)} MB/s, engine: ${result.engine}, sha256 verified`,
  );
} finally {
  await stop();
  rmSync(join(work, 'out'), { recursive: true, force: true });
}

function draw(done, total, started) {
  const frac = total ? done / total : 1;
  const width = 30;
  const filled = Math.round(frac * width);
  const secs = (performance.now() - started) / 1000;
  const rate = secs > 0 ? done / 1e6 / secs : 0;
  const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${(done / 1048576).toFixed(0)}/${(total / 1048576).toFixed(0)} MiB  ${rate.toFixed(0)} MB/s`;
  if (process.stderr.isTTY) {
    process.stderr.write(`\r${line}`);
  } else if (Math.floor(frac * 10) > lastTenth) {
    // Not a terminal (CI logs): one line per tenth instead of a redrawn bar.
    lastTenth = Math.floor(frac * 10);
    process.stderr.write(`${line}\n`);
  }
}

function sha256(path) {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => res(h.digest('hex')))
      .on('error', rej);
  });
}
