// S3 over RDMA, end to end without the hardware: objget's engine loads the shim built against
// the simulated libcuobjclient (npm run build:rdma), registers buffers and mints tokens; the test
// gateway (its own process, in front of the real MinIO) checks each signature, moves the bytes
// with process_vm_writev / process_vm_readv into or out of this process's registered memory,
// and answers with the protocol's reply headers. Every mode the spec names is exercised.
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allocRdmaBuffer, download, engineInfo, get, getDetailed, upload } from '../src/index.js';
import { distEntry, ROOT, runModule } from './helpers/child.js';
import { rejection } from './helpers/expect.js';
import type { Mode } from './helpers/gateway.js';
import {
  minioBytes,
  minioHas,
  rdmaSuite,
  requestsFor,
  seed,
  uploadsInProgress,
} from './helpers/rdma.js';
import { bytes, s3Store, servers, tempDir, uniqueKey } from './helpers/servers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const suite = rdmaSuite(64 * MiB);
const { via, url } = suite;

describe('engineInfo().rdma', () => {
  it('loads the simulator build of the shim and connects', () => {
    const r = engineInfo().rdma;
    expect(r.reason).toBeUndefined();
    expect(r.available).toBe(true);
    expect(r.backend).toBe('simulator');
    expect(r.shim).toBe(join(ROOT, 'native', 'build', 'lib', 'libobjget_rdma.so'));
  });

  // Each reason in a fresh process: the shim's load is decided once per process.
  async function inChild(env: Record<string, string | undefined>) {
    const http = servers().http;
    writeFileSync(join(http.root, 'rdma-child.txt'), 'still works');
    const { done } = runModule(
      `import * as o from ${JSON.stringify(distEntry())};
       const r = await o.download(${JSON.stringify(`${http.url}/rdma-child.txt`)}, ${JSON.stringify(join(tempDir(), 'x.txt'))});
       const req = await o.get('s3://b/k', { store: { rdma: 'require', skipSignature: false, config: { aws_access_key_id: 'a', aws_secret_access_key: 'b', aws_endpoint: 'http://127.0.0.1:9' } } }).catch((e) => e.code);
       console.log(JSON.stringify({ rdma: o.engineInfo().rdma, bytes: r.bytes, path: r.path, req }));`,
      env,
    );
    const out = await done;
    expect(out.stderr).toBe('');
    return JSON.parse(out.stdout) as {
      rdma: { available: boolean; reason: string };
      bytes: number;
      path: string;
      req: string;
    };
  }

  it('without the shim: unavailable, says why, and everything else works', async () => {
    const r = await inChild({ OBJGET_RDMA_SHIM: join(tempDir(), 'libobjget_rdma.so') });
    expect(r.rdma.available).toBe(false);
    expect(r.rdma.reason).toMatch(/^shim not built: no libobjget_rdma\.so at .*npm run build:rdma/);
    expect(r).toMatchObject({ bytes: 11, path: 'http', req: 'RdmaUnavailable' });
  });

  it('without libcuobjclient: unavailable, "library not found"', async () => {
    // The shim alone, away from the library its RUNPATH ($ORIGIN) would find.
    const lonely = join(tempDir(), 'libobjget_rdma.so');
    writeFileSync(lonely, readFileSync(join(ROOT, 'native', 'build', 'lib', 'libobjget_rdma.so')));
    const r = await inChild({ OBJGET_RDMA_SHIM: lonely });
    expect(r.rdma.available).toBe(false);
    expect(r.rdma.reason).toMatch(/^library not found: .*libcuobjclient\.so\.1/);
    expect(r.req).toBe('RdmaUnavailable');
  });

  it('without an RDMA device configured: unavailable, "registration failed"', async () => {
    // Connected, as NVIDIA's library is without devices: registering memory is what fails.
    const r = await inChild({ CUFILE_ENV_PATH_JSON: join(tempDir(), 'absent.json') });
    expect(r.rdma.available).toBe(false);
    expect(r.rdma.reason).toMatch(/^registration failed: /);
    expect(r.req).toBe('RdmaUnavailable');
  });
});

