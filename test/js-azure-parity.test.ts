// The pure-JS engine on Azure Blob Storage (Azurite, which checks every Shared Key signature)
// against the native engine: the same calls give the same bytes, the same results (sizes, ETags,
// parts, verified checksums, listings) and the same error codes, faults from the fault proxy
// included. Each test runs the call on both engines and compares. (Entra ID tokens through
// @azure/identity cannot be tested here: Azurite takes bearer tokens only over https with
// --oauth; static tokens and store.credentials reach it, and their failures are compared.)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  copy,
  download,
  engineInfo,
  exists,
  get,
  head,
  list,
  remove,
  upload,
  type StoreOptions,
} from '../src/index.js';
import { everything, rejection } from './helpers/expect.js';
import { faultProxy } from './helpers/fault-proxy.js';
import { azureStore, putAzure, sasToken, smallPages } from './helpers/parity-azure.js';
import { both, digest, outcome, readsAlike, replacedAlike } from './helpers/parity.js';
import {
  bytes,
  SENTINEL_SECRET,
  servers,
  tempDir,
  uniqueKey,
  useEngine,
} from './helpers/servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  if (previous === undefined) delete process.env.OBJGET_ENGINE;
  else process.env.OBJGET_ENGINE = previous;
});

const url = (key: string): string => `az://${servers().azure.container}/${key}`;
const store = (): StoreOptions => azureStore();
/** The store reached through a proxy at `proxyUrl` (Azurite's path-style account kept). */
const through = (proxyUrl: string, extra: Partial<StoreOptions> = {}): StoreOptions => {
  const account = new URL(servers().azure.endpoint).pathname;
  return {
    ...store(),
    ...extra,
    config: { ...store().config, azure_storage_endpoint: `${proxyUrl}${account}` },
  };
};

async function listAll(prefixUrl: string, s: StoreOptions) {
  const out = [];
  for await (const o of list(prefixUrl, { store: s })) out.push(o);
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

describe('engineInfo', () => {
  it('the JS engine declares the Azure schemes and every call it makes there', () => {
    const js = engineInfo().js;
    expect(js.schemes).toEqual(expect.arrayContaining(['az', 'azure', 'abfs', 'abfss']));
    expect(js.capabilities).toEqual(
      expect.arrayContaining(['head', 'get', 'download', 'list', 'remove', 'copy', 'upload']),
    );
  });
});

describe('reads: bytes, results and checksums', () => {
  const prefix = uniqueKey('jap-read');
  const SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 3 * 64 * KiB + 7];
  // The read tests every provider runs (test/helpers/parity.ts); Azure keeps each blob's MD5.
  readsAlike({ url, store, put: putAzure, algorithm: 'md5' }, prefix);

  it('the URL forms: azure:// and abfss://container@account.dfs.core.windows.net', async () => {
    const s = servers().azure;
    const key = `${prefix}/${SIZES.at(-1)}`;
    for (const u of [
      `azure://${s.container}/${key}`,
      `abfss://${s.container}@${s.account}.dfs.core.windows.net/${key}`,
    ]) {
      const [a, b] = await both(() => outcome(get(u, { store: store() }).then(digest)));
      expect(b, u).toEqual(a);
      expect(b).toBe(digest(bytes(SIZES.at(-1)!, SIZES.at(-1)! + 41)));
    }
  });

  it('a SAS token: reads, writes and lists on both', async () => {
    const s = servers().azure;
    const sas: StoreOptions = {
      config: {
        azure_storage_account_name: s.account,
        azure_storage_endpoint: s.endpoint,
        azure_storage_sas_key: await sasToken(),
      },
      maxRetries: 1,
    };
    const key = `${prefix}/${SIZES.at(-1)}`;
    const [a, b] = await both(async (e) => {
      const got = digest(await get(url(key), { store: sas, partSize: 64 * KiB }));
      await upload(Buffer.from(`sas ${e}`), url(`${prefix}/sas-${e}`), { store: sas });
      const listed = (await listAll(url(`${prefix}/`), sas)).length;
      return [got, digest(await get(url(`${prefix}/sas-${e}`), { store: store() })), listed > 0];
    });
    expect(b[0]).toEqual(a[0]);
    expect(b[1]).toBe(digest(Buffer.from('sas js')));
    expect(b[2]).toBe(true);
  });
});

