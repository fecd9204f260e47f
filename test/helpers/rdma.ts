// What the S3-over-RDMA tests check on MinIO itself (not through the gateway), and the gateway's
// log for one key. Shared by test/rdma.test.ts and test/rdma-real.test.ts.
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { upload, type StoreOptions } from '../../src/index.js';
import { startGateway, type Gateway } from './gateway.js';
import { s3Client, s3Store, servers, tempDir } from './servers.js';

/** An object's bytes as MinIO stores them. */
export async function minioBytes(bucket: string, key: string): Promise<Buffer> {
  const s3 = await s3Client();
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } finally {
    s3.destroy();
  }
}

/** Whether MinIO has the object. */
export async function minioHas(bucket: string, key: string): Promise<boolean> {
  const s3 = await s3Client();
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch {
    return false;
  } finally {
    s3.destroy();
  }
}

/** Multipart uploads MinIO still holds under `key`. */
export async function uploadsInProgress(bucket: string, key: string): Promise<number> {
  const s3 = await s3Client();
  try {
    const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    return r.Uploads?.length ?? 0;
  } finally {
    s3.destroy();
  }
}

/** Seed an object straight into MinIO (not through the gateway). */
export async function seed(bucket: string, key: string, data: Buffer): Promise<void> {
  await upload(data, `s3://${bucket}/${key}`, { store: s3Store(servers()) });
}

/** The gateway's log entries for one key. */
export async function requestsFor(gw: Gateway, key: string) {
  return (await gw.log()).filter((e) => decodeURIComponent(e.path).endsWith(`/${key}`));
}

/** What an RDMA test file shares: its gateway, bucket, cuFile JSON and store options. */
export interface RdmaSuite {
  readonly gw: Gateway;
  readonly bucket: string;
  /** A cuFile JSON listing one RDMA device (CUFILE_ENV_PATH_JSON of this worker). */
  readonly cufile: string;
  /** Store options that reach MinIO through the gateway. */
  via(rdma: StoreOptions['rdma'], extra?: StoreOptions): StoreOptions;
  url(key: string): string;
}

/**
 * Set up an RDMA test file: the simulated client connects and registers because the cuFile JSON
 * lists an RDMA device, as the real one does (set now, before the shim first loads in this
 * worker); a gateway in front of MinIO for the file's tests, back in mode `accept` before each.
 */
export function rdmaSuite(partSize: number): RdmaSuite {
  const cufile = join(tempDir(), 'cufile.json');
  writeFileSync(cufile, JSON.stringify({ properties: { rdma_dev_addr_list: ['192.0.2.10'] } }));
  process.env.CUFILE_ENV_PATH_JSON = cufile;
  let gw: Gateway | undefined;
  let bucket = '';
  beforeAll(async () => {
    bucket = servers().s3.bucket;
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });
  beforeEach(async () => {
    await gw!.setMode('accept');
  });
  return {
    get gw() {
      return gw!;
    },
    get bucket() {
      return bucket;
    },
    cufile,
    via(rdma, extra = {}) {
      const base = s3Store(servers());
      return {
        ...base,
        config: { ...base.config, aws_endpoint: gw!.url },
        rdma,
        rdmaPartSize: partSize,
        ...extra,
      };
    },
    url: (key) => `s3://${bucket}/${key}`,
  };
}
