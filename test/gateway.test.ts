// The S3-over-RDMA test gateway itself (scripts/lib/rdma-gateway.mjs), in front of the real
// MinIO: SigV4 verification, token-less forwarding, simulated RDMA GET and PUT into and out of
// this process's memory (process_vm_writev / process_vm_readv from the gateway's own process),
// and every mode. objget's RDMA client is tested elsewhere.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import type { FinalizeRequestMiddleware, SourceData } from '@smithy/types';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gatewayModule, type Gateway, type LogEntry, type Mode } from './helpers/gateway.js';
import { bytes, s3Client, servers, uniqueKey } from './helpers/servers.js';

interface VmAddon {
  addressOf(buf: Uint8Array): bigint;
  writeRemote(pid: number, addr: bigint, data: Uint8Array): number;
  readRemote(pid: number, addr: bigint, length: number): Buffer;
}

const { ADDON_PATH, startRdmaGateway, signRequest, verifyRequest } = gatewayModule;
// Loaded after the gateway started: startRdmaGateway says how to build it when it is missing.
let vm: VmAddon;

const KiB = 1024;
const MiB = 1024 * KiB;
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');
const UNSIGNED = 'UNSIGNED-PAYLOAD';
const SIM_GID = `0b1ec75e${'5a'.repeat(12)}`;

/** A simulator token: addr(16):size(8):rkey(8):lid(4):qp(6):gid_present(1):gid(32). */
function makeToken(addr: bigint, size: number, pid = process.pid, gid = SIM_GID): string {
  const hex = (v: number | bigint, width: number) => v.toString(16).padStart(width, '0');
  return [hex(addr, 16), hex(size, 8), hex(pid, 8), '0001', '00002a', '1', gid].join(':');
}

/** A token for `size` bytes at `offset` in `buf`. */
const tokenFor = (buf: Buffer, size = buf.length, offset = 0) =>
  makeToken(vm.addressOf(buf) + BigInt(offset), size);

// CRC-64/NVME (reflected 0xad93d23594c93659, init and xorout all ones), base64 of the BE u64.
const CRC64_TABLE = Array.from({ length: 256 }, (_, i) => {
  let c = BigInt(i);
  for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ 0x9a6c9329ac4bc9b5n : c >> 1n;
  return c;
});
function crc64nvme(data: Uint8Array): string {
  let crc = 0xffffffffffffffffn;
  for (const b of data) crc = CRC64_TABLE[Number((crc ^ BigInt(b)) & 0xffn)]! ^ (crc >> 8n);
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(crc ^ 0xffffffffffffffffn);
  return out.toString('base64');
}

/** node:crypto behind the Checksum interface @smithy/signature-v4 takes. */
class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.make();
  }
  private make(): Hash | Hmac {
    return this.secret === undefined
      ? createHash('sha256')
      : createHmac('sha256', toBytes(this.secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.make();
  }
}
function toBytes(d: SourceData): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function rawRequest(
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Byte equality without vitest's element-by-element comparison (slow on MiBs). */
function expectSame(actual: Uint8Array | undefined, expected: Uint8Array): void {
  expect(actual, 'no bytes').toBeDefined();
  const a = Buffer.from(actual!.buffer, actual!.byteOffset, actual!.byteLength);
  expect(a.length, 'length').toBe(expected.length);
  if (!a.equals(expected))
    expect.fail(`bytes differ at offset ${a.findIndex((b, i) => b !== expected[i])}`);
}

const xmlCode = (r: Reply) => /<Code>([^<]*)<\/Code>/.exec(r.body.toString())?.[1];

let gw: Gateway;
let client: S3Client;
let direct: S3Client;
let bucket: string;

function gatewayClient(extra: Partial<S3ClientConfig> = {}): S3Client {
  const s = servers();
  return new S3Client({
    endpoint: gw.url,
    region: s.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey },
    ...extra,
  });
}

interface SignedOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  token?: string;
  /** Add the token after signing (so it is not among the SignedHeaders). */
  tokenAfterSigning?: boolean;
  payloadHash?: string;
  body?: Buffer;
}