describe('faults: the same outcome on both engines', () => {
  it('a body cut mid-way is resumed from where it stopped, byte-identical', async () => {
    const key = `${uniqueKey('jap-cut')}/o.bin`;
    const data = bytes(3 * MiB + 5, 3);
    await putAzure({ [key]: data });
    for (const engine of ['native', 'js'] as const) {
      let cut = 0;
      const proxy = await faultProxy(servers().azure.endpoint, (req) =>
        req.method === 'GET' && req.url?.includes(key) && cut++ === 0
          ? { kind: 'reset', afterBytes: 100_000 }
          : false,
      );
      try {
        useEngine(engine);
        const dest = join(tempDir(), 'o.bin');
        const r = await download(url(key), dest, {
          store: through(proxy.url, { maxRetries: 3 }),
          partSize: MiB,
        });
        expect(proxy.failed, engine).toBe(1);
        expect(r.engine).toBe(engine);
        expect(readFileSync(dest).equals(data), engine).toBe(true);
      } finally {
        await proxy.close();
      }
    }
  });

  it('503 ServerBusy, then success: retried; past maxRetries: the same code', async () => {
    const key = `${uniqueKey('jap-503')}/o.bin`;
    await putAzure({ [key]: bytes(1000, 4) });
    const busy = {
      kind: 'status' as const,
      status: 503,
      body: '<Error><Code>ServerBusy</Code></Error>',
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'ServerBusy' },
    };
    const results: string[] = [];
    for (const engine of ['native', 'js'] as const) {
      let n = 0;
      const proxy = await faultProxy(servers().azure.endpoint, (req) =>
        req.url?.includes(key) && n++ < 2 ? busy : false,
      );
      const always = await faultProxy(servers().azure.endpoint, () => busy);
      try {
        useEngine(engine);
        const got = await get(url(key), { store: through(proxy.url, { maxRetries: 3 }) });
        expect(got.equals(bytes(1000, 4)), engine).toBe(true);
        const err = await rejection(get(url(key), { store: through(always.url) }));
        results.push(err.code);
      } finally {
        await proxy.close();
        await always.close();
      }
    }
    expect(results[1]).toBe(results[0]);
  });

  it('a 403 that echoes the signature: the same code, no key or signature shown', async () => {
    const key = `${uniqueKey('jap-403')}/o.bin`;
    await putAzure({ [key]: bytes(10, 5) });
    const seen: string[] = [];
    const proxy = await faultProxy(servers().azure.endpoint, (req) => {
      seen.push(String(req.headers.authorization));
      return {
        kind: 'status',
        status: 403,
        headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'AuthenticationFailed' },
        body: `<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>The MAC signature found in the HTTP request '${String(
          req.headers.authorization,
        )}' is not the same as any computed signature. Server used following string to sign: '${SENTINEL_SECRET}'</AuthenticationErrorDetail></Error>`,
      };
    });
    try {
      const wrong = Buffer.from(SENTINEL_SECRET.padEnd(64, 'x')).toString('base64');
      const s = through(proxy.url, {
        config: { ...through(proxy.url).config, azure_storage_account_key: wrong },
      });
      const [a, b] = await both(() => rejection(get(url(key), { store: s })));
      expect(b.code).toBe(a.code);
      const signatures = seen.map((h) => h.split(':').pop()!).filter((x) => x.length > 16);
      expect(signatures.length).toBeGreaterThan(0);
      // Neither engine's error holds the key, the signature or the string it signed (the
      // native engine's cause quotes Azure's body: AuthenticationErrorDetail is scrubbed).
      for (const e of [a, b]) {
        expect(everything(e)).not.toContain(SENTINEL_SECRET);
        expect(everything(e)).not.toContain(wrong);
        for (const sig of signatures) expect(everything(e)).not.toContain(sig);
      }
    } finally {
      await proxy.close();
    }
  });

  it('a blob replaced mid-download: Precondition, no file, on both', () =>
    replacedAlike(
      {
        url,
        store,
        put: putAzure,
        through,
        proxy: (fail, options) => faultProxy(servers().azure.endpoint, fail, options),
      },
      `${uniqueKey('jap-replaced')}/o.bin`,
    ));

  it('a failed block: the same code on both, no blob made, one already there untouched', async () => {
    const codes: string[] = [];
    for (const engine of ['native', 'js'] as const) {
      const key = `${uniqueKey('jap-blockfail')}/o.bin`;
      let blocks = 0;
      const proxy = await faultProxy(servers().azure.endpoint, (req) =>
        Boolean(req.method === 'PUT' && req.url?.includes('comp=block&') && ++blocks === 2),
      );
      try {
        useEngine(engine);
        const err = await rejection(
          upload(bytes(11 * MiB, 8), url(key), {
            store: through(proxy.url, { maxRetries: 0 }),
            partSize: 5 * MiB,
          }),
        );
        codes.push(err.code);
        expect(blocks, engine).toBeGreaterThanOrEqual(2);
      } finally {
        await proxy.close();
      }
      expect(await exists(url(key), { store: store() }), engine).toBe(false);
      // Over a blob already there: it keeps its bytes.
      await putAzure({ [key]: bytes(100, 9) });
      blocks = 0;
      const again = await faultProxy(servers().azure.endpoint, (req) =>
        Boolean(req.method === 'PUT' && req.url?.includes('comp=block&') && ++blocks === 2),
      );
      try {
        await rejection(
          upload(bytes(11 * MiB, 8), url(key), {
            store: through(again.url, { maxRetries: 0 }),
            partSize: 5 * MiB,
          }),
        );
      } finally {
        await again.close();
      }
      expect(digest(await get(url(key), { store: store() })), engine).toBe(digest(bytes(100, 9)));
    }
    expect(codes[1]).toBe(codes[0]);
  });
});

