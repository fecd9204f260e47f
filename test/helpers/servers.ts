import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, inject } from 'vitest';
import { JS_SCHEME_CAPABILITIES } from '../../src/engines/js/engine.js';
import type { StoreOptions } from '../../src/index.js';

export interface ServersInfo {
  workDir: string;
  s3: {
    endpoint: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    bucket: string;
  };
  gcs: { url: string; bucket: string; serviceAccountKey: string };
  azure: { endpoint: string; account: string; key: string; container: string };
  http: { url: string; httpsUrl: string; root: string; ca: string; signingKey: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    servers: ServersInfo;
  }
}

export type BackendName = 's3' | 'gcs' | 'azure' | 'http' | 'https' | 'file';

export interface Backend {
  name: BackendName;
  /** The URL of `key` on this backend. */
  url(key: string): string;
  /** Store options that reach it. */
  store: StoreOptions;
  /** Store options with a wrong secret, where the server checks signatures. */
  wrongSecret?: StoreOptions;
  /** Write an object directly (not through objget). */
  put(key: string, data: Buffer): Promise<void>;
  /** Whether the pure-JS engine serves this backend (its scheme is one the engine declares). */
  js: boolean;
  /** The calls the pure-JS engine declares for this backend's scheme (JS_SCHEME_CAPABILITIES). */
  jsCalls: string[];
}

/** Whether `engine` makes `call` on backend `b`: native makes every one, JS what it declares. */
export function serves(engine: 'native' | 'js', b: Backend, call: string): boolean {
  return engine === 'native' || b.jsCalls.includes(call);
}

const jsServes = (scheme: string): boolean => scheme in JS_SCHEME_CAPABILITIES;
const jsCalls = (scheme: string): string[] => JS_SCHEME_CAPABILITIES[scheme] ?? [];

export const SENTINEL_SECRET = 'SENTINEL-objget-secret-7f3a9c1e5b';

export function servers(): ServersInfo {
  return inject('servers');
}

export function s3Store(s: ServersInfo, secret = s.s3.secretAccessKey): StoreOptions {
  return {
    config: {
      aws_access_key_id: s.s3.accessKeyId,
      aws_secret_access_key: secret,
      aws_endpoint: s.s3.endpoint,
      aws_region: s.s3.region,
    },
    maxRetries: 1,
    initialBackoffMs: 10,
  };
}

// Every directory a test file makes under the system temp dir is removed when the file ends.
const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function madeDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

const localRoot = madeDir('objget-files-');

/** An @aws-sdk S3 client for the test MinIO, with `extra` settings (the caller destroys it). */
export async function s3Client(
  extra: Partial<import('@aws-sdk/client-s3').S3ClientConfig> = {},
): Promise<import('@aws-sdk/client-s3').S3Client> {
  const s = servers();
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client({
    endpoint: s.s3.endpoint,
    region: s.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey },
    ...extra,
  });
}

/** Multipart uploads MinIO still holds under a key (listed through the S3 API). */
export async function uploadsInProgress(key: string): Promise<unknown[]> {
  const { ListMultipartUploadsCommand } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  try {
    const r = await c.send(
      new ListMultipartUploadsCommand({ Bucket: servers().s3.bucket, Prefix: key }),
    );
    return r.Uploads ?? [];
  } finally {
    c.destroy();
  }
}

/** Put objects straight into MinIO with @aws-sdk (keys objget itself may not write). */
export async function putS3Raw(objects: Record<string, Buffer>): Promise<void> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  try {
    for (const [Key, Body] of Object.entries(objects)) {
      await c.send(new PutObjectCommand({ Bucket: servers().s3.bucket, Key, Body }));
    }
  } finally {
    c.destroy();
  }
}