/** A request to the gateway signed by @smithy/signature-v4 (independent of the gateway's code). */
async function signed(method: string, key: string, o: SignedOptions = {}): Promise<Reply> {
  const s = servers();
  const u = new URL(gw.url);
  const path = `/${bucket}/${key}`;
  const headers: Record<string, string> = {
    host: u.host,
    'x-amz-content-sha256': o.payloadHash ?? (method === 'PUT' ? UNSIGNED : EMPTY_SHA256),
    ...o.headers,
  };
  if (o.token !== undefined && !o.tokenAfterSigning) headers['x-amz-rdma-token'] = o.token;
  const signer = new SignatureV4({
    service: 's3',
    region: s.s3.region,
    credentials: { accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey },
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const req = await signer.sign({
    method,
    protocol: 'http:',
    hostname: u.hostname,
    port: Number(u.port),
    path,
    query: o.query ?? {},
    headers,
  });
  const out = { ...req.headers };
  if (o.token !== undefined && o.tokenAfterSigning) out['x-amz-rdma-token'] = o.token;
  if (method === 'PUT' && out['content-length'] === undefined)
    out['content-length'] = String(o.body?.length ?? 0);
  const qs = new URLSearchParams(o.query ?? {}).toString().replace(/\+/g, '%20');
  return rawRequest(method, `${gw.url}${path}${qs ? `?${qs}` : ''}`, out, o.body);
}

async function putDirect(key: string, data: Buffer): Promise<string> {
  const r = await direct.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
  return r.ETag!;
}

async function getDirect(key: string): Promise<Buffer | undefined> {
  try {
    const r = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch (e) {
    if ((e as Error).name === 'NoSuchKey') return undefined;
    throw e;
  }
}

async function lastEntry(): Promise<LogEntry> {
  const log = await gw.log();
  expect(log.length).toBeGreaterThan(0);
  return log[log.length - 1]!;
}

beforeAll(async () => {
  const s = servers();
  bucket = s.s3.bucket;
  gw = await startRdmaGateway({
    target: s.s3.endpoint,
    accessKey: s.s3.accessKeyId,
    secretKey: s.s3.secretAccessKey,
    region: s.s3.region,
  });
  vm = createRequire(import.meta.url)(ADDON_PATH) as VmAddon;
  client = gatewayClient();
  direct = await s3Client();
});

afterAll(async () => {
  client?.destroy();
  direct?.destroy();
  await gw?.stop();
});

beforeEach(async () => {
  await gw.setMode('accept');
  await gw.clearLog();
});

describe('SigV4', () => {
  const creds = { accessKey: 'AKIDEXAMPLE', secretKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
  const region = 'us-east-1';
  const smithy = new SignatureV4({
    service: 's3',
    region,
    credentials: { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey },
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const path = '/bucket/dir/a%20b%2Bc~%28d%29/%C3%A9.bin';
  const query = { 'list-type': '2', prefix: 'a b/+~*', uploads: '', 'x-id': 'Get Object' };
  const now = new Date('2026-03-04T05:06:07Z');
  const headers = {
    host: '127.0.0.1:9000',
    'x-amz-content-sha256': EMPTY_SHA256,
    'x-amz-rdma-token': makeToken(0x7f0000001000n, 4096),
    'x-amz-meta-note': '  two  spaces   inside ',
    range: 'bytes=0-9',
  };

  it('signs exactly as @smithy/signature-v4 does', async () => {
    const ref = await smithy.sign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: '127.0.0.1',
        path,
        query,
        headers: { ...headers },
      },
      { signingDate: now },
    );
    const rawQuery = Object.entries(query)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');
    const ours = signRequest({
      method: 'GET',
      path,
      query: rawQuery,
      headers: { ...headers },
      payloadHash: EMPTY_SHA256,
      ...creds,
      region,
      now,
    });
    expect(ours.authorization).toBe(ref.headers.authorization);
  });

  it('verifies what @smithy/signature-v4 signs and rejects any change', async () => {
    const ref = await smithy.sign({
      method: 'GET',
      protocol: 'http:',
      hostname: '127.0.0.1',
      path,
      query,
      headers: { ...headers },
    });
    const url = `${path}?${new URLSearchParams(query).toString().replace(/\+/g, '%20')}`;
    const verify = (h: Record<string, string>, u = url, secretKey = creds.secretKey) =>
      verifyRequest({
        method: 'GET',
        url: u,
        headers: h,
        accessKey: creds.accessKey,
        secretKey,
        region,
      });
    const good = verify(ref.headers);
    expect(good.ok).toBe(true);
    expect(good.signedHeaders).toContain('x-amz-rdma-token');
    expect(verify({ ...ref.headers, range: 'bytes=0-10' }).code).toBe('SignatureDoesNotMatch');
    expect(verify(ref.headers, url.replace('list-type=2', 'list-type=1')).code).toBe(
      'SignatureDoesNotMatch',
    );
    expect(verify(ref.headers, url, 'wrong').code).toBe('SignatureDoesNotMatch');
    // A header that is not signed may change.
    expect(verify({ ...ref.headers, 'user-agent': 'x' }).ok).toBe(true);
  });

  it('CRC-64/NVME helper matches the reference check value', () => {
    const check = Buffer.from(crc64nvme(Buffer.from('123456789')), 'base64');
    expect(check.toString('hex')).toBe('ae8b14860a799888');
  });
});

describe('token-less requests are verified and forwarded', () => {
  it('PUT, GET, HEAD, list, delete through the gateway', async () => {
    const key = uniqueKey('gw-plain');
    const data = bytes(100 * KiB, 1);
    const put = await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: data,
        ContentType: 'application/x-test',
        Metadata: { note: 'hi' },
      }),
    );
    expect(put.ETag).toBeTruthy();
    expectSame(await getDirect(key), data);

    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expectSame(Buffer.from(await got.Body!.transformToByteArray()), data);
    expect(got.ContentType).toBe('application/x-test');
    expect(got.Metadata).toEqual({ note: 'hi' });

    const ranged = await client.send(
      new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=10-19' }),
    );
    expect(ranged.ContentRange).toBe(`bytes 10-19/${data.length}`);
    expectSame(Buffer.from(await ranged.Body!.transformToByteArray()), data.subarray(10, 20));

    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentLength).toBe(data.length);
    expect(head.ETag).toBe(put.ETag);

    const listed = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: key.split('/')[0] + '/' }),
    );
    expect(listed.Contents?.map((o) => o.Key)).toContain(key);

    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    expect(await getDirect(key)).toBeUndefined();

    const log = await gw.log();
    expect(log.map((e) => e.method)).toEqual(['PUT', 'GET', 'GET', 'HEAD', 'GET', 'DELETE']);
    expect(log.every((e) => !e.tokenPresent && e.rdmaReply === null && e.error === null)).toBe(
      true,
    );
    expect(log[0]).toMatchObject({ bodyBytes: data.length, contentLength: data.length });
  });

  it('a key with characters that need encoding', async () => {
    const key = `${uniqueKey('gw-odd')}/a b+c~!'()*&=é.bin`;
    const data = bytes(1000, 2);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
    expectSame(await getDirect(key), data);
    const listed = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: key.slice(0, -6) }),
    );
    expect(listed.Contents?.map((o) => o.Key)).toEqual([key]);
  });

  it('multipart upload (create, parts, complete) and abort', async () => {
    const key = uniqueKey('gw-mpu');
    const data = bytes(5 * MiB + 1000, 3);
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    const parts = [];
    for (const [n, slice] of [data.subarray(0, 5 * MiB), data.subarray(5 * MiB)].entries()) {
      const r = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: n + 1,
          Body: slice,
        }),
      );
      parts.push({ PartNumber: n + 1, ETag: r.ETag });
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    expectSame(await getDirect(key), data);

    const other = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${key}.aborted` }),
    );
    await client.send(
      new AbortMultipartUploadCommand({
        Bucket: bucket,
        Key: `${key}.aborted`,
        UploadId: other.UploadId,
      }),
    );
    const methods = (await gw.log()).map((e) => `${e.method} ${e.status}`);
    expect(methods).toEqual([
      'POST 200',
      'PUT 200',
      'PUT 200',
      'POST 200',
      'POST 200',
      'DELETE 204',
    ]);
  });

  it('a wrong secret gets 403 SignatureDoesNotMatch and stores nothing', async () => {
    const key = uniqueKey('gw-badsig');
    const s = servers();
    const bad = gatewayClient({
      credentials: { accessKeyId: s.s3.accessKeyId, secretAccessKey: 'not-the-secret' },
      maxAttempts: 1,
    });
    try {
      const err = await bad
        .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from('x') }))
        .then(
          () => undefined,
          (e: unknown) => e as { name: string; $metadata: { httpStatusCode?: number } },
        );
      expect(err?.name).toBe('SignatureDoesNotMatch');
      expect(err?.$metadata.httpStatusCode).toBe(403);
    } finally {
      bad.destroy();
    }
    expect(await getDirect(key)).toBeUndefined();
    expect(await lastEntry()).toMatchObject({ status: 403, error: 'SignatureDoesNotMatch' });
  });

  it('unsigned requests and control paths without the control header are refused', async () => {
    const r = await rawRequest('GET', `${gw.url}/__gateway/log`, {});
    expect(r.status).toBe(403);
    expect(xmlCode(r)).toBe('AccessDenied');
    const anon = await rawRequest('GET', `${gw.url}/${bucket}/x`, {});
    expect(anon.status).toBe(403);
  });
});

describe('RDMA GET (mode accept)', () => {
  it('writes the object into the client buffer and answers with an empty body', async () => {
    const key = uniqueKey('gw-get');
    const data = bytes(300 * KiB + 7, 4);
    const etag = await putDirect(key, data);
    const buf = Buffer.alloc(data.length + 8 * KiB, 0xee);
    const token = tokenFor(buf, data.length, 4 * KiB);
    const r = await signed('GET', key, { token });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe('0');
    expect(r.body.length).toBe(0);
    expect(r.headers['x-amz-rdma-reply']).toBe('200');
    expect(r.headers['x-amz-rdma-bytes-transferred']).toBe(String(data.length));
    expect(r.headers.etag).toBe(etag);
    expect(r.headers['last-modified']).toBeTruthy();
    expectSame(buf.subarray(4 * KiB, 4 * KiB + data.length), data);
    expect(buf.subarray(0, 4 * KiB).every((b) => b === 0xee)).toBe(true);
    expect(buf.subarray(4 * KiB + data.length).every((b) => b === 0xee)).toBe(true);
    expect(await lastEntry()).toMatchObject({
      method: 'GET',
      tokenPresent: true,
      tokenSigned: true,
      token,
      mode: 'accept',
      status: 200,
      rdmaReply: 200,
      rdmaBytes: data.length,
      bodyBytes: 0,
      contentSha256: EMPTY_SHA256,
    });
  });

  it('Range gives 206, Content-Range and only the slice', async () => {
    const key = uniqueKey('gw-range');
    const data = bytes(200 * KiB, 5);
    await putDirect(key, data);
    const buf = Buffer.alloc(64 * KiB, 0xee);
    const r = await signed('GET', key, {
      token: tokenFor(buf),
      headers: { range: 'bytes=1000-50999' },
    });
    expect(r.status).toBe(206);
    expect(r.headers['content-length']).toBe('0');
    expect(r.headers['content-range']).toBe(`bytes 1000-50999/${data.length}`);
    expect(r.headers['x-amz-rdma-reply']).toBe('206');
    expect(r.headers['x-amz-rdma-bytes-transferred']).toBe('50000');
    expectSame(buf.subarray(0, 50000), data.subarray(1000, 51000));
    expect(buf.subarray(50000).every((b) => b === 0xee)).toBe(true);
  });

  it('If-Match with a wrong ETag passes 412 through and leaves the buffer alone', async () => {
    const key = uniqueKey('gw-ifmatch');
    const data = bytes(10 * KiB, 6);
    const etag = await putDirect(key, data);
    const buf = Buffer.alloc(16 * KiB, 0xee);
    const r = await signed('GET', key, {
      token: tokenFor(buf),
      headers: { 'if-match': '"0123456789abcdef0123456789abcdef"' },
    });
    expect(r.status).toBe(412);
    expect(xmlCode(r)).toBe('PreconditionFailed');
    expect(r.headers['x-amz-rdma-reply']).toBeUndefined();
    expect(buf.every((b) => b === 0xee)).toBe(true);
    const ok = await signed('GET', key, { token: tokenFor(buf), headers: { 'if-match': etag } });
    expect(ok.status).toBe(200);
    expectSame(buf.subarray(0, data.length), data);
  });

  it('upstream errors pass through: missing key, unsatisfiable range', async () => {
    const buf = Buffer.alloc(4 * KiB, 0xee);
    const missing = await signed('GET', uniqueKey('gw-missing'), { token: tokenFor(buf) });
    expect(missing.status).toBe(404);
    expect(xmlCode(missing)).toBe('NoSuchKey');
    expect(missing.headers['x-amz-rdma-reply']).toBeUndefined();
    const key = uniqueKey('gw-416');
    await putDirect(key, bytes(100, 7));
    const range = await signed('GET', key, {
      token: tokenFor(buf),
      headers: { range: 'bytes=500-600' },
    });
    expect(range.status).toBe(416);
    expect(buf.every((b) => b === 0xee)).toBe(true);
  });

  it('a 0-byte object: 200 with 0 bytes transferred', async () => {
    const key = uniqueKey('gw-empty');
    await putDirect(key, Buffer.alloc(0));
    const buf = Buffer.alloc(4 * KiB, 0xee);
    const r = await signed('GET', key, { token: tokenFor(buf) });
    expect(r.status).toBe(200);
    expect(r.headers['x-amz-rdma-reply']).toBe('200');
    expect(r.headers['x-amz-rdma-bytes-transferred']).toBe('0');
    expect(buf.every((b) => b === 0xee)).toBe(true);
  });

  it('an object larger than the token: 400 InvalidRDMAToken, nothing written', async () => {
    const key = uniqueKey('gw-small');
    await putDirect(key, bytes(10 * KiB, 8));
    const buf = Buffer.alloc(16 * KiB, 0xee);
    const r = await signed('GET', key, { token: tokenFor(buf, 10 * KiB - 1) });
    expect(r.status).toBe(400);
    expect(xmlCode(r)).toBe('InvalidRDMAToken');
    expect(r.body.toString()).toMatch(/buffer too small/);
    expect(buf.every((b) => b === 0xee)).toBe(true);
  });

  it('malformed tokens: 400 InvalidRDMAToken', async () => {
    const key = uniqueKey('gw-malformed');
    await putDirect(key, bytes(100, 9));
    const buf = Buffer.alloc(4 * KiB, 0xee);
    const good = tokenFor(buf);
    const bad = [
      good.slice(0, 80),
      `${good}:00007f0000000000:0000000000001000`, // the old 115-character form
      good.toUpperCase(),
      good.replace(/:/g, '-'),
      makeToken(vm.addressOf(buf), buf.length, process.pid, 'fe80'.padEnd(32, '0')), // not ours
    ];
    for (const token of bad) {
      const r = await signed('GET', key, { token });
      expect(r.status, token).toBe(400);
      expect(xmlCode(r)).toBe('InvalidRDMAToken');
    }
    expect(buf.every((b) => b === 0xee)).toBe(true);
  });

  it('a bad address: 500 RDMATransferFailed with the errno text; the gateway lives on', async () => {
    const key = uniqueKey('gw-efault');
    await putDirect(key, bytes(100, 10));
    const r = await signed('GET', key, { token: makeToken(0x10n, 4096) });
    expect(r.status).toBe(500);
    expect(xmlCode(r)).toBe('RDMATransferFailed');
    expect(r.body.toString()).toMatch(/Bad address/);
    const buf = Buffer.alloc(4 * KiB);
    expect((await signed('GET', key, { token: tokenFor(buf) })).status).toBe(200);
  });

  it('through @aws-sdk/client-s3 with the token added before signing', async () => {
    const key = uniqueKey('gw-sdk');
    const data = bytes(64 * KiB, 11);
    await putDirect(key, data);
    const buf = Buffer.alloc(data.length);
    const sdk = gatewayClient({ responseChecksumValidation: 'WHEN_REQUIRED' });
    sdk.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-amz-rdma-token'] =
          tokenFor(buf);
        return next(args);
      },
      { step: 'build', name: 'rdmaToken' },
    );
    try {
      const r = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(r.ContentLength).toBe(0);
      await r.Body?.transformToByteArray();
    } finally {
      sdk.destroy();
    }
    expectSame(buf, data);
    expect(await lastEntry()).toMatchObject({ tokenSigned: true, rdmaReply: 200 });
  });
});

describe('RDMA PUT (mode accept)', () => {
  it('PutObject: the gateway reads the bytes from the client buffer', async () => {
    const key = uniqueKey('gw-put');
    const data = bytes(256 * KiB + 3, 12);
    const buf = Buffer.alloc(data.length + 4 * KiB, 0xee);
    data.copy(buf, 1024);
    const token = tokenFor(buf, data.length, 1024);
    const r = await signed('PUT', key, {
      token,
      headers: {
        'x-amz-checksum-crc64nvme': crc64nvme(data),
        'content-type': 'application/x-rdma',
        'x-amz-meta-origin': 'rdma',
      },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-amz-rdma-reply']).toBe('200');
    expect(r.headers.etag).toBeTruthy();
    expectSame(await getDirect(key), data);
    const head = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentType).toBe('application/x-rdma');
    expect(head.Metadata).toEqual({ origin: 'rdma' });
    expect(await lastEntry()).toMatchObject({
      method: 'PUT',
      tokenPresent: true,
      tokenSigned: true,
      token,
      contentLength: 0,
      bodyBytes: 0,
      contentSha256: UNSIGNED,
      status: 200,
      rdmaReply: 200,
      rdmaBytes: data.length,
    });
  });

  it('a checksum that does not match the buffer is rejected by MinIO and nothing is stored', async () => {
    const key = uniqueKey('gw-put-crc');
    const data = bytes(8 * KiB, 13);
    const buf = Buffer.from(data);
    const r = await signed('PUT', key, {
      token: tokenFor(buf),
      headers: { 'x-amz-checksum-crc64nvme': crc64nvme(bytes(8 * KiB, 14)) },
    });
    expect(r.status).toBe(400);
    expect(r.headers['x-amz-rdma-reply']).toBeUndefined();
    expect(await getDirect(key)).toBeUndefined();
  });

  it('UploadPart with tokens, then Complete through the SDK', async () => {
    const key = uniqueKey('gw-put-mpu');
    const data = bytes(5 * MiB + 4 * KiB, 15);
    const buf = Buffer.from(data);
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    const slices = [
      [0, 5 * MiB],
      [5 * MiB, data.length - 5 * MiB],
    ] as const;
    const parts = [];
    for (const [i, [offset, size]] of slices.entries()) {
      const r = await signed('PUT', key, {
        query: { partNumber: String(i + 1), uploadId: UploadId! },
        token: tokenFor(buf, size, offset),
      });
      expect(r.status).toBe(200);
      expect(r.headers['x-amz-rdma-reply']).toBe('200');
      parts.push({ PartNumber: i + 1, ETag: r.headers.etag as string });
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    expectSame(await getDirect(key), data);
  });

  it('refuses a body, a signed payload hash and Content-MD5', async () => {
    const key = uniqueKey('gw-put-bad');
    const buf = bytes(4 * KiB, 16);
    const token = tokenFor(buf);
    const withBody = await signed('PUT', key, { token, body: Buffer.from('abc') });
    expect(withBody.status).toBe(400);
    expect(withBody.body.toString()).toMatch(/Content-Length: 0/);
    const hashed = await signed('PUT', key, { token, payloadHash: EMPTY_SHA256 });
    expect(hashed.status).toBe(400);
    expect(hashed.body.toString()).toMatch(/UNSIGNED-PAYLOAD/);
    const md5 = await signed('PUT', key, {
      token,
      headers: { 'content-md5': createHash('md5').update(buf).digest('base64') },
    });
    expect(md5.status).toBe(400);
    for (const r of [withBody, hashed, md5]) expect(xmlCode(r)).toBe('InvalidRequest');
    expect(await getDirect(key)).toBeUndefined();
  });

  it('a bad address: 500 RDMATransferFailed, nothing stored', async () => {
    const key = uniqueKey('gw-put-efault');
    const r = await signed('PUT', key, { token: makeToken(0x10n, 4096) });
    expect(r.status).toBe(500);
    expect(xmlCode(r)).toBe('RDMATransferFailed');
    expect(r.body.toString()).toMatch(/Bad address/);
    expect(await getDirect(key)).toBeUndefined();
  });
});

describe('tokens must be signed', () => {
  it('a token added after signing (raw request): 400 UnsignedRDMAToken', async () => {
    const key = uniqueKey('gw-unsigned');
    await putDirect(key, bytes(100, 17));
    const buf = Buffer.alloc(4 * KiB, 0xee);
    const token = tokenFor(buf);
    const r = await signed('GET', key, { token, tokenAfterSigning: true });
    expect(r.status).toBe(400);
    expect(xmlCode(r)).toBe('UnsignedRDMAToken');
    expect(buf.every((b) => b === 0xee)).toBe(true);
    expect(await lastEntry()).toMatchObject({
      tokenPresent: true,
      tokenSigned: false,
      token,
      status: 400,
      error: 'UnsignedRDMAToken',
    });
  });

  it('a token added by an SDK middleware after the signing middleware', async () => {
    const key = uniqueKey('gw-unsigned-sdk');
    const buf = bytes(4 * KiB, 18);
    const sdk = gatewayClient({ maxAttempts: 1 });
    const late: FinalizeRequestMiddleware<ServiceInputTypes, ServiceOutputTypes> =
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-amz-rdma-token'] =
          tokenFor(buf);
        return next(args);
      };
    sdk.middlewareStack.addRelativeTo(late, {
      relation: 'after',
      toMiddleware: 'httpSigningMiddleware',
      name: 'lateRdmaToken',
    });
    try {
      const err = await sdk
        .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(0) }))
        .then(
          () => undefined,
          (e: unknown) => e as { name: string; $metadata: { httpStatusCode?: number } },
        );
      expect(err?.name).toBe('UnsignedRDMAToken');
      expect(err?.$metadata.httpStatusCode).toBe(400);
    } finally {
      sdk.destroy();
    }
    expect(await getDirect(key)).toBeUndefined();
    expect(await lastEntry()).toMatchObject({ tokenSigned: false, error: 'UnsignedRDMAToken' });
  });
});

describe('modes', () => {
  async function rdmaGet(mode: Mode) {
    await gw.setMode(mode);
    const key = uniqueKey(`gw-${mode}-get`);
    const data = bytes(20 * KiB, 19);
    await putDirect(key, data);
    const buf = Buffer.alloc(data.length, 0xee);
    const r = await signed('GET', key, { token: tokenFor(buf) });
    return { r, data, untouched: buf.every((b) => b === 0xee) };
  }

  async function rdmaPut(mode: Mode, checksum = true) {
    await gw.setMode(mode);
    const key = uniqueKey(`gw-${mode}-put`);
    const data = bytes(20 * KiB, 20);
    const buf = Buffer.from(data);
    const r = await signed('PUT', key, {
      token: tokenFor(buf),
      headers: checksum ? { 'x-amz-checksum-crc64nvme': crc64nvme(data) } : {},
    });
    return { r, stored: await getDirect(key) };
  }

  it('decline: GET returns the body with x-amz-rdma-reply 501; PUT is 501 and stores nothing', async () => {
    const get = await rdmaGet('decline');
    expect(get.r.status).toBe(200);
    expect(get.r.headers['x-amz-rdma-reply']).toBe('501');
    expectSame(get.r.body, get.data);
    expect(get.untouched).toBe(true);
    const put = await rdmaPut('decline');
    expect(put.r.status).toBe(501);
    expect(put.r.headers['x-amz-rdma-reply']).toBe('501');
    expect(xmlCode(put.r)).toBe('RDMANotSupported');
    expect(put.stored).toBeUndefined();
    const log = await gw.log();
    expect(log.map((e) => [e.mode, e.rdmaReply])).toEqual([
      ['decline', 501],
      ['decline', 501],
    ]);
  });

  it('ignore: no reply header; GET returns the body, PUT forwards the empty body', async () => {
    const get = await rdmaGet('ignore');
    expect(get.r.status).toBe(200);
    expect(get.r.headers['x-amz-rdma-reply']).toBeUndefined();
    expect(get.r.headers['x-amz-rdma-bytes-transferred']).toBeUndefined();
    expectSame(get.r.body, get.data);
    expect(get.untouched).toBe(true);
    // The checksum of the real bytes makes MinIO refuse the empty body ...
    const put = await rdmaPut('ignore');
    expect(put.r.status).toBeGreaterThanOrEqual(400);
    expect(put.r.headers['x-amz-rdma-reply']).toBeUndefined();
    expect(put.stored).toBeUndefined();
    // ... without it, a server that ignores the token stores 0 bytes.
    const blind = await rdmaPut('ignore', false);
    expect(blind.r.status).toBe(200);
    expect(blind.r.headers['x-amz-rdma-reply']).toBeUndefined();
    expect(blind.stored?.length).toBe(0);
  });

  it('fail: 500 RDMATransferFailed, no memory written, nothing stored', async () => {
    const get = await rdmaGet('fail');
    expect(get.r.status).toBe(500);
    expect(xmlCode(get.r)).toBe('RDMATransferFailed');
    expect(get.untouched).toBe(true);
    const put = await rdmaPut('fail');
    expect(put.r.status).toBe(500);
    expect(xmlCode(put.r)).toBe('RDMATransferFailed');
    expect(put.stored).toBeUndefined();
  });

  it('badtoken: 400 InvalidRDMAToken, no memory written, nothing stored', async () => {
    const get = await rdmaGet('badtoken');
    expect(get.r.status).toBe(400);
    expect(xmlCode(get.r)).toBe('InvalidRDMAToken');
    expect(get.untouched).toBe(true);
    const put = await rdmaPut('badtoken');
    expect(put.r.status).toBe(400);
    expect(xmlCode(put.r)).toBe('InvalidRDMAToken');
    expect(put.stored).toBeUndefined();
  });

  it('token-less requests are forwarded in every mode', async () => {
    for (const mode of ['decline', 'ignore', 'fail', 'badtoken'] as const) {
      await gw.setMode(mode);
      const key = uniqueKey(`gw-${mode}-plain`);
      const data = bytes(1000, 21);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expectSame(Buffer.from(await got.Body!.transformToByteArray()), data);
    }
    expect((await gw.log()).every((e) => e.status === 200 && e.rdmaReply === null)).toBe(true);
  });
});