describe('error codes for the same causes', () => {
  it('missing blobs, wrong keys, bad settings, ranges past the end, existing targets', async () => {
    const key = `${uniqueKey('jap-err')}/o.bin`;
    await putAzure({ [key]: bytes(100, 1) });
    const missing = url(`${key}.none`);
    const wrong = azureStore(Buffer.from(SENTINEL_SECRET.padEnd(64, 'x')).toString('base64'));
    const with_ = (extra: Record<string, string>): StoreOptions => ({
      ...store(),
      config: { ...store().config, ...extra },
    });
    const cases: [string, () => Promise<unknown>][] = [
      ['get missing', () => get(missing, { store: store() })],
      ['head missing', () => head(missing, { store: store() })],
      ['download missing', () => download(missing, join(tempDir(), 'x'), { store: store() })],
      ['exists missing', () => exists(missing, { store: store() })],
      ['copy missing', () => copy(missing, url(`${key}.c`), { store: store() })],
      ['remove missing', () => remove(missing, { store: store() })],
      ['get missing container', () => get(`az://no-such-container/${key}`, { store: store() })],
      ['get wrong key', () => get(url(key), { store: wrong })],
      ['head wrong key', () => head(url(key), { store: wrong })],
      ['upload wrong key', () => upload(Buffer.from('x'), url(`${key}.w`), { store: wrong })],
      ['list wrong key', () => listAll(url(`${key}/`), wrong)],
      ['unknown config key', () => get(url(key), { store: with_({ azure_nope: 'x' }) })],
      [
        'certificate checks off by config',
        () => get(url(key), { store: with_({ azure_allow_invalid_certificates: 'true' }) }),
      ],
      [
        'a bearer token refused',
        () => get(url(key), { store: with_({ azure_storage_token: 'x'.repeat(40) }) }),
      ],
      [
        'an unknown credential type',
        () => get(url(key), { store: with_({ azure_credential_type: 'bogus' }) }),
      ],
      ['range past the end', () => get(url(key), { store: store(), range: { offset: 101 } })],
      [
        'upload ifNotExists onto a blob',
        () => upload(Buffer.from('y'), url(key), { store: store(), ifNotExists: true }),
      ],
      [
        'multipart upload ifNotExists onto a blob',
        () =>
          upload(bytes(6 * MiB, 2), url(key), {
            store: store(),
            ifNotExists: true,
            partSize: 5 * MiB,
          }),
      ],
      [
        'copy across containers',
        () => copy(url(key), `az://other-container/x`, { store: store() }),
      ],
      [
        'container with no key',
        () => get(`az://${servers().azure.container}/`, { store: store() }),
      ],
      ['abfs without a container', () => get(`abfs://${key}`, { store: store() })],
      [
        'upload partSize too small',
        () => upload(Buffer.from('z'), url(`${key}.p`), { store: store(), partSize: 1000 }),
      ],
    ];
    for (const [what, call] of cases) {
      const [a, b] = await both(() => outcome(call()));
      expect(b, what).toEqual(a);
    }
    // The blob the refused writes aimed at is untouched.
    expect(digest(await get(url(key), { store: store() }))).toBe(digest(bytes(100, 1)));
  });

  it('store.credentials: one that throws is Unauthenticated on both, its text unseen', async () => {
    const key = `${uniqueKey('jap-cred')}/o.bin`;
    await putAzure({ [key]: bytes(50, 2) });
    const s = servers().azure;
    const bad: StoreOptions = {
      config: { azure_storage_account_name: s.account, azure_storage_endpoint: s.endpoint },
      maxRetries: 0,
      credentials: async () => {
        throw new Error(`vault said ${SENTINEL_SECRET}`);
      },
    };
    const [ea, eb] = await both(() => rejection(get(url(key), { store: bad })));
    expect(eb.code).toBe(ea.code);
    expect(eb.code).toBe('Unauthenticated');
    expect(everything(eb)).not.toContain(SENTINEL_SECRET);
    // A wrong shape is Unauthenticated too.
    const shape: StoreOptions = { ...bad, credentials: async () => ({ token: '' }) };
    const [sa, sb] = await both(() => rejection(get(url(key), { store: shape })));
    expect(sb.code).toBe(sa.code);
  });
});

