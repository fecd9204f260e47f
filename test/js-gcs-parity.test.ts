// The pure-JS engine on GCS (fake-gcs-server) against the native engine: the same calls give the
// same bytes, results and error codes, faults from the fault proxy included. fake-gcs-server
// does not take the native engine's XML-API writes (README, "Emulator gaps"), so uploads and
// copies made by the JS engine are read back and checked by the native engine instead.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { describe, expect, it } from 'vitest';
import { copy, download, engineInfo, exists, get, head } from '../src/index.js';
// (Apart: other tests import the same run of names.)
import { remove, upload, type StoreOptions } from '../src/index.js';
import { distEntry, runModule } from './helpers/child.js';
import { everything, rejection } from './helpers/expect.js';
import { faultProxy } from './helpers/fault-proxy.js';
import { both, digest, listAll, outcome } from './helpers/parity.js';
import {
  readsAlike,
  restoreEngine,
  resumesAlike,
  throwingCredentialsAlike,
} from './helpers/parity.js';
import { backends, bytes, SENTINEL_SECRET, servers } from './helpers/servers.js';
import { tempDir, uniqueKey, useEngine } from './helpers/servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
restoreEngine();

const url = (key: string): string => `gs://${servers().gcs.bucket}/${key}`;
const store = (): StoreOptions => ({
  config: { google_service_account_key: servers().gcs.serviceAccountKey },
  maxRetries: 1,
  initialBackoffMs: 10,
});
/** The emulator's store with its requests sent to `endpoint` (a proxy in front of it). */
const through = (endpoint: string, extra: Partial<StoreOptions> = {}): StoreOptions => ({
  ...store(),
  ...extra,
  config: { ...store().config, google_base_url: endpoint, ...extra.config },
});

async function put(objects: Record<string, Buffer>): Promise<void> {
  const gcs = backends().find((b) => b.name === 'gcs')!;
  for (const [k, v] of Object.entries(objects)) await gcs.put(k, v);
}

/** The emulator's JSON resource of an object (what GCS stored with it). */
async function resource(key: string): Promise<Record<string, unknown> | undefined> {
  const s = servers().gcs;
  const r = await fetch(`${s.url}/storage/v1/b/${s.bucket}/o/${encodeURIComponent(key)}`);
  return r.ok ? ((await r.json()) as Record<string, unknown>) : undefined;
}

async function crc64nvme(data: Buffer): Promise<string> {
  const h = new Crc64Nvme();
  h.update(data);
  return Buffer.from(await h.digest()).toString('base64');
}

/** A proxy in front of fake-gcs-server (its XML API routes by Host: the target's is sent). */
const proxyTo = (
  fail: Parameters<typeof faultProxy>[1],
  options: Parameters<typeof faultProxy>[2] = {},
) => faultProxy(servers().gcs.url, fail, { ...options, targetHost: true });

/**
 * A pass-through proxy to fake-gcs-server for uploads: resumable sessions are pointed back at
 * it (their Location), requests are logged, and it can damage bytes in transit (flip the last
 * byte before the closing boundary of a multipart body) or fail one request with a 500: faults
 * no real server produces on request.
 */
