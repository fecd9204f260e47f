// S3 over RDMA as NVIDIA's real cuObject client behaves (issue 16), against the simulator built to
// behave the same way and the test gateway in front of MinIO: availability is proven by
// registering memory, a client that never finishes initialising cannot block the event loop,
// failures have precise codes and are reported once, replies with less proof are accepted when
// something else proves the bytes, cuFile's log stays out of the working directory, the build
// records its header, and empty objects go over plain HTTP.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { download, engineInfo, getDetailed, upload } from '../src/index.js';
import { distEntry, ROOT, runModule } from './helpers/child.js';
import { rejection } from './helpers/expect.js';
import { rdmaSuite } from './helpers/rdma.js';
import { minioBytes, minioHas, requestsFor, seed, uploadsInProgress } from './helpers/rdma.js';
import { bytes, s3Store, servers, tempDir, uniqueKey } from './helpers/servers.js';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const suite = rdmaSuite(5 * MiB);
const { via, url, cufile } = suite;
process.env.OBJGET_RDMA_LOG = join(tempDir(), 'worker-cufile.log');

interface ChildOut {
  rdma: {
    available: boolean;
    reason?: string;
    backend?: string;
    log?: string;
    header?: string;
    clientSize?: number;
  };
  req?: { code: string; message: string };
  alloc?: { code: string; message: string };
  up?: { path: string } | { code: string };
  ticks?: number;
  waitedMs?: number;
  infoMs?: number;
}

/** A snippet run in a fresh process (the client is created once per process), in `cwd`. */
async function inChild(body: string, env: Record<string, string | undefined>, cwd: string) {
  const { done } = runModule(
    `import * as o from ${JSON.stringify(distEntry())};
     const out = {};
     const fail = (e) => ({ code: e.code, message: e.message });
     ${body}
     console.log(JSON.stringify(out));`,
    { OBJGET_RDMA_LOG: undefined, CUFILE_LOGFILE_PATH: undefined, ...env },
    cwd,
  );
  const r = await done;
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as ChildOut;
}

const requireStore = JSON.stringify({
  rdma: 'require',
  config: {
    aws_access_key_id: 'a',
    aws_secret_access_key: 'b',
    aws_endpoint: 'http://127.0.0.1:9',
  },
});

describe('availability is proven by registration (the real library connects without devices)', () => {
  it('no device configured: connected, yet unavailable with the registration failure, reported once, logged outside the working directory', async () => {
    const dir = tempDir();
    const cwd = join(dir, 'cwd');
    mkdirSync(cwd);
    const json = join(dir, 'cufile.json');
    writeFileSync(json, JSON.stringify({ properties: { rdma_dev_addr_list: [] } }));
    const log = join(dir, 'cufile.log');
    const key = uniqueKey('rdma16/nodev');
    const store = JSON.stringify({ ...s3Store(servers()), rdma: true, rdmaPartSize: 5 * MiB });
    const out = await inChild(
      `out.rdma = o.engineInfo().rdma;
       out.req = await o.get('s3://b/k', { store: ${requireStore} }).then(() => null, fail);
       try { o.allocRdmaBuffer(4096); } catch (e) { out.alloc = fail(e); }
       for (let i = 0; i < 3; i++)
         out.up = await o.upload(Buffer.alloc(12 << 20, i), ${JSON.stringify(url(key))}, { store: ${store} })
           .then((r) => ({ path: r.path }), fail);`,
      { CUFILE_ENV_PATH_JSON: json, OBJGET_RDMA_LOG: log },
      cwd,
    );
    expect(out.rdma).toMatchObject({ available: false, backend: 'simulator', log });
    expect(out.rdma.reason).toMatch(/^registration failed: .*cuFile's log, /);
    expect(out.rdma.reason).toContain(log);
    // Precise codes, with no code name inside a message.
    expect(out.req!.code).toBe('RdmaUnavailable');
    expect(out.req!.message).toMatch(/^registration failed/);
    expect(out.alloc!.code).toBe('RdmaUnavailable');
    expect(out.alloc!.message).toMatch(/^registration failed/);
    for (const m of [out.req!.message, out.alloc!.message]) expect(m).not.toMatch(/Generic/);
    // Under `true` every upload went over HTTP, and registration was tried once in the process.
    expect(out.up).toEqual({ path: 'http' });
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/failed to register with RDMA, no devices found in configuration/);
    expect(readdirSync(cwd)).toEqual([]); // no cufile.log in the working directory
  });

  it('no cuFile configuration at all: still connected, unavailable because registration fails', async () => {
    const dir = tempDir();
    const out = await inChild(
      'out.rdma = o.engineInfo().rdma;',
      { CUFILE_ENV_PATH_JSON: join(dir, 'absent.json'), TMPDIR: dir },
      dir,
    );
    expect(out.rdma.available).toBe(false);
    expect(out.rdma.reason).toMatch(/^registration failed: /);
    // By default cuFile's log goes under the temporary directory, at warning level.
    expect(out.rdma.log).toMatch(new RegExp(`^${dir}/objget-cufile-\\d+\\.log$`));
    expect(readFileSync(out.rdma.log!, 'utf8')).toMatch(/no devices found/);
    expect(readdirSync(dir).filter((n) => n === 'cufile.log')).toEqual([]);
  });

  it('a configuration cuFile cannot parse: "client not connected"; its logging.dir is honoured', async () => {
    const dir = tempDir();
    const json = join(dir, 'cufile.json');
    writeFileSync(json, '{"properties": {"rdma_dev_addr_list": ["192.0.2.10"]');
    const out = await inChild(
      'out.rdma = o.engineInfo().rdma;',
      { CUFILE_ENV_PATH_JSON: json },
      dir,
    );
    expect(out.rdma.available).toBe(false);
    expect(out.rdma.reason).toMatch(/^client not connected: .*CUFILE_ENV_PATH_JSON/);

    const logs = join(dir, 'logs');
    mkdirSync(logs);
    writeFileSync(json, JSON.stringify({ logging: { dir: logs }, properties: {} }));
    const out2 = await inChild(
      'out.rdma = o.engineInfo().rdma;',
      { CUFILE_ENV_PATH_JSON: json },
      dir,
    );
    expect(out2.rdma.log).toBe(logs);
    expect(readFileSync(join(logs, 'cufile.log'), 'utf8')).toMatch(/no devices found/);
  });

  it('with a device: available, and the build says which header and what sizeof(cuObjClient)', () => {
    const r = engineInfo().rdma;
    expect(r.reason).toBeUndefined();
    expect(r.available).toBe(true);
    const build = JSON.parse(
      readFileSync(join(ROOT, 'native', 'build', 'lib', 'rdma-build.json'), 'utf8'),
    ) as { header: string; clientSize: number };
    expect(r.header).toBe(build.header);
    expect(r.header).toBe(join(ROOT, 'native', 'sim', 'cuobjclient.h'));
    expect(build.clientSize).toBeGreaterThan(0);
    expect(r.clientSize).toBe(build.clientSize);
    expect(r.log).toBe(process.env.OBJGET_RDMA_LOG);
  });
});

