// Network hardening (issue 9): TLS only off by an explicit option, no https → http downgrade,
// no secret in a cause, bodies cut mid-way resumed on every path, throttling storms outlasted,
// one code per failure, a pinned self-signed certificate accepted by both engines.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  download,
  downloadPrefix,
  engineInfo,
  get,
  list,
  type StorageError,
  type StoreOptions,
} from '../src/index.js';
// @ts-expect-error plain ESM script without types
import { presign, startHttpFixture } from '../scripts/lib/http-fixture.mjs';
// @ts-expect-error plain ESM script without types
import { makeCerts } from '../scripts/lib/certs.mjs';
import { distEntry, runModule } from './helpers/child.js';
import { everything, rejection } from './helpers/expect.js';
import { faultProxy } from './helpers/fault-proxy.js';
import { clearFaults, fault, seedHttp } from './helpers/fixture.js';
import {
  backends,
  bytes,
  s3Store,
  servers,
  tempDir,
  uniqueKey,
  useEngine,
} from './helpers/servers.js';

const ENGINES = ['native', 'js'] as const;
const previous = process.env.OBJGET_ENGINE;
afterAll(async () => {
  process.env.OBJGET_ENGINE = previous;
  await clearFaults();
});

/** The S3 test object `key` with `data`, put directly. */
async function seedS3(prefix: string, data: Buffer): Promise<string> {
  const key = `${uniqueKey(prefix)}/o.bin`;
  await backends()
    .find((b) => b.name === 's3')!
    .put(key, data);
  return key;
}

interface Certs {
  ca: string;
  cert: string;
  key: string;
}

/** A CA and a leaf for 127.0.0.1 that nothing trusts unless told (made with openssl). */
function certs(): Certs {
  return makeCerts(join(tempDir(), 'certs')) as Certs;
}

/** A presigned URL on the fixture for a fresh object of `size` bytes, over `base`. */
function presigned(size: number, base = servers().http.url) {
  const o = seedHttp(size, 'net-presigned');
  return { ...o, url: presign(base, o.path, servers().http.signingKey) as string };
}

describe('3. TLS verification is off only by insecureSkipTlsVerify', () => {
  for (const engine of ENGINES) {
    it(`${engine}: the allow_invalid_certificates keys are InvalidArgument`, async () => {
      useEngine(engine);
      const s = servers();
      const o = seedHttp(1000, 'net-tls-key');
      const https = `${s.http.httpsUrl}${o.path}`;
      for (const key of ['allow_invalid_certificates', 'aws_allow_invalid_certificates']) {
        const err = await rejection(get(https, { store: { config: { [key]: 'true' } } }));
        expect(err.code).toBe('InvalidArgument');
        expect(err.message).toContain('insecureSkipTlsVerify');
      }
    });

    it(`${engine}: insecureSkipTlsVerify reads an untrusted server, and the result and engineInfo say so`, async () => {
      useEngine(engine);
      const s = servers();
      const o = seedHttp(70_000, 'net-insecure');
      const https = `${s.http.httpsUrl}${o.path}`;
      // Without the option (and without caCert) the certificate is refused...
      expect((await rejection(get(https, { store: { maxRetries: 0 } }))).code).toBe(
        'TlsCertificate',
      );
      // ...with it, read.
      const dest = join(tempDir(), 'insecure.bin');
      const r = await download(https, dest, { store: { insecureSkipTlsVerify: true } });
      expect(readFileSync(dest).equals(o.data)).toBe(true);
      expect(r.insecureSkipTlsVerify).toBe(true);
      expect(engineInfo().insecureTls).toBe(true);
      const plain = await download(`${s.http.url}${o.path}`, join(tempDir(), 'p.bin'));
      expect(plain.insecureSkipTlsVerify).toBeUndefined();
    });
  }

  it('AWS_ALLOW_INVALID_CERTIFICATES is ignored, with one warning', async () => {
    const s = servers();
    const data = bytes(5000, 31);
    const key = await seedS3('net-tls-env', data);
    // MinIO behind an https proxy whose certificate no one trusts.
    const proxy = await faultProxy(s.s3.endpoint, () => false, { tls: certs() });
    try {
      const source = `
        import { get } from ${JSON.stringify(distEntry())};
        const warnings = [];
        process.on('warning', (w) => warnings.push(w.code));
        const out = [];
        for (let i = 0; i < 2; i++) {
          try { await get('s3://${s.s3.bucket}/${key}', { store: { maxRetries: 0 } }); out.push('read'); }
          catch (e) { out.push(e.code); }
        }
        await new Promise((r) => setTimeout(r, 50));
        console.log(JSON.stringify({ out, warnings }));
      `;
      const { done } = runModule(source, {
        AWS_ACCESS_KEY_ID: s.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s.s3.secretAccessKey,
        AWS_ENDPOINT_URL: proxy.url,
        AWS_REGION: s.s3.region,
        AWS_ALLOW_INVALID_CERTIFICATES: 'true',
        OBJGET_ENGINE: 'native',
      });
      const r = await done;
      expect(r.code).toBe(0);
      const { out, warnings } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        out: string[];
        warnings: string[];
      };
      expect(out).toEqual(['TlsCertificate', 'TlsCertificate']);
      expect(warnings).toEqual(['OBJGET_TLS_ENV_IGNORED']);
    } finally {
      await proxy.close();
    }
  });
});

