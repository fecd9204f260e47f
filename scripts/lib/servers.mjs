// Starts the real servers objget is tested against, on 127.0.0.1 only: MinIO (S3),
// fake-gcs-server (GCS), Azurite (Azure Blob) and the project's HTTP and HTTPS range fixture.
// A server that cannot start is an error: nothing here is optional.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCerts } from './certs.mjs';
import { startHttpFixture } from './http-fixture.mjs';

// The AWS SDK (used only to create buckets and seed objects) warns about Node 20 on every client.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const CACHE_DIR = process.env.OBJGET_CACHE ?? join(homedir(), '.cache', 'objget');

// Azurite's well-known development account.
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

function findBinary(name) {
  const candidates = [
    join(CACHE_DIR, 'bin', name),
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, name)),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `${name} is not installed: run 'npm run servers:install' (it builds it into ${join(CACHE_DIR, 'bin')})`,
    );
  }
  return found;
}

export async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tail(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

/** Spawn a server, wait until `ready()` resolves true; fail with its log if it exits or stalls. */
async function launch(name, cmd, args, { env = {}, logDir, ready, timeoutMs = 90_000 }) {
  const log = join(logDir, `${name}.log`);
  const out = createWriteStream(log);
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let exited = null;
  child.once('exit', (code, signal) => (exited = { code, signal }));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited)
      throw new Error(`${name} exited during start-up (${JSON.stringify(exited)}):\n${tail(log)}`);
    if (await ready().catch(() => false)) return child;
    await sleep(150);
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not become ready within ${timeoutMs} ms:\n${tail(log)}`);
}

async function httpOk(url, init) {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
  return r.ok;
}

function tcpOpen(port) {
  return new Promise((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

async function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([done, sleep(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/**
 * Start the servers named in `which` (default: all) under `workDir`.
 * Returns a description (endpoints, credentials, bucket names) and `stop()`.
 */
export async function startServers({
  workDir,
  which = ['s3', 'gcs', 'azure', 'http'],
  quiet = false,
} = {}) {
  const dir = resolve(workDir ?? join(ROOT, '.objget', 'servers'));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const children = [];
  const closers = [];
  const info = { workDir: dir, logDir };
  const say = (m) => quiet || console.error(`[servers] ${m}`);
  const stop = async () => {
    await Promise.all(closers.map((c) => c().catch(() => {})));
    await Promise.all(children.map(stopChild));
  };
  const onExit = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', onExit);

  try {
    const starts = [];
    if (which.includes('s3')) {
      starts.push(
        (async () => {
          const port = await freePort();
          const consolePort = await freePort();
          const user = 'objget-test';
          const password = `objget-${randomBytes(12).toString('hex')}`;
          const data = join(dir, 'minio');
          mkdirSync(data, { recursive: true });
          const endpoint = `http://127.0.0.1:${port}`;
          children.push(
            await launch(
              'minio',
              findBinary('minio'),
              [
                'server',
                '--quiet',
                '--address',
                `127.0.0.1:${port}`,
                '--console-address',
                `127.0.0.1:${consolePort}`,
                data,
              ],
              {
                env: {
                  MINIO_ROOT_USER: user,
                  MINIO_ROOT_PASSWORD: password,
                  MINIO_BROWSER: 'off',
                  MINIO_UPDATE: 'off',
                },
                logDir,
                ready: () => httpOk(`${endpoint}/minio/health/live`),
              },
            ),
          );
          const bucket = 'objget-test';
          const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
          const client = new S3Client({
            endpoint,
            region: 'us-east-1',
            forcePathStyle: true,
            credentials: { accessKeyId: user, secretAccessKey: password },
          });
          await client.send(new CreateBucketCommand({ Bucket: bucket })).catch((e) => {
            if (e.name !== 'BucketAlreadyOwnedByYou') throw e;
          });
          client.destroy();
          info.s3 = {
            endpoint,
            region: 'us-east-1',
            accessKeyId: user,
            secretAccessKey: password,
            bucket,
          };
          say(`MinIO on ${endpoint}`);
        })(),
      );
    }
    if (which.includes('gcs')) {
      starts.push(
        (async () => {
          const port = await freePort();
          const url = `http://127.0.0.1:${port}`;
          children.push(
            await launch(
              'fake-gcs-server',
              findBinary('fake-gcs-server'),
              [
                '-host',
                '127.0.0.1',
                '-port',
                String(port),
                '-scheme',
                'http',
                '-backend',
                'memory',
                '-public-host',
                `127.0.0.1:${port}`,
                '-log-level',
                'error',
              ],
              {
                logDir,
                ready: () => httpOk(`${url}/storage/v1/b`),
              },
            ),
          );
          const bucket = 'objget-test';
          const r = await fetch(`${url}/storage/v1/b`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: bucket }),
          });
          if (!r.ok && r.status !== 409)
            throw new Error(`fake-gcs-server: creating the bucket failed: HTTP ${r.status}`);
          const serviceAccountKey = JSON.stringify({
            gcs_base_url: url,
            disable_oauth: true,
            client_email: '',
            private_key: '',
            private_key_id: '',
          });
          info.gcs = { url, bucket, serviceAccountKey };
          say(`fake-gcs-server on ${url}`);
        })(),
      );
    }
    if (which.includes('azure')) {
      starts.push(
        (async () => {
          const port = await freePort();
          const bin = join(ROOT, 'node_modules', '.bin', 'azurite-blob');
          if (!existsSync(bin)) throw new Error('azurite is not installed: run npm install');
          const location = join(dir, 'azurite');
          mkdirSync(location, { recursive: true });
          children.push(
            await launch(
              'azurite',
              bin,
              [
                '--blobHost',
                '127.0.0.1',
                '--blobPort',
                String(port),
                '--location',
                location,
                '--silent',
                '--skipApiVersionCheck',
                '--disableTelemetry',
                '--loose',
              ],
              {
                logDir,
                ready: () => tcpOpen(port),
              },
            ),
          );
          const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
          const container = 'objget-test';
          const { BlobServiceClient, StorageSharedKeyCredential } =
            await import('@azure/storage-blob');
          const svc = new BlobServiceClient(
            endpoint,
            new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
          );
          await svc.getContainerClient(container).createIfNotExists();
          info.azure = { endpoint, account: AZURITE_ACCOUNT, key: AZURITE_KEY, container };
          say(`Azurite on ${endpoint}`);
        })(),
      );
    }
    if (which.includes('http')) {
      starts.push(
        (async () => {
          const root = join(dir, 'http-root');
          mkdirSync(root, { recursive: true });
          const certs = makeCerts(join(dir, 'certs'));
          const plain = await startHttpFixture({ root });
          const tls = await startHttpFixture({
            root,
            tls: { key: certs.key, cert: certs.cert },
            signingKey: plain.signingKey,
          });
          closers.push(plain.close, tls.close);
          info.http = {
            url: plain.url,
            httpsUrl: tls.url,
            root,
            ca: certs.ca,
            signingKey: plain.signingKey,
          };
          say(`HTTP fixture on ${plain.url}, HTTPS on ${tls.url}`);
        })(),
      );
    }
    const results = await Promise.allSettled(starts);
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length)
      throw new Error(failed.map((f) => f.reason?.message ?? String(f.reason)).join('\n\n'));
  } catch (e) {
    await stop();
    throw e;
  }
  return { info, stop };
}
