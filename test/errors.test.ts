// Typed errors, and no credential in any message, cause, URL or log line.
import { join } from 'node:path';
import { everything, rejection } from './helpers/expect.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download, get, head, StorageError } from '../src/index.js';
// @ts-expect-error plain ESM script without types
import { presign } from '../scripts/lib/http-fixture.mjs';
import { distEntry, runModule } from './helpers/child.js';
import {
  bytes,
  s3Store,
  SENTINEL_SECRET,
  servers,
  tempDir,
  uniqueKey,
  useEngine,
} from './helpers/servers.js';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

describe('secrets never leak', () => {
  const previous = process.env.OBJGET_ENGINE;
  afterAll(() => {
    process.env.OBJGET_ENGINE = previous;
  });

  it('a wrong S3 secret appears in no message, cause or stack', async () => {
    useEngine('native');
    const s = servers();
    const err = await get(`s3://${s.s3.bucket}/anything`, {
      store: s3Store(s, SENTINEL_SECRET),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(['PermissionDenied', 'Unauthenticated']).toContain((err as StorageError).code);
    expect(everything(err)).not.toContain(SENTINEL_SECRET);
  });

  it('a session token in the options appears nowhere either', async () => {
    useEngine('native');
    const s = servers();
    const store = s3Store(s, SENTINEL_SECRET);
    store.config!.aws_session_token = `${SENTINEL_SECRET}-token`;
    const err = await head(`s3://${s.s3.bucket}/x`, { store }).catch((e: unknown) => e);
    expect(everything(err)).not.toContain(SENTINEL_SECRET);
  });

  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: a presigned URL works, and a bad signature is PermissionDenied without the query in the error`, async () => {
      useEngine(engine);
      const s = servers();
      const key = `${uniqueKey('presigned')}/obj.bin`;
      const data = bytes(300_000, 3);
      mkdirSync(dirname(join(s.http.root, key)), { recursive: true });
      writeFileSync(join(s.http.root, key), data);
      for (const base of [s.http.url, s.http.httpsUrl]) {
        const store = { caCert: s.http.ca, maxRetries: 0 };
        const good = presign(base, `/${key}`, s.http.signingKey) as string;
        expect((await get(good, { store })).equals(data)).toBe(true);
        expect(
          (await get(good, { store, range: { offset: 10, length: 5 } })).equals(
            data.subarray(10, 15),
          ),
        ).toBe(true);
        expect((await head(good, { store })).size).toBe(data.length);
        const dest = join(tempDir(), 'p.bin');
        expect((await download(good, dest, { store })).bytes).toBe(data.length);
        const bad = `${base}/${key}?expires=${Date.now() + 60_000}&sig=${SENTINEL_SECRET}`;
        const err = await get(bad, { store }).catch((e: unknown) => e);
        expect((err as StorageError).code).toBe('PermissionDenied');
        expect(everything(err)).not.toContain(SENTINEL_SECRET);
        expect((err as StorageError).url).toContain('?<redacted>');
      }
    });
  }

  it('the log output of a failing process carries no secret', async () => {
    const s = servers();
    const source = `
      import { get, download } from ${JSON.stringify(distEntry())};
      try { await get('s3://${s.s3.bucket}/k'); } catch (e) { console.error(e); console.log(JSON.stringify(e), e.cause); }
      try { await download('s3://${s.s3.bucket}/k', '/tmp/objget-never'); } catch (e) { console.error(e); }
    `;
    const { done } = runModule(source, {
      AWS_ACCESS_KEY_ID: s.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: SENTINEL_SECRET,
      AWS_ENDPOINT_URL: s.s3.endpoint,
      AWS_REGION: 'us-east-1',
      OBJGET_ENGINE: 'native',
      RUST_LOG: 'trace',
      RUST_BACKTRACE: '1',
    });
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('PermissionDenied');
    expect(r.stdout + r.stderr).not.toContain(SENTINEL_SECRET);
  });
});

describe('credentials', () => {
  beforeAll(() => useEngine('native'));

  it('come from AWS_* variables, and unrelated variables configure nothing', async () => {
    const s = servers();
    const key = `${uniqueKey('env')}/obj`;
    const data = bytes(5000, 5);
    const { backends } = await import('./helpers/servers.js');
    await backends()
      .find((b) => b.name === 's3')!
      .put(key, data);
    const source = `
      import { get } from ${JSON.stringify(distEntry())};
      const b = await get('s3://${s.s3.bucket}/${key}');
      console.log(b.length);
    `;
    const { done } = runModule(source, {
      AWS_ACCESS_KEY_ID: s.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s.s3.secretAccessKey,
      AWS_ENDPOINT_URL: s.s3.endpoint,
      AWS_REGION: 'us-east-1',
      OBJGET_ENGINE: 'native',
      // parse_url_opts would have taken these as store configuration:
      ENDPOINT: 'http://127.0.0.1:9',
      TOKEN: 'bogus-token',
      REGION: 'mars-north-1',
    });
    const r = await done;
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('5000');
  });

  it('none at all fails fast with Unauthenticated', async () => {
    const s = servers();
    const started = Date.now();
    const err = await rejection(
      get(`s3://${s.s3.bucket}/k`, {
        store: { config: { aws_endpoint: s.s3.endpoint, aws_region: 'us-east-1' } },
      }),
    );
    expect(err.code).toBe('Unauthenticated');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('explicit options override the environment', async () => {
    const s = servers();
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-from-env-123456';
    try {
      // A connect timeout no other test uses makes this a freshly built store, not a cached one.
      const store = { ...s3Store(s), connectTimeoutMs: 9_876 };
      const info = await rejection(head(`s3://${s.s3.bucket}/none`, { store }));
      expect((info as StorageError).code).toBe('NotFound');
    } finally {
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });

  it('anonymous access is explicit: skipSignature on a private bucket is refused by the server', async () => {
    const s = servers();
    const err = await rejection(
      get(`s3://${s.s3.bucket}/k`, {
        store: {
          skipSignature: true,
          config: { aws_endpoint: s.s3.endpoint, aws_region: 'us-east-1' },
        },
      }),
    );
    expect(['PermissionDenied', 'Unauthenticated']).toContain(err.code);
  });

  it('an unknown configuration key is InvalidArgument', async () => {
    const s = servers();
    const err = await rejection(
      get(`s3://${s.s3.bucket}/k`, {
        store: { config: { token_of_doom: 'x' } },
      }),
    );
    expect(err.code).toBe('InvalidArgument');
  });
});