describe('byte-identical through MinIO by RDMA', () => {
  // Zero-length objects go over plain HTTP (test/rdma-real.test.ts).
  for (const size of [MiB, GiB + 1]) {
    it(`${size} bytes: upload, download, get and get into a registered buffer`, async () => {
      const key = uniqueKey('rdma/rt');
      // A GiB of pseudo-random bytes from the seeded generator takes half a minute; random is as good here.
      const data = size > 64 * MiB ? randomFillSync(Buffer.allocUnsafe(size)) : bytes(size, 11);
      const want = sha(data);
      const store = via(true);
      await suite.gw.clearLog();

      const put = await upload(data, url(key), { store });
      expect(put).toMatchObject({ path: 'rdma', bytes: size });
      expect(put.parts).toBe(Math.max(1, Math.ceil(size / (64 * MiB))));
      expect(sha(await minioBytes(suite.bucket, key))).toBe(want);

      const dest = join(tempDir(), 'out.bin');
      const down = await download(url(key), dest, { store });
      expect(down).toMatchObject({ path: 'rdma', bytes: size });
      expect(sha(readFileSync(dest))).toBe(want);

      const got = await getDetailed(url(key), { store });
      expect(got.result.path).toBe('rdma');
      expect(sha(got.data)).toBe(want);

      const into = allocRdmaBuffer(Math.max(size, 1));
      const view = await get(url(key), { store, into });
      expect(view.length).toBe(size);
      expect(view.buffer).toBe(into.buffer); // the bytes landed in the caller's memory
      expect(sha(view)).toBe(want);

      // The gateway saw every data request carry a signed token and an empty body.
      const log = await requestsFor(suite.gw, key);
      const data_ = log.filter((e) => e.method === 'GET' || e.method === 'PUT');
      expect(data_.length).toBeGreaterThanOrEqual(4);
      for (const e of data_) {
        expect(e).toMatchObject({ tokenPresent: true, tokenSigned: true, bodyBytes: 0 });
        expect(e.status).toBeLessThan(300);
        expect(e.rdmaReply).not.toBeNull();
      }
      expect(
        data_
          .filter((e) => e.method === 'PUT')
          .every((e) => e.contentSha256 === 'UNSIGNED-PAYLOAD'),
      ).toBe(true);
    }, 300_000);
  }

  it('a file uploads from registered buffers and a caller buffer uploads with no copy', async () => {
    const key = uniqueKey('rdma/file');
    const data = bytes(70 * MiB + 3, 5);
    const src = join(tempDir(), 'src.bin');
    writeFileSync(src, data);
    const r = await upload(src, url(key), { store: via('require') });
    expect(r).toMatchObject({ path: 'rdma', parts: 2 });
    expect(sha(await minioBytes(suite.bucket, key))).toBe(sha(data));

    const buf = allocRdmaBuffer(MiB);
    bytes(MiB, 9).copy(buf);
    const key2 = uniqueKey('rdma/zc');
    expect((await upload(buf, url(key2), { store: via('require') })).path).toBe('rdma');
    expect(sha(await minioBytes(suite.bucket, key2))).toBe(sha(bytes(MiB, 9)));
  });

  it('ifNotExists by RDMA: a conflict is AlreadyExists and the stored bytes stay', async () => {
    const key = uniqueKey('rdma/cond');
    await seed(suite.bucket, key, bytes(100, 1));
    for (const size of [MiB, 12 * MiB]) {
      const e = await rejection(
        upload(bytes(size, 2), url(key), {
          store: via('require', { rdmaPartSize: 5 * MiB }),
          ifNotExists: true,
        }),
      );
      expect(e.code).toBe('AlreadyExists');
      expect(sha(await minioBytes(suite.bucket, key))).toBe(sha(bytes(100, 1)));
    }
    expect(await uploadsInProgress(suite.bucket, key)).toBe(0);
  });
});

