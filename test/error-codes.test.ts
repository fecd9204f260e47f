// One code list, and native failures as real Error objects (no string protocol across napi).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODE_LIST, ERROR_CODES, fromNative, StorageError } from '../src/errors.js';
import { loadNative } from '../src/engines/native.js';
import { everything } from './helpers/expect.js';
import { bytes, s3Store, SENTINEL_SECRET, servers, tempDir, uniqueKey } from './helpers/servers.js';

function binding() {
  const loaded = loadNative();
  if (!loaded.binding) throw new Error(`the addon must load for these tests: ${loaded.reason}`);
  return loaded.binding;
}

function nativeStore(secret?: string) {
  const s = servers();
  return { config: s3Store(s, secret).config, maxRetries: 1, initialBackoffMs: 10 };
}

async function thrown(call: () => unknown): Promise<unknown> {
  try {
    await call();
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
}

describe('the error-code list', () => {
  it('is the same in Rust (errorCodes()) and TypeScript (ERROR_CODE_LIST)', () => {
    const rust = binding().errorCodes();
    const ts: readonly string[] = ERROR_CODE_LIST;
    expect({
      onlyInRust: rust.filter((c) => !ts.includes(c)),
      onlyInTypeScript: ts.filter((c) => !rust.includes(c)),
    }).toEqual({ onlyInRust: [], onlyInTypeScript: [] });
    expect(rust).toHaveLength(new Set(rust).size);
    expect(ts).toHaveLength(ERROR_CODES.size);
  });
});

describe('native failures are real Error objects', () => {
  it('an async call rejects with code, url and cause as properties', async () => {
    const s = servers();
    const url = `s3://${s.s3.bucket}/${uniqueKey('missing')}`;
    const err = (await thrown(() => binding().head(url, nativeStore()))) as Error & {
      code?: string;
      url?: string;
    };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('NotFound');
    expect(err.url).toBe(url);
    expect(err.cause).toBeInstanceOf(Error);
    expect(err.message).toBe(`${url}: object not found`);
    const mapped = fromNative(err);
    expect(mapped).toBeInstanceOf(StorageError);
    expect([mapped.code, mapped.url, mapped.message]).toEqual(['NotFound', url, err.message]);
    expect((mapped.cause as Error).message).toBe((err.cause as Error).message);
  });

  it('a bad argument found by the binding rejects with InvalidArgument', async () => {
    const s = servers();
    const err = (await thrown(() =>
      binding().get(`s3://${s.s3.bucket}/k`, { offset: -1 }, nativeStore()),
    )) as Error & { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toContain('range values must be non-negative integers');
  });

  it('a synchronous call throws the same kind of error', async () => {
    const err = (await thrown(() => binding().allocRdmaBuffer(0))) as Error & { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('InvalidArgument');
  });

  it('a list cursor and an upload sink fail the same way', async () => {
    const s = servers();
    const cursor = await binding().list(`s3://no-such-bucket-${Date.now()}/p/`, nativeStore());
    const listErr = (await thrown(() => cursor.next(10))) as Error & { code?: string };
    expect(listErr).toBeInstanceOf(Error);
    expect(ERROR_CODES.has(listErr.code ?? '')).toBe(true);
    expect(listErr.code).toBe('NotFound');

    const sink = await binding().uploadStream(
      `s3://${s.s3.bucket}/${uniqueKey('sink')}`,
      undefined,
      nativeStore(),
    );
    await sink.write(bytes(10));
    await sink.finish();
    const writeErr = (await thrown(() => sink.write(bytes(1)))) as Error & { code?: string };
    expect(writeErr).toBeInstanceOf(Error);
    expect(writeErr.code).toBe('InvalidArgument');
  });

  it("downloadMany's per-item failures are Error objects too", async () => {
    const s = servers();
    const dir = tempDir();
    const url = `s3://${s.s3.bucket}/${uniqueKey('many-missing')}`;
    const [outcome] = await binding().downloadMany(
      [{ url, dest: join(dir, 'a') }],
      2,
      nativeStore(),
    );
    const err = outcome?.error as (Error & { code?: string; url?: string }) | undefined;
    expect(outcome?.result).toBeUndefined();
    expect(err).toBeInstanceOf(Error);
    expect([err?.code, err?.url]).toEqual(['NotFound', url]);
  });

  it('a rejected secret is in no property of the native error', async () => {
    const s = servers();
    const err = await thrown(() =>
      binding().head(`s3://${s.s3.bucket}/anything`, nativeStore(SENTINEL_SECRET)),
    );
    expect(['PermissionDenied', 'Unauthenticated']).toContain((err as { code?: string }).code);
    expect(everything(err)).not.toContain(SENTINEL_SECRET);
    expect(everything(fromNative(err))).not.toContain(SENTINEL_SECRET);
  });
});