describe('a client whose initialisation never ends', () => {
  it('times out without blocking the event loop; engineInfo().rdma says so', async () => {
    const dir = tempDir();
    const out = await inChild(
      `let ticks = 0;
       const timer = setInterval(() => ticks++, 10);
       const t0 = Date.now();
       out.req = await o.get('s3://b/k', { store: ${requireStore} }).then(() => null, fail);
       out.waitedMs = Date.now() - t0;
       out.ticks = ticks;
       clearInterval(timer);
       const t1 = Date.now();
       out.rdma = o.engineInfo().rdma;
       out.infoMs = Date.now() - t1;`,
      {
        CUFILE_ENV_PATH_JSON: cufile,
        OBJGET_RDMA_SIM_HANG: '1',
        OBJGET_RDMA_INIT_TIMEOUT_MS: '600',
      },
      dir,
    );
    expect(out.req!.code).toBe('RdmaUnavailable');
    expect(out.req!.message).toMatch(/^cuObject client initialisation timed out after 600 ms/);
    expect(out.waitedMs).toBeGreaterThanOrEqual(550);
    // The loop ran the whole time the client was being waited for.
    expect(out.ticks).toBeGreaterThanOrEqual(20);
    expect(out.rdma.available).toBe(false);
    expect(out.rdma.reason).toMatch(/^cuObject client initialisation timed out/);
    expect(out.infoMs).toBeLessThan(200);
  });
});

describe('replies with less proof', () => {
  it('nobytes: a GET without a byte count is proven by the checksum, or redone over HTTP', async () => {
    const small = uniqueKey('rdma16/nobytes-s');
    const big = uniqueKey('rdma16/nobytes-b');
    const a = bytes(MiB, 1);
    const b = bytes(12 * MiB + 5, 2);
    await seed(suite.bucket, small, a);
    await seed(suite.bucket, big, b);
    await suite.gw.setMode('nobytes');
    // One part, the whole object: its CRC64NVME came with the reply and matches what landed.
    const one = await getDetailed(url(small), { store: via('require') });
    expect(one.result.path).toBe('rdma');
    expect(sha(one.data)).toBe(sha(a));
    // Ranged parts carry no checksum: under true each is fetched again over HTTP...
    const dest = join(tempDir(), 'b.bin');
    const r = await download(url(big), dest, { store: via(true) });
    expect(r.path).toBe('http');
    expect(sha(readFileSync(dest))).toBe(sha(b));
    // ...and under 'require' nothing proves them.
    const dest2 = join(tempDir(), 'c.bin');
    const e = await rejection(download(url(big), dest2, { store: via('require') }));
    expect(e.code).toBe('RdmaTransferFailed');
    expect(existsSync(dest2)).toBe(false);
  });

  it("noreply: a PUT without x-amz-rdma-reply is proven by the server's checksum echo", async () => {
    await suite.gw.setMode('noreply');
    for (const size of [MiB, 12 * MiB]) {
      const key = uniqueKey('rdma16/noreply');
      const data = bytes(size, 3);
      const r = await upload(data, url(key), { store: via('require') });
      expect(r.path).toBe('rdma');
      expect(sha(await minioBytes(suite.bucket, key))).toBe(sha(data));
    }
  });

  it('noecho: a whole PUT is proven by a HEAD; parts without proof are re-sent over HTTP under true', async () => {
    await suite.gw.setMode('noecho');
    const key = uniqueKey('rdma16/noecho');
    const data = bytes(MiB, 4);
    expect((await upload(data, url(key), { store: via('require') })).path).toBe('rdma');
    expect(sha(await minioBytes(suite.bucket, key))).toBe(sha(data));

    const multi = uniqueKey('rdma16/noecho-m');
    const payload = bytes(12 * MiB, 5);
    const r = await upload(payload, url(multi), { store: via(true) });
    expect(r.path).toBe('http');
    expect(sha(await minioBytes(suite.bucket, multi))).toBe(sha(payload));

    const req = uniqueKey('rdma16/noecho-r');
    const e = await rejection(upload(bytes(12 * MiB, 6), url(req), { store: via('require') }));
    expect(e.code).toBe('RdmaTransferFailed');
    expect(await minioHas(suite.bucket, req)).toBe(false);
    expect(await uploadsInProgress(suite.bucket, req)).toBe(0);
  });
});