describe('gateway modes', () => {
  const cases: { mode: Mode; code: string }[] = [
    { mode: 'decline', code: 'RdmaDeclined' },
    { mode: 'ignore', code: 'RdmaDeclined' },
  ];
  for (const { mode, code } of cases) {
    it(`${mode}: rdma true falls back to HTTP bodies; 'require' fails with ${code}`, async () => {
      const key = uniqueKey(`rdma/${mode}`);
      const data = bytes(3 * MiB + 1, 3);
      await seed(suite.bucket, key, data);
      await suite.gw.setMode(mode);

      const dest = join(tempDir(), 'f.bin');
      const down = await download(url(key), dest, { store: via(true) });
      expect(down.path).toBe('http');
      expect(sha(readFileSync(dest))).toBe(sha(data));
      const got = await getDetailed(url(key), { store: via(true) });
      expect(got.result.path).toBe('http');
      expect(sha(got.data)).toBe(sha(data));

      // Single PUT and multipart: declined parts are re-sent with their bytes in the body.
      for (const size of [MiB, 12 * MiB]) {
        const up = uniqueKey(`rdma/${mode}-up`);
        const payload = bytes(size, 4);
        const r = await upload(payload, url(up), { store: via(true, { rdmaPartSize: 5 * MiB }) });
        expect(r.path).toBe('http');
        expect(sha(await minioBytes(suite.bucket, up))).toBe(sha(payload));
      }

      const dest2 = join(tempDir(), 'g.bin');
      expect((await rejection(download(url(key), dest2, { store: via('require') }))).code).toBe(
        code,
      );
      expect(existsSync(dest2)).toBe(false);
      const up = uniqueKey(`rdma/${mode}-req`);
      for (const size of [MiB, 12 * MiB]) {
        const e = await rejection(
          upload(bytes(size, 6), url(up), { store: via('require', { rdmaPartSize: 5 * MiB }) }),
        );
        expect(e.code).toBe(code);
      }
      expect(await minioHas(suite.bucket, up)).toBe(false);
      expect(await uploadsInProgress(suite.bucket, up)).toBe(0);
    });
  }

  const errors: { mode: Mode; code: string }[] = [
    { mode: 'fail', code: 'RdmaTransferFailed' },
    { mode: 'badtoken', code: 'RdmaInvalidToken' },
  ];
  for (const { mode, code } of errors) {
    it(`${mode}: ${code} under true and 'require'; nothing written, nothing stored`, async () => {
      const key = uniqueKey(`rdma/${mode}`);
      await seed(suite.bucket, key, bytes(MiB, 7));
      await suite.gw.setMode(mode);
      for (const rdma of [true, 'require'] as const) {
        const dest = join(tempDir(), 'f.bin');
        expect((await rejection(download(url(key), dest, { store: via(rdma) }))).code).toBe(code);
        expect(existsSync(dest)).toBe(false);
        expect((await rejection(get(url(key), { store: via(rdma) }))).code).toBe(code);
        const up = uniqueKey(`rdma/${mode}-up`);
        for (const size of [MiB, 12 * MiB]) {
          const e = await rejection(
            upload(bytes(size, 8), url(up), { store: via(rdma, { rdmaPartSize: 5 * MiB }) }),
          );
          expect(e.code).toBe(code);
        }
        expect(await minioHas(suite.bucket, up)).toBe(false);
        expect(await uploadsInProgress(suite.bucket, up)).toBe(0);
      }
    });
  }
});