async function uploadProxy(
  fault: (req: http.IncomingMessage) => 'corrupt' | 'fail' | undefined,
): Promise<{ url: string; log: string[]; close(): Promise<void> }> {
  const to = new URL(servers().gcs.url);
  const log: string[] = [];
  let self = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const f = fault(req);
      log.push(`${req.method}${f ? ` ${f}` : ''}`);
      if (f === 'fail') {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"code":500}}');
        return;
      }
      if (f === 'corrupt') {
        const end = body.lastIndexOf(Buffer.from('\r\n--'));
        body[end - 1] = body[end - 1]! ^ 0xff;
      }
      const up = http.request(
        {
          host: to.hostname,
          port: to.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: to.host, 'content-length': String(body.length) },
        },
        (r) => {
          const headers = { ...r.headers };
          if (headers.location) headers.location = headers.location.replace(to.origin, self);
          res.writeHead(r.statusCode ?? 502, headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url: self,
    log,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('engineInfo', () => {
  it('the JS engine declares gs:// and every call it makes there', () => {
    const js = engineInfo().js;
    expect(js.schemes).toContain('gs');
    expect(js.capabilities).toEqual(
      expect.arrayContaining(['head', 'get', 'download', 'downloadMany', 'exists']),
    );
    expect(js.capabilities).toEqual(expect.arrayContaining(['list', 'remove', 'copy', 'upload']));
  });
});

describe('reads: bytes, results and checksums', () => {
  const prefix = uniqueKey('jgp-read');
  // Verified by the crc32c of x-goog-hash.
  readsAlike({ url, store, put, algorithm: 'crc32c' }, prefix);

  it('head gives the generation as the version, on both engines', async () => {
    await put({ [`${prefix}/g`]: bytes(5, 5) });
    const [ha, hb] = await both(() => head(url(`${prefix}/g`), { store: store() }));
    expect(hb).toEqual(ha);
    expect(hb.version).toMatch(/^\d+$/);
  });

  it('odd names (space, %, ?, #, a newline, non-ASCII) are read as stored', async () => {
    // (Names with `.`, `..` or empty segments cannot be named by a URL: a URL parser folds them.)
    const names = ['sp ace+plus%25.bin', 'q?v=1 #x', 'new\nline', 'ü/é.bin', 'x..y'];
    const objects: Record<string, Buffer> = {};
    for (const [i, n] of names.entries()) objects[`${prefix}/odd/${n}`] = bytes(10 + i, i);
    await put(objects);
    for (const [i, n] of names.entries()) {
      const u = `gs://${servers().gcs.bucket}/${encodeURIComponent(`${prefix}/odd/${n}`).replace(/%2F/g, '/')}`;
      const [a, b] = await both(() => outcome(get(u, { store: store() }).then(digest)));
      expect(b, n).toEqual(digest(bytes(10 + i, i)));
      // The native engine refuses a control character in a GCS name (object_store's Path).
      expect(b, n).toEqual(n === 'new\nline' ? digest(bytes(10 + i, i)) : a);
      if (n === 'new\nline') expect(a).toEqual({ error: 'InvalidUrl' });
    }
  });
});

describe('faults: the same outcome on both engines', () => {
  it('a body cut mid-way is resumed from where it stopped, byte-identical', () =>
    resumesAlike(
      { url, store, put, through, proxy: (fail) => proxyTo(fail) },
      `${uniqueKey('jgp-cut')}/o.bin`,
    ));

  it('503, then success: retried; past maxRetries: the same code', async () => {
    const key = `${uniqueKey('jgp-503')}/o.bin`;
    await put({ [key]: bytes(1000, 4) });
    const unavailable = { kind: 'status' as const, status: 503, body: '{"error":{"code":503}}' };
    const codes: string[] = [];
    for (const engine of ['native', 'js'] as const) {
      let n = 0;
      const proxy = await proxyTo((req) =>
        decodeURIComponent(req.url ?? '').includes(key) && n++ < 2 ? unavailable : false,
      );
      const always = await proxyTo(() => unavailable);
      try {
        useEngine(engine);
        const got = await get(url(key), { store: through(proxy.url, { maxRetries: 3 }) });
        expect(got.equals(bytes(1000, 4)), engine).toBe(true);
        codes.push((await rejection(get(url(key), { store: through(always.url) }))).code);
      } finally {
        await proxy.close();
        await always.close();
      }
    }
    expect(codes[1]).toBe(codes[0]);
    expect(codes[1]).toBe('Throttled');
  });

  it('401 and 403 whose bodies echo the token: the same codes, no token shown', async () => {
    const key = `${uniqueKey('jgp-40x')}/o.bin`;
    for (const status of [401, 403]) {
      const proxy = await proxyTo((req) => ({
        kind: 'status',
        status,
        body: JSON.stringify({
          error: { code: status, message: `bad ${String(req.headers.authorization)}` },
        }),
      }));
      try {
        const s = through(proxy.url, {
          config: { google_bearer_token: `${SENTINEL_SECRET}-bearer` },
        });
        delete s.config!.google_service_account_key;
        const [a, b] = await both(() => rejection(get(url(key), { store: s })));
        expect(b.code).toBe(a.code);
        expect(b.code).toBe(status === 401 ? 'Unauthenticated' : 'PermissionDenied');
        for (const e of [a, b]) expect(everything(e)).not.toContain(SENTINEL_SECRET);
      } finally {
        await proxy.close();
      }
    }
  });
});

describe('credentials: the same token reaches the server from either engine', () => {
  /** The Authorization headers of the requests through a proxy in front of the emulator. */
  async function seen(
    call: (proxyUrl: string) => Promise<unknown>,
  ): Promise<[(string | undefined)[], unknown]> {
    const auth: (string | undefined)[] = [];
    const proxy = await proxyTo((req) => {
      auth.push(req.headers.authorization);
      return false;
    });
    try {
      return [auth, await outcome(call(proxy.url))];
    } finally {
      await proxy.close();
    }
  }

  it('the emulator key (disable_oauth) sends none; a bearer token and store.credentials are sent as given', async () => {
    const key = `${uniqueKey('jgp-cred')}/o.bin`;
    await put({ [key]: bytes(50, 2) });
    const token = `${SENTINEL_SECRET}-token`;
    const stores: Record<string, (p: string) => StoreOptions> = {
      emulator: (p) => through(p),
      bearer: (p) => ({ config: { google_base_url: p, google_bearer_token: token } }),
      function: (p) => ({ config: { google_base_url: p }, credentials: async () => ({ token }) }),
    };
    for (const [name, s] of Object.entries(stores)) {
      const [[authA, a], [authB, b]] = await both(() =>
        seen((p) => get(url(key), { store: s(p) }).then(digest)),
      );
      expect(b, name).toEqual(a);
      expect(b).toBe(digest(bytes(50, 2)));
      const want = name === 'emulator' ? [undefined, ''] : [`Bearer ${token}`];
      expect(want, name).toContain(authB[0]);
      expect(new Set(authB), name).toEqual(new Set([authB[0]]));
      if (name !== 'emulator') expect(authA[0], name).toBe(authB[0]);
    }
    await throwingCredentialsAlike(url(key), store());
  });

  it('a service-account key: a self-signed JWT (google-auth-library) on the JS engine, as on the native one', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = JSON.stringify({
      type: 'service_account',
      client_email: 'objget-test@example.iam.gserviceaccount.com',
      private_key_id: 'objget-test-key',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    });
    const key = `${uniqueKey('jgp-sa')}/o.bin`;
    await put({ [key]: bytes(70, 7) });
    const [[authA, a], [authB, b]] = await both(() =>
      seen((p) =>
        get(url(key), {
          store: { config: { google_base_url: p, google_service_account_key: saKey } },
        }).then(digest),
      ),
    );
    expect(b).toEqual(a);
    expect(b).toBe(digest(bytes(70, 7)));
    for (const auth of [authA[0], authB[0]]) {
      const [, payload] = String(auth)
        .replace(/^Bearer /, '')
        .split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as {
        iss: string;
        scope: string;
      };
      expect(claims.iss).toBe('objget-test@example.iam.gserviceaccount.com');
      expect(claims.scope).toBe('https://www.googleapis.com/auth/cloud-platform');
    }
  });

  it('application default credentials under CLOUDSDK_CONFIG; none at all: Unauthenticated at once', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const gcloud = tempDir();
    writeFileSync(
      join(gcloud, 'application_default_credentials.json'),
      JSON.stringify({
        type: 'service_account',
        client_email: 'objget-adc@example.iam.gserviceaccount.com',
        private_key_id: 'objget-adc-key',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      }),
    );
    const home = tempDir();
    mkdirSync(join(home, '.config'));
    const saved = { ...process.env };
    const keys = ['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_SERVICE_ACCOUNT'];
    keys.push('GOOGLE_SERVICE_ACCOUNT_KEY');
    try {
      for (const k of keys) delete process.env[k];
      process.env.HOME = home;
      process.env.OBJGET_METADATA = 'off';
      process.env.CLOUDSDK_CONFIG = gcloud;
      const key = `${uniqueKey('jgp-adc')}/o.bin`;
      await put({ [key]: bytes(30, 3) });
      const [[, a], [authB, b]] = await both(() =>
        seen((p) => get(url(key), { store: { config: { google_base_url: p } } }).then(digest)),
      );
      expect(b).toEqual(a);
      expect(b).toBe(digest(bytes(30, 3)));
      expect(authB[0]).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
      delete process.env.CLOUDSDK_CONFIG;
      // (Another base URL: a store the native engine has not built with the file.)
      const none = { config: { google_base_url: `${servers().gcs.url}/` }, maxRetries: 0 };
      const [ea, eb] = await both(() => rejection(head(url(key), { store: none })));
      expect(eb.code).toBe(ea.code);
      expect(eb.code).toBe('Unauthenticated');
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

describe('google-auth-library is optional (child processes, with it hidden)', () => {
  it('the emulator, a bearer token and skipSignature never load it; a key that needs it says what to install', async () => {
    const s = servers().gcs;
    const key = `${uniqueKey('jgp-lib')}/o.bin`;
    await put({ [key]: bytes(40, 4) });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = JSON.stringify({
      type: 'service_account',
      client_email: 'objget-lib@example.iam.gserviceaccount.com',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    });
    // A resolve hook that answers for google-auth-library as if it were not installed, and
    // says whether anything asked for it.
    const asked = join(tempDir(), 'asked');
    const hook = `import { appendFileSync } from 'node:fs';
    export async function resolve(s, c, next) {
      if (s === 'google-auth-library') {
        appendFileSync(${JSON.stringify(asked)}, 'asked');
        throw Object.assign(new Error('not installed'), { code: 'ERR_MODULE_NOT_FOUND' });
      }
      return next(s, c);
    }`;
    const source = `
      import { existsSync } from 'node:fs';
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      const { get } = await import(${JSON.stringify(distEntry())});
      const u = 'gs://${s.bucket}/${key}';
      const base = { google_base_url: ${JSON.stringify(s.url)} };
      const stores = {
        emulator: { config: { google_service_account_key: ${JSON.stringify(s.serviceAccountKey)} } },
        bearer: { config: { ...base, google_bearer_token: 'x' } },
        skip: { config: base, skipSignature: true },
        key: { config: { ...base, google_service_account_key: ${JSON.stringify(saKey)} } },
      };
      for (const [name, store] of Object.entries(stores)) {
        const r = await get(u, { store }).then((b) => b.length, (e) => e.code + ': ' + e.message);
        console.log(name + (existsSync(${JSON.stringify(asked)}) ? ' (asked)' : '') + ' ' + r);
      }`;
    const { done } = runModule(source, { OBJGET_ENGINE: 'js' });
    const r = await done;
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['emulator 40', 'bearer 40', 'skip 40']);
    expect(lines[3]).toMatch(
      /^key \(asked\) NotSupported: .*needs the optional package google-auth-library \(npm install google-auth-library\)/,
    );
  });
});

describe('error codes for the same causes', () => {
  it('missing objects, bad settings, ranges past the end, another bucket, no key', async () => {
    const key = `${uniqueKey('jgp-err')}/o.bin`;
    await put({ [key]: bytes(100, 1) });
    const missing = url(`${key}.none`);
    const unknownKey: StoreOptions = {
      ...store(),
      config: { ...store().config, google_nope: 'x' },
    };
    const both2: StoreOptions = {
      ...store(),
      config: { ...store().config, google_service_account: '/nonexistent/key.json' },
    };
    const cases: [string, () => Promise<unknown>][] = [
      ['get missing', () => get(missing, { store: store() })],
      ['head missing', () => head(missing, { store: store() })],
      ['download missing', () => download(missing, join(tempDir(), 'x'), { store: store() })],
      ['exists missing', () => exists(missing, { store: store() })],
      ['exists present', () => exists(url(key), { store: store() })],
      ['remove missing', () => remove(missing, { store: store() })],
      ['unknown config key', () => get(url(key), { store: unknownKey })],
      ['range past the end', () => get(url(key), { store: store(), range: { offset: 101 } })],
      ['copy across buckets', () => copy(url(key), `gs://other-bucket/x`, { store: store() })],
      ['bucket with no key', () => get(`gs://${servers().gcs.bucket}/`, { store: store() })],
      [
        'upload partSize too small',
        () => upload(Buffer.from('z'), url(`${key}.p`), { store: store(), partSize: 1000 }),
      ],
      ['a missing bucket', () => head(`gs://objget-no-such-bucket/x`, { store: store() })],
      ['key file and key JSON', () => head(url(key), { store: both2 })],
    ];
    for (const [what, call] of cases) {
      const [a, b] = await both(() => outcome(call()));
      expect(b, what).toEqual(a);
    }
  });
});

describe('listings', () => {
  it('the same keys, relative keys, URLs, sizes and ETags as the native engine', async () => {
    const prefix = uniqueKey('jgp-list');
    const objects: Record<string, Buffer> = {};
    for (const k of ['a.bin', 'dir/b.bin', 'sp ace+plus%25.bin', 'ü/é.bin', 'q?v=1 #x']) {
      objects[`${prefix}/${k}`] = bytes(k.length, k.length);
    }
    await put(objects);
    for (const p of [`${prefix}/`, prefix, `${prefix}/dir`]) {
      const [a, b] = await both(() => listAll(url(p), store()));
      const strip = (l: typeof a) => l.map((o) => ({ ...o, lastModified: undefined }));
      expect(strip(b), p).toEqual(strip(a));
      // The JSON API's times keep their microseconds, the XML API's whole seconds.
      for (const [i, o] of b.entries()) {
        const d = o.lastModified!.getTime() - a[i]!.lastModified!.getTime();
        expect(Math.abs(d)).toBeLessThan(1000);
      }
    }
  });

  it('names exactly as stored, folder markers and control characters included, and more than one page', async () => {
    const prefix = uniqueKey('jgp-pages');
    const odd = ['dir/', 'new\nline', 'a//b', './x', '../y'];
    const objects: Record<string, Buffer> = {};
    for (const k of odd) objects[`${prefix}/${k}`] = Buffer.from(k);
    for (let i = 0; i < 1005; i++)
      objects[`${prefix}/n/${String(i).padStart(4, '0')}`] = Buffer.from([i & 255]);
    const entries = Object.entries(objects);
    const gcs = backends().find((b) => b.name === 'gcs')!;
    for (let i = 0; i < entries.length; i += 50) {
      await Promise.all(entries.slice(i, i + 50).map(([k, v]) => gcs.put(k, v)));
    }
    useEngine('js');
    const listed = await listAll(url(`${prefix}/`), store());
    expect(listed.map((o) => o.key)).toEqual(Object.keys(objects).sort());
    expect(
      listed
        .filter((o) => odd.includes(o.relative))
        .map((o) => o.relative)
        .sort(),
    ).toEqual([...odd].sort());
    // Each listed URL names its object: reading it back gives its bytes (but for names with
    // `.`, `..` or empty segments, which a URL parser folds).
    for (const o of listed.filter((l) => ['dir/', 'new\nline'].includes(l.relative))) {
      expect((await get(o.url, { store: store() })).toString(), o.key).toBe(o.relative);
    }
    await remove(
      listed.map((o) => o.url),
      { store: store() },
    );
    // What is left: the names no URL can name (`./x`, `../y` fold to `x`, `y`).
    const left = await listAll(url(`${prefix}/`), store());
    expect(left.map((o) => o.relative)).toEqual(['../y', './x']);
  });
});

describe('writes by the JS engine, read back by the native engine', () => {
  it('uploads of a Buffer, a file and a stream: the bytes, the CRC64NVME result, the attributes stored', async () => {
    const dir = tempDir();
    const data = bytes(12 * MiB + 5, 21);
    writeFileSync(join(dir, 'src.bin'), data);
    const prefix = uniqueKey('jgp-up');
    const sources: Record<string, [() => Parameters<typeof upload>[0], Buffer, number]> = {
      empty: [() => Buffer.alloc(0), Buffer.alloc(0), 1],
      small: [() => Buffer.from('hello'), Buffer.from('hello'), 1],
      buffer: [() => data, data, 3],
      file: [() => join(dir, 'src.bin'), data, 3],
      stream: [
        () =>
          Readable.from(
            Array.from({ length: Math.ceil(data.length / (64 * KiB)) }, (_, i) =>
              data.subarray(i * 64 * KiB, (i + 1) * 64 * KiB),
            ),
          ),
        data,
        3,
      ],
    };
    for (const [name, [source, want, parts]] of Object.entries(sources)) {
      useEngine('js');
      const u = url(`${prefix}/${name}`);
      const seen: number[] = [];
      const r = await upload(source(), u, {
        store: store(),
        partSize: 5 * MiB,
        contentType: 'application/x-objget',
        metadata: { origin: 'parity' },
        onProgress: (p) => seen.push(p.bytes),
      });
      expect(r, name).toMatchObject({ bytes: want.length, parts, engine: 'js', path: 'http' });
      expect(r.checksum).toEqual({ algorithm: 'crc64nvme', value: await crc64nvme(want) });
      expect(seen.at(-1)).toBe(want.length);
      useEngine('native');
      expect(digest(await get(u, { store: store() })), name).toBe(digest(want));
      const h = await head(u, { store: store() });
      expect(h.size).toBe(want.length);
      expect(r.version).toBe(h.version);
      const stored = await resource(`${prefix}/${name}`);
      expect(stored).toMatchObject({
        contentType: 'application/x-objget',
        metadata: { origin: 'parity' },
      });
    }
  });

  it('the CRC32C goes with the bytes: bytes damaged in transit are refused, ChecksumMismatch, nothing stored', async () => {
    const proxy = await uploadProxy((req) => (req.method === 'POST' ? 'corrupt' : undefined));
    try {
      useEngine('js');
      const key = `${uniqueKey('jgp-crc')}/o.bin`;
      const err = await rejection(
        upload(bytes(1000, 5), url(key), { store: through(proxy.url, { maxRetries: 0 }) }),
      );
      expect(err.code).toBe('ChecksumMismatch');
      expect(await resource(key)).toBeUndefined();
    } finally {
      await proxy.close();
    }
  });

  it('ifNotExists (single request and resumable): AlreadyExists, the first bytes kept; racing uploads: one wins', async () => {
    useEngine('js');
    for (const size of [1000, 6 * MiB + 5]) {
      const u = url(`${uniqueKey('jgp-once')}/o.bin`);
      const opts = { store: store(), ifNotExists: true, partSize: 5 * MiB };
      await upload(bytes(size, 1), u, opts);
      const err = await rejection(upload(bytes(size, 2), u, opts));
      expect(err.code, String(size)).toBe('AlreadyExists');
      expect(digest(await get(u, { store: store() }))).toBe(digest(bytes(size, 1)));
      const race = url(`${uniqueKey('jgp-race')}/o.bin`);
      const outcomes = await Promise.allSettled(
        [10, 20].map((seed) => upload(bytes(size, seed), race, opts)),
      );
      const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
      expect(won.length, String(size)).toBe(1);
      expect(
        (outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason.code,
      ).toBe('AlreadyExists');
      expect(digest(await get(race, { store: store() }))).toBe(
        digest(bytes(size, [10, 20][won[0]!]!)),
      );
    }
  });

  it('a resumable upload that fails at part 2 is cancelled: nothing stored', async () => {
    const key = `${uniqueKey('jgp-fail')}/o.bin`;
    const proxy = await uploadProxy((req) =>
      req.method === 'PUT' && /^bytes 5242880-/.test(String(req.headers['content-range']))
        ? 'fail'
        : undefined,
    );
    try {
      useEngine('js');
      const err = await rejection(
        upload(bytes(12 * MiB, 4), url(key), {
          store: through(proxy.url, { maxRetries: 0 }),
          partSize: 5 * MiB,
        }),
      );
      expect(err.code).toBe('Generic');
      // Started, part 1 kept, part 2 failed, the session cancelled.
      expect(proxy.log).toEqual(['POST', 'PUT', 'PUT fail', 'DELETE']);
    } finally {
      await proxy.close();
    }
    expect(await resource(key)).toBeUndefined();
    expect(await exists(url(key), { store: store() })).toBe(false);
  });

  it('a stream that fails mid-way, or an abort: the upload settles, nothing stored', async () => {
    useEngine('js');
    const data = bytes(21 * MiB + 3, 12);
    const chunked = (failAt?: number): Readable =>
      Readable.from(
        (async function* () {
          for (let at = 0; at < data.length; at += 64 * KiB) {
            if (failAt !== undefined && at >= failAt) throw new Error('source broke');
            yield data.subarray(at, at + 64 * KiB);
          }
        })(),
      );
    const broken = `${uniqueKey('jgp-broken')}/o.bin`;
    const err = await rejection(
      upload(chunked(12 * MiB), url(broken), { store: store(), partSize: 5 * MiB }),
    );
    expect(err.message).toMatch(/source broke/);
    expect(await resource(broken)).toBeUndefined();
    const aborted = `${uniqueKey('jgp-abort')}/o.bin`;
    const ac = new AbortController();
    const stopped = await rejection(
      upload(chunked(), url(aborted), {
        store: store(),
        partSize: 5 * MiB,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.bytes > 0) ac.abort();
        },
      }),
    );
    expect(stopped.code).toBe('Aborted');
    expect(await resource(aborted)).toBeUndefined();
  });

  it('copy and remove: the copy read back by the native engine; ifNotExists onto a new name', async () => {
    const prefix = uniqueKey('jgp-copy');
    await put({ [`${prefix}/src`]: bytes(2000, 3) });
    useEngine('js');
    await copy(url(`${prefix}/src`), url(`${prefix}/copy`), { store: store() });
    await copy(url(`${prefix}/src`), url(`${prefix}/once`), { store: store(), ifNotExists: true });
    useEngine('native');
    for (const k of ['copy', 'once']) {
      expect(digest(await get(url(`${prefix}/${k}`), { store: store() })), k).toBe(
        digest(bytes(2000, 3)),
      );
    }
    useEngine('js');
    const missing = await rejection(
      copy(url(`${prefix}/none`), url(`${prefix}/x`), { store: store() }),
    );
    expect(missing.code).toBe('NotFound');
    await remove([url(`${prefix}/copy`), url(`${prefix}/once`), url(`${prefix}/src.none`)], {
      store: store(),
    });
    const [a, b] = await both(() => listAll(url(`${prefix}/`), store()));
    expect(b.map((o) => o.key)).toEqual(a.map((o) => o.key));
    expect(b.map((o) => o.key)).toEqual([`${prefix}/src`]);
  });
});

// (fake-gcs-server keeps no earlier generations and ignores If-Match and ifGenerationMatch on
// reads and on rewrite: an object replaced mid-download, and copy ifNotExists onto an existing
// name, cannot be shown here; README, "Emulator gaps".)