describe('rdmaBindAddress', () => {
  it("binds a tokened request's connection to the given local address; one this host lacks is InvalidArgument", async () => {
    const key = uniqueKey('rdma16/bind');
    const data = bytes(MiB, 8);
    await suite.gw.clearLog();
    // 127.0.0.2 is this host's (all of 127/8 is), and not where loopback connections leave from.
    const r = await upload(data, url(key), {
      store: via('require', { rdmaBindAddress: '127.0.0.2' }),
    });
    expect(r.path).toBe('rdma');
    const got = await getDetailed(url(key), {
      store: via('require', { rdmaBindAddress: '127.0.0.1' }),
    });
    expect(sha(got.data)).toBe(sha(data));
    const log = await requestsFor(suite.gw, key);
    const put = log.find((e) => e.method === 'PUT' && e.tokenPresent);
    const get = log.find((e) => e.method === 'GET' && e.tokenPresent);
    expect(put?.remoteAddress).toMatch(/^(::ffff:)?127\.0\.0\.2$/);
    expect(get?.remoteAddress).toMatch(/^(::ffff:)?127\.0\.0\.1$/);

    for (const rdma of [true, 'require'] as const) {
      const e = await rejection(
        getDetailed(url(key), { store: via(rdma, { rdmaBindAddress: '192.0.2.1' }) }),
      );
      expect(e.code).toBe('InvalidArgument');
      expect(e.message).toMatch(/rdmaBindAddress 192\.0\.2\.1 is not an address of this host/);
    }
    const e = await rejection(
      getDetailed(url(key), { store: via(true, { rdmaBindAddress: 'nic0' }) }),
    );
    expect(e.code).toBe('InvalidArgument');
  });

  it("defaults to the one address of cuFile's device list when this host has it", async () => {
    const dir = tempDir();
    const json = join(dir, 'cufile.json');
    writeFileSync(json, JSON.stringify({ properties: { rdma_dev_addr_list: ['127.0.0.3'] } }));
    const key = uniqueKey('rdma16/bind-default');
    const store = JSON.stringify(via('require'));
    await suite.gw.clearLog();
    const out = await inChild(
      `out.up = await o.upload(Buffer.alloc(4096, 1), ${JSON.stringify(url(key))}, { store: ${store} })
         .then((r) => ({ path: r.path }), fail);`,
      { CUFILE_ENV_PATH_JSON: json },
      dir,
    );
    expect(out.up).toEqual({ path: 'rdma' });
    const put = (await requestsFor(suite.gw, key)).find((e) => e.method === 'PUT');
    expect(put?.remoteAddress).toMatch(/^(::ffff:)?127\.0\.0\.3$/);
  });
});

describe('zero-length objects', () => {
  it('go over plain HTTP, with no token, even under require', async () => {
    const key = uniqueKey('rdma16/empty');
    await suite.gw.clearLog();
    const put = await upload(Buffer.alloc(0), url(key), { store: via('require') });
    expect(put).toMatchObject({ path: 'http', bytes: 0 });
    const got = await getDetailed(url(key), { store: via('require') });
    expect(got.result.path).toBe('http');
    expect(got.data.length).toBe(0);
    const dest = join(tempDir(), 'empty.bin');
    expect((await download(url(key), dest, { store: via('require') })).path).toBe('http');
    expect(readFileSync(dest).length).toBe(0);
    const data = (await requestsFor(suite.gw, key)).filter(
      (e) => e.method === 'GET' || e.method === 'PUT',
    );
    expect(data.length).toBeGreaterThanOrEqual(3);
    expect(data.every((e) => !e.tokenPresent)).toBe(true);
    expect(engineInfo().rdma.tokens).toBe(0);
  });
});