describe('the wire contract', () => {
  it('the client never sends an unsigned token, and tokens and buffers are always released', async () => {
    const log = await suite.gw.log();
    expect(log.length).toBeGreaterThan(0);
    const withToken = log.filter((e) => e.tokenPresent);
    expect(withToken.length).toBeGreaterThan(0);
    expect(withToken.every((e) => e.tokenSigned)).toBe(true);
    expect(log.some((e) => e.error === 'UnsignedRDMAToken')).toBe(false);
    expect(withToken.every((e) => e.token?.length === 81)).toBe(true);
    expect(engineInfo().rdma.tokens).toBe(0);
  });

  it('an abort returns once every request in flight has ended: no token left, buffer reusable', async () => {
    const key = uniqueKey('rdma/abort');
    const data = randomFillSync(Buffer.allocUnsafe(256 * MiB));
    await seed(suite.bucket, key, data);
    const into = allocRdmaBuffer(256 * MiB);
    const ac = new AbortController();
    const e = await rejection(
      get(url(key), {
        store: via('require', { rdmaPartSize: 16 * MiB, rdmaBuffers: 2 }),
        into,
        signal: ac.signal,
        onProgress: () => ac.abort(),
      }),
    );
    expect(e.code).toBe('Aborted');
    expect(engineInfo().rdma.tokens).toBe(0);
    // The same buffer serves the next read, untouched by anything still in flight.
    const view = await get(url(key), { store: via('require'), into });
    expect(sha(view)).toBe(sha(data));
  });

  it('two reads into one registered buffer take turns (one transfer at a time on it)', async () => {
    const a = uniqueKey('rdma/turn-a');
    const b = uniqueKey('rdma/turn-b');
    const da = randomFillSync(Buffer.allocUnsafe(24 * MiB));
    const db = randomFillSync(Buffer.allocUnsafe(24 * MiB));
    await seed(suite.bucket, a, da);
    await seed(suite.bucket, b, db);
    const into = allocRdmaBuffer(24 * MiB);
    const store = via('require', { rdmaPartSize: 8 * MiB });
    // Both land whole, one after the other: the buffer ends holding one object, never a mix
    // of their parts (the views share the memory, so only the final state is checked).
    const views = await Promise.all([get(url(a), { store, into }), get(url(b), { store, into })]);
    expect(views.map((v) => v.length)).toEqual([24 * MiB, 24 * MiB]);
    expect([sha(da), sha(db)]).toContain(sha(into));
    expect(engineInfo().rdma.tokens).toBe(0);
  });

  it('a store with server-side encryption settings is NotSupported with rdma (not silently unencrypted)', async () => {
    const base = via('require');
    const store = { ...base, config: { ...base.config, aws_server_side_encryption: 'AES256' } };
    const e = await rejection(get(url('k'), { store }));
    expect(e.code).toBe('NotSupported');
    expect(e.message).toMatch(/server-side encryption/);
  });

  it('options that contradict the contract are refused with the reason', async () => {
    const http = `${servers().http.url}/x`;
    let e = await rejection(get(http, { store: { rdma: true } }));
    expect(e.code).toBe('InvalidArgument');
    expect(e.message).toMatch(/S3/);
    e = await rejection(get(url('k'), { store: via(true, { rdmaPartSize: 2 * GiB }) }));
    expect(e.code).toBe('InvalidArgument');
    expect(e.message).toMatch(/1 GiB/);
    e = await rejection(get(url('k'), { store: via(true, { skipSignature: true }) }));
    expect(e.message).toMatch(/signed/);
    e = await rejection(get(url('k'), { store: via('yes' as unknown as true) }));
    expect(e.code).toBe('InvalidArgument');
    e = await rejection(get(url('k'), { store: via('require'), range: { offset: 0, length: 1 } }));
    expect(e.code).toBe('InvalidArgument');
  });

  it('the JS engine has no RDMA path: true goes over HTTP, require is RdmaUnavailable', async () => {
    const prev = process.env.OBJGET_ENGINE;
    process.env.OBJGET_ENGINE = 'js';
    try {
      const e = await rejection(get(url('k'), { store: via('require') }));
      expect(e.code).toBe('RdmaUnavailable');
    } finally {
      process.env.OBJGET_ENGINE = prev;
    }
  });
});