describe('Entra ID through @azure/identity (JS engine)', () => {
  it('a client secret whose authority cannot be reached: Unauthenticated, the secret unseen', async () => {
    // Azurite takes no Entra ID token over http, so only the failure is tested here (the native
    // engine calls the same cause Network: it reports the token request's connection).
    const s = servers().azure;
    useEngine('js');
    const err = await rejection(
      get(url('jap-entra/o.bin'), {
        store: {
          config: {
            azure_storage_account_name: s.account,
            azure_storage_endpoint: s.endpoint,
            azure_client_id: 'objget-client',
            azure_client_secret: SENTINEL_SECRET,
            azure_tenant_id: 'objget-tenant',
            azure_authority_host: 'https://127.0.0.1:9',
          },
          maxRetries: 0,
        },
      }),
    );
    expect(err.code).toBe('Unauthenticated');
    expect(err.message).toContain('client_secret');
    expect(everything(err)).not.toContain(SENTINEL_SECRET);
  }, 60_000);
});

describe('writes and listings', () => {
  it('uploads of a Buffer, a file and a stream: the same results and the same stored blobs', async () => {
    const dir = tempDir();
    const data = bytes(12 * MiB + 5, 21);
    writeFileSync(join(dir, 'src.bin'), data);
    const prefix = uniqueKey('jap-up');
    const sources = {
      small: () => Buffer.from('hello'),
      empty: () => Buffer.alloc(0),
      buffer: () => data,
      file: () => join(dir, 'src.bin'),
      stream: () =>
        Readable.from(
          Array.from({ length: Math.ceil(data.length / (64 * KiB)) }, (_, i) =>
            data.subarray(i * 64 * KiB, (i + 1) * 64 * KiB),
          ),
        ),
    };
    for (const [name, source] of Object.entries(sources)) {
      const [a, b] = await both((e) =>
        upload(source(), url(`${prefix}/${name}-${e}`), {
          store: store(),
          partSize: 5 * MiB,
          concurrency: 2,
          contentType: 'application/x-objget',
          metadata: { origin: 'parity' },
        }),
      );
      const pick = (r: typeof a) => [r.bytes, r.parts, r.checksum, r.path];
      expect(pick(b), name).toEqual(pick(a));
      expect(b.engine).toBe('js');
      const [ha, hb] = await both((e) => head(url(`${prefix}/${name}-${e}`), { store: store() }));
      expect(hb.size).toBe(ha.size);
      const [ga, gb] = await both((e) => get(url(`${prefix}/${name}-${e}`), { store: store() }));
      expect(gb.equals(ga)).toBe(true);
    }
    // The JS engine's blob carries its whole MD5 (Put Block List sets it): verified on read.
    useEngine('js');
    const r = await download(url(`${prefix}/buffer-js`), join(dir, 'back.bin'), {
      store: store(),
      checksum: 'required',
    });
    expect(r.checksum?.algorithm).toBe('md5');
  });

  it('list: the same keys, relative keys, URLs, sizes and ETags, odd keys included', async () => {
    const prefix = uniqueKey('jap-list');
    const objects: Record<string, Buffer> = {};
    for (const k of ['a.bin', 'dir/b.bin', 'sp ace+plus%25.bin', "q'(u)o*te!.bin", 'ü/é.bin']) {
      objects[`${prefix}/${k}`] = bytes(k.length, k.length);
    }
    await putAzure(objects);
    for (const p of [`${prefix}/`, prefix, `${prefix}/dir`]) {
      const [a, b] = await both(() => listAll(url(p), store()));
      expect(b, p).toEqual(a);
    }
    const [a] = await both(() => listAll(url(`${prefix}/`), store()));
    expect(a.map((o) => o.relative).sort()).toEqual(
      Object.keys(objects)
        .map((k) => k.slice(prefix.length + 1))
        .sort(),
    );
    // Each listed URL reads back the blob's bytes on the JS engine.
    useEngine('js');
    for (const o of a) {
      expect((await get(o.url, { store: store() })).equals(objects[o.key]!), o.key).toBe(true);
    }
  });

  it('a listing of more than one page, followed by its markers', async () => {
    const prefix = uniqueKey('jap-pages');
    const objects: Record<string, Buffer> = {};
    for (let i = 0; i < 7; i++) objects[`${prefix}/${i}`] = Buffer.from([i]);
    await putAzure(objects);
    const proxy = await smallPages(2);
    try {
      const account = new URL(servers().azure.endpoint).pathname;
      const sas: StoreOptions = {
        config: {
          azure_storage_account_name: servers().azure.account,
          azure_storage_endpoint: `${proxy.url}${account}`,
          azure_storage_sas_key: await sasToken(),
        },
        maxRetries: 0,
      };
      const [a, b] = await both(() => listAll(url(`${prefix}/`), sas));
      expect(b.map((o) => o.key)).toEqual(Object.keys(objects));
      expect(b).toEqual(a);
      // Four pages of at most two each, per engine.
      expect(proxy.pages).toBe(8);
    } finally {
      await proxy.close();
    }
    useEngine('js');
    await remove(Object.keys(objects).map(url), { store: store() });
    expect(await listAll(url(`${prefix}/`), store())).toEqual([]);
  });

  it('copy and remove: the same blobs left', async () => {
    const prefix = uniqueKey('jap-copy');
    await putAzure({ [`${prefix}/src`]: bytes(2000, 3) });
    const [a, b] = await both(async (e) => {
      await copy(url(`${prefix}/src`), url(`${prefix}/${e}/copy`), { store: store() });
      const h = await head(url(`${prefix}/${e}/copy`), { store: store() });
      const got = digest(await get(url(`${prefix}/${e}/copy`), { store: store() }));
      await remove([url(`${prefix}/${e}/copy`), url(`${prefix}/src.none`)], { store: store() });
      return [h.size, got, (await listAll(url(`${prefix}/${e}/`), store())).length];
    });
    expect(b).toEqual(a);
  });

  for (const engine of ['native', 'js'] as const) {
    it(`copy ifNotExists (${engine}): copies once, then AlreadyExists; nothing staged`, async () => {
      const prefix = uniqueKey(`jap-copy-once-${engine}`);
      await putAzure({ [`${prefix}/src`]: bytes(2000, 3), [`${prefix}/other`]: bytes(10, 1) });
      useEngine(engine);
      await copy(url(`${prefix}/src`), url(`${prefix}/once`), {
        store: store(),
        ifNotExists: true,
      });
      expect(digest(await get(url(`${prefix}/once`), { store: store() }))).toBe(
        digest(bytes(2000, 3)),
      );
      const err = await rejection(
        copy(url(`${prefix}/other`), url(`${prefix}/once`), { store: store(), ifNotExists: true }),
      );
      expect(err.code).toBe('AlreadyExists');
      expect(digest(await get(url(`${prefix}/once`), { store: store() }))).toBe(
        digest(bytes(2000, 3)),
      );
      expect((await listAll(url(`${prefix}/`), store())).length).toBe(3);
    });
  }
});
