// The napi binding converts options and nothing more: a number with no whole, non-negative form
// is InvalidArgument (never clamped or truncated into some other value the engine then accepts).
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/engines/native.js';
import { seedHttp } from './helpers/fixture.js';
import { servers, tempDir } from './helpers/servers.js';

function binding() {
  const loaded = loadNative();
  if (!loaded.binding) throw new Error(`the addon must load for these tests: ${loaded.reason}`);
  return loaded.binding;
}

async function failure(call: () => Promise<unknown>): Promise<Error & { code?: string }> {
  const outcome = await call().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  if (!outcome) throw new Error('expected the call to fail');
  return outcome;
}

describe('the binding converts numbers without changing them', () => {
  it('a fractional or negative partSize is InvalidArgument, for reads, uploads and streams', async () => {
    const o = seedHttp(3000, 'binding');
    const b = binding();
    // Truncated, 1 MiB + 0.5 would be a valid part size: the read must not run.
    for (const partSize of [1024 * 1024 + 0.5, -1]) {
      const err = await failure(() => b.get(o.url, null, null, { partSize }));
      expect(err.code, String(partSize)).toBe('InvalidArgument');
      expect(err.message).toContain('partSize must be a non-negative integer');
    }
    const dest = `${tempDir()}/up.bin`;
    for (const partSize of [5 * 1024 * 1024 + 0.5, -1]) {
      const err = await failure(() => b.upload(Buffer.from('x'), dest, { partSize }));
      expect(err.code).toBe('InvalidArgument');
      expect(err.message).toContain('partSize must be a non-negative integer');
      const stream = await failure(() => b.uploadStream(dest, { partSize }));
      expect(stream.code).toBe('InvalidArgument');
    }
  });

  it('a negative rdmaPartSize is InvalidArgument even where RDMA is off', async () => {
    const s = servers();
    const err = await failure(() => binding().head(`${s.http.url}/anything`, { rdmaPartSize: -1 }));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toContain('rdmaPartSize must be a non-negative integer');
  });
});