export function backends(): Backend[] {
  const s = servers();
  const azureStore = (key: string): StoreOptions => ({
    config: {
      azure_storage_account_name: s.azure.account,
      azure_storage_account_key: key,
      azure_storage_endpoint: s.azure.endpoint,
    },
    maxRetries: 1,
    initialBackoffMs: 10,
  });
  return [
    {
      name: 's3',
      url: (k) => `s3://${s.s3.bucket}/${k}`,
      store: s3Store(s),
      wrongSecret: s3Store(s, SENTINEL_SECRET),
      js: jsServes('s3'),
      jsCalls: jsCalls('s3'),
      async put(key, data) {
        const { PutObjectCommand } = await import('@aws-sdk/client-s3');
        const c = await s3Client();
        await c.send(new PutObjectCommand({ Bucket: s.s3.bucket, Key: key, Body: data }));
        c.destroy();
      },
    },
    {
      name: 'gcs',
      url: (k) => `gs://${s.gcs.bucket}/${k}`,
      store: {
        config: { google_service_account_key: s.gcs.serviceAccountKey },
        maxRetries: 1,
        initialBackoffMs: 10,
      },
      js: jsServes('gs'),
      jsCalls: jsCalls('gs'),
      async put(key, data) {
        const r = await fetch(
          `${s.gcs.url}/upload/storage/v1/b/${s.gcs.bucket}/o?uploadType=media&name=${encodeURIComponent(key)}`,
          { method: 'POST', body: data, headers: { 'content-type': 'application/octet-stream' } },
        );
        if (!r.ok) throw new Error(`seeding gs://${key}: HTTP ${r.status}`);
      },
    },
    {
      name: 'azure',
      url: (k) => `az://${s.azure.container}/${k}`,
      store: azureStore(s.azure.key),
      wrongSecret: azureStore(Buffer.from(SENTINEL_SECRET.padEnd(64, 'x')).toString('base64')),
      js: jsServes('az'),
      jsCalls: jsCalls('az'),
      async put(key, data) {
        const { BlobServiceClient, StorageSharedKeyCredential } =
          await import('@azure/storage-blob');
        const svc = new BlobServiceClient(
          s.azure.endpoint,
          new StorageSharedKeyCredential(s.azure.account, s.azure.key),
        );
        await svc.getContainerClient(s.azure.container).getBlockBlobClient(key).uploadData(data);
      },
    },
    {
      name: 'http',
      url: (k) => `${s.http.url}/${k}`,
      store: { maxRetries: 1, initialBackoffMs: 10 },
      js: jsServes('http'),
      jsCalls: jsCalls('http'),
      async put(key, data) {
        writeAt(join(s.http.root, key), data);
      },
    },
    {
      name: 'https',
      url: (k) => `${s.http.httpsUrl}/${k}`,
      store: { caCert: s.http.ca, maxRetries: 1, initialBackoffMs: 10 },
      js: jsServes('https'),
      jsCalls: jsCalls('https'),
      async put(key, data) {
        writeAt(join(s.http.root, key), data);
      },
    },
    {
      name: 'file',
      url: (k) => join(localRoot, k),
      store: {},
      js: jsServes('file'),
      jsCalls: jsCalls('file'),
      async put(key, data) {
        writeAt(join(localRoot, key), data);
      },
    },
  ];
}

function writeAt(path: string, data: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}

/** Deterministic pseudo-random bytes (so failures can be reproduced). */
export function bytes(n: number, seed = n): Buffer {
  const out = Buffer.allocUnsafe(n);
  let block = Buffer.alloc(0);
  let counter = 0;
  for (let off = 0; off < n; off += 32) {
    block = createHash('sha256').update(`${seed}:${counter++}`).digest();
    block.copy(out, off, 0, Math.min(32, n - off));
  }
  return out;
}

export function uniqueKey(prefix: string): string {
  return `${prefix}/${randomBytes(6).toString('hex')}`;
}

export function tempDir(): string {
  return madeDir('objget-dest-');
}

/** Force the engine for the calls that follow, through OBJGET_ENGINE. */
export function useEngine(name: 'native' | 'js'): void {
  process.env.OBJGET_ENGINE = name;
}