describe('4. no path downgrades https to http', () => {
  for (const engine of ENGINES) {
    it(`${engine}: a presigned https URL redirected to http fails with NotSupported`, async () => {
      useEngine(engine);
      const s = servers();
      const o = presigned(10_000);
      const tls = certs();
      // An https front that redirects every request to the plain-http fixture.
      const proxy = await faultProxy(
        s.http.url,
        (req) => ({ kind: 'redirect', location: `${s.http.url}${req.url}` }),
        { tls },
      );
      try {
        const u = new URL(o.url);
        const err = await rejection(
          get(`${proxy.url}${u.pathname}${u.search}`, {
            store: { caCert: tls.ca, maxRetries: 0 },
          }),
        );
        expect(err.code).toBe('NotSupported');
        expect(proxy.failed).toBeGreaterThan(0);
        expect(everything(err)).not.toContain('sig=');
      } finally {
        await proxy.close();
      }
    });
  }

  it('native: a redirect within https is still followed', async () => {
    useEngine('native');
    const s = servers();
    const o = presigned(10_000, s.http.httpsUrl);
    const tls = certs();
    const proxy = await faultProxy(
      s.http.url,
      (req) => ({ kind: 'redirect', location: `${s.http.httpsUrl}${req.url}` }),
      { tls },
    );
    try {
      const u = new URL(o.url);
      // Both certificates are trusted: the proxy's CA and the fixture's.
      const data = await get(`${proxy.url}${u.pathname}${u.search}`, {
        store: { caCert: tls.ca + s.http.ca, maxRetries: 0 },
      });
      expect(data.equals(o.data)).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

describe('5. causes carry no secret', () => {
  it('a 403 whose body echoes the signature (SignatureDoesNotMatch) leaves it out of the cause', async () => {
    useEngine('native');
    const s = servers();
    const key = await seedS3('net-403', bytes(1000, 5));
    let signature = '';
    let echoed = '';
    const proxy = await faultProxy(s.s3.endpoint, (req) => {
      const auth = String(req.headers.authorization ?? '');
      signature = /Signature=([0-9a-f]+)/.exec(auth)?.[1] ?? '';
      const accessKey = /Credential=([^/]+)/.exec(auth)?.[1] ?? '';
      echoed = accessKey;
      return {
        kind: 'status',
        status: 403,
        body:
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>` +
          `<Message>The request signature we calculated does not match the signature you provided.</Message>` +
          `<AWSAccessKeyId>${accessKey}</AWSAccessKeyId>` +
          `<StringToSign>AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/s3/aws4_request\n${signature}</StringToSign>` +
          `<SignatureProvided>${signature}</SignatureProvided>` +
          `<CanonicalRequest>GET\n/${s.s3.bucket}/${key}\n\nhost:127.0.0.1\n${signature}</CanonicalRequest></Error>`,
      };
    });
    try {
      const store = s3Store(s);
      store.config!.aws_endpoint = proxy.url;
      const err = await rejection(get(`s3://${s.s3.bucket}/${key}`, { store }));
      expect(err.code).toBe('PermissionDenied');
      expect(signature).toMatch(/^[0-9a-f]{64}$/);
      const all = everything(err);
      expect(all).not.toContain(signature);
      expect(String((err.cause as Error).message)).not.toContain(`<AWSAccessKeyId>${echoed}`);
      expect(all).not.toContain('<redacted><redacted>');
      expect(String((err.cause as Error).message)).toContain('<redacted>');
    } finally {
      await proxy.close();
    }
  });

  it('an aws_endpoint with user-info leaves the password out of the cause', async () => {
    useEngine('native');
    const s = servers();
    const password = 'PASSWORD-in-endpoint-4e1d9';
    const store = s3Store(s);
    // Nothing listens on port 9 here: the connection is refused and the cause names the URL.
    store.config!.aws_endpoint = `http://objget:${password}@127.0.0.1:9`;
    store.maxRetries = 0;
    const err = await rejection(get(`s3://${s.s3.bucket}/k`, { store }));
    expect(err.code).toBe('Network');
    expect(everything(err)).not.toContain(password);
  });
});

describe('11. a body cut mid-way is resumed from its offset, pinned by If-Match', () => {
  for (const engine of ENGINES) {
    it(`${engine}: a presigned URL whose body is reset at 1 MiB downloads whole`, async () => {
      useEngine(engine);
      const o = presigned(3 * 1024 * 1024 + 17);
      await fault({ path: o.path, kind: 'reset', afterBytes: 1024 * 1024, times: 1 });
      const dest = join(tempDir(), 'cut.bin');
      // One part (partSize above the size): the cut body itself must be resumed.
      const r = await download(o.url, dest, {
        partSize: 8 * 1024 * 1024,
        store: { initialBackoffMs: 10 },
      });
      expect(r.bytes).toBe(o.data.length);
      expect(readFileSync(dest).equals(o.data)).toBe(true);
    });
  }

  it('js: a plain http body reset mid-way is resumed too, in get', async () => {
    useEngine('js');
    const o = seedHttp(2 * 1024 * 1024 + 5, 'net-cut-js');
    await fault({ path: o.path, kind: 'reset', afterBytes: 700_000, times: 1 });
    const data = await get(o.url, { store: { initialBackoffMs: 10 } });
    expect(data.equals(o.data)).toBe(true);
  });

  for (const engine of ENGINES) {
    it(`${engine}: without a strong ETag the cut is a Network error and leaves no file`, async () => {
      useEngine(engine);
      const s = servers();
      const o = seedHttp(2 * 1024 * 1024, 'net-cut-weak');
      await fault({ path: o.path, kind: 'weak-etag' });
      // A proxy in front of the fixture cuts every body at 300 kB.
      const proxy = await faultProxy(s.http.url, () => ({ kind: 'reset', afterBytes: 300_000 }));
      try {
        const dir = tempDir();
        const q = presign(proxy.url, o.path, s.http.signingKey) as string;
        const err = await rejection(
          download(q, join(dir, 'w.bin'), {
            partSize: 8 * 1024 * 1024,
            store: { initialBackoffMs: 10, maxRetries: 2 },
          }),
        );
        expect(err.code).toBe('Network');
        const { readdirSync } = await import('node:fs');
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        await proxy.close();
      }
    });
  }
});

/** A proxy answering every request with 503 SlowDown for `ms` after the first one. */
async function storm(target: string, ms: number) {
  let began: number | undefined;
  return faultProxy(target, () => {
    began ??= Date.now();
    return Date.now() - began < ms
      ? {
          kind: 'status',
          status: 503,
          body: '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
        }
      : false;
  });
}

describe('14. a 5 s storm of 503 SlowDown is outlasted at default retry settings', () => {
  it('native, s3://', async () => {
    useEngine('native');
    const s = servers();
    const data = bytes(20_000, 14);
    const key = await seedS3('net-storm', data);
    const proxy = await storm(s.s3.endpoint, 5000);
    try {
      const { maxRetries, initialBackoffMs, ...defaults } = s3Store(s);
      void maxRetries;
      void initialBackoffMs;
      const store = { ...defaults, config: { ...defaults.config, aws_endpoint: proxy.url } };
      expect((await get(`s3://${s.s3.bucket}/${key}`, { store })).equals(data)).toBe(true);
      expect(proxy.failed).toBeGreaterThan(1);
    } finally {
      await proxy.close();
    }
  });

  for (const engine of ENGINES) {
    it(`${engine}: a presigned URL`, async () => {
      useEngine(engine);
      const s = servers();
      const o = seedHttp(20_000, 'net-storm-q');
      const proxy = await storm(s.http.url, 5000);
      try {
        const q = presign(proxy.url, o.path, s.http.signingKey) as string;
        expect((await get(q)).equals(o.data)).toBe(true);
        expect(proxy.failed).toBeGreaterThan(1);
      } finally {
        await proxy.close();
      }
    });
  }
});

describe('errors say what happened', () => {
  for (const engine of ENGINES) {
    it(`${engine}: a refused connection is Network`, async () => {
      useEngine(engine);
      const err = await rejection(get('http://127.0.0.1:9/x', { store: { maxRetries: 0 } }));
      expect(err.code).toBe('Network');
    });

    it(`${engine}: a storm that outlasts the retries is Throttled`, async () => {
      useEngine(engine);
      const s = servers();
      const o = seedHttp(1000, 'net-throttled');
      const proxy = await storm(s.http.url, 60_000);
      try {
        const err = await rejection(
          get(`${proxy.url}${o.path}`, { store: { maxRetries: 1, initialBackoffMs: 10 } }),
        );
        expect(err.code).toBe('Throttled');
      } finally {
        await proxy.close();
      }
    });

    it(`${engine}: an untrusted certificate is TlsCertificate, named, and not retried`, async () => {
      useEngine(engine);
      const s = servers();
      const o = seedHttp(1000, 'net-tls');
      for (const url of [
        `${s.http.httpsUrl}${o.path}`,
        presign(s.http.httpsUrl, o.path, s.http.signingKey) as string,
      ]) {
        const started = Date.now();
        // Default retries: ten, from 500 ms; a certificate refusal must not wait for them.
        const err = await rejection(get(url));
        expect(err.code).toBe('TlsCertificate');
        expect(err.message).toContain('unknown issuer');
        expect(Date.now() - started).toBeLessThan(3000);
      }
    });
  }

  it('native: a 403 from list and downloadPrefix is PermissionDenied', async () => {
    useEngine('native');
    const s = servers();
    const prefix = uniqueKey('net-list403');
    const proxy = await faultProxy(s.s3.endpoint, (req) =>
      req.url?.includes('list-type=2')
        ? {
            kind: 'status',
            status: 403,
            body: '<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>',
          }
        : false,
    );
    try {
      const store = s3Store(s);
      store.config!.aws_endpoint = proxy.url;
      const listing = async () => {
        for await (const o of list(`s3://${s.s3.bucket}/${prefix}/`, { store })) void o;
      };
      expect((await rejection(listing())).code).toBe('PermissionDenied');
      expect(
        (await rejection(downloadPrefix(`s3://${s.s3.bucket}/${prefix}/`, tempDir(), { store })))
          .code,
      ).toBe('PermissionDenied');
    } finally {
      await proxy.close();
    }
  });
});

describe('a self-signed server certificate pinned through caCert', () => {
  for (const engine of ENGINES) {
    it(`${engine}: one made by a plain openssl req -x509 (CA:TRUE) is accepted`, async () => {
      useEngine(engine);
      const s = servers();
      const dir = tempDir();
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '2',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1,DNS:localhost',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'pipe' },
      );
      const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
      expect(
        execFileSync('openssl', [
          'x509',
          '-noout',
          '-text',
          '-in',
          join(dir, 'cert.pem'),
        ]).toString(),
      ).toContain('CA:TRUE');
      const fixture = (await startHttpFixture({
        root: s.http.root,
        tls: { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert },
      })) as { url: string; close: () => Promise<void> };
      try {
        const o = seedHttp(50_000, 'net-selfsigned');
        const data = await get(`${fixture.url}${o.path}`, {
          store: { caCert: cert, maxRetries: 0 },
        });
        expect(data.equals(o.data)).toBe(true);
        // Another self-signed certificate is still refused.
        const other = certs().ca;
        const err = await rejection(
          get(`${fixture.url}${o.path}`, { store: { caCert: other, maxRetries: 0 } }),
        );
        expect(err.code).toBe('TlsCertificate');
      } finally {
        await fixture.close();
      }
    });
  }
});
