// `npm run demo`: start a local S3 server (MinIO), seed one large object, download it with the
// `objget` command line (its own progress display: bars on a terminal, lines elsewhere), verify
// it, and print MB/s and the engine that ran.
//   npm run demo -- --size 512     (MiB, default 256)
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServers } from './lib/servers.mjs';

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

  const outDir = join(work, 'out');
  const dest = join(outDir, 'large.bin');
  mkdirSync(outDir, { recursive: true });

  const started = performance.now();
  const url = `s3://${s3.bucket}/demo/large.bin`;
  console.log(`$ objget cp ${url} ${dest} --endpoint ${s3.endpoint}`);
  const code = await new Promise((res) =>
    spawn(
      process.execPath,
      [join(ROOT, 'dist', 'cli.js'), 'cp', url, dest, '--endpoint', s3.endpoint],
      {
        stdio: 'inherit',
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
          AWS_REGION: s3.region,
        },
      },
    ).on('close', res),
  );
  if (code !== 0) throw new Error(`objget cp exited ${code}`);
  const secs = (performance.now() - started) / 1000;

  const got = await sha256(dest);
  if (got !== want) throw new Error(`checksum mismatch: ${got} != ${want}`);
  console.log(
    `downloaded ${sizeMiB} MiB in ${secs.toFixed(2)} s (the whole command, start-up included): ${(size / 1e6 / secs).toFixed(0)} MB/s, engine: ${info.engine}, sha256 verified`,
  );
} finally {
  await stop();
  rmSync(join(work, 'out'), { recursive: true, force: true });
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
