// Every default lives in one place, src/options.ts (issue 11). The native engine keeps its own
// (crates/engine/src/options.rs): they must agree, and both engines must act on them. Requests are
// counted by a pass-through proxy (test/helpers/fault-proxy.ts) in front of the real servers.
import type http from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { download, downloadMany, head, upload } from '../src/index.js';
import { loadNative } from '../src/engines/native.js';
import { DEFAULTS, LIMITS } from '../src/options.js';
import { clearFaults, fault, requestsFor, seedHttp } from './helpers/fixture.js';
import { faultProxy } from './helpers/fault-proxy.js';
import { rejection } from './helpers/expect.js';
import { bytes, s3Store, servers, tempDir, uniqueKey, useEngine } from './helpers/servers.js';

const ENGINES = ['native', 'js'] as const;

afterEach(async () => {
  delete process.env.OBJGET_ENGINE;
  await clearFaults();
});

/** MinIO's store options with requests sent through `proxy`, and the engine's own retries. */
function s3Through(proxy: string) {
  const store = s3Store(servers());
  return {
    ...store,
    config: { ...store.config, aws_endpoint: proxy },
    maxRetries: undefined,
    initialBackoffMs: undefined,
  };
}

describe('the defaults are declared once and both engines use them', () => {
  it('the native engine has the same defaults as src/options.ts', () => {
    const binding = loadNative().binding;
    expect(binding).toBeDefined();
    expect(binding!.defaults()).toEqual({
      partSize: DEFAULTS.partSize,
      concurrency: DEFAULTS.concurrency,
      uploadPartSize: DEFAULTS.uploadPartSize,
      uploadConcurrency: DEFAULTS.uploadConcurrency,
      maxRetries: DEFAULTS.maxRetries,
      retryTimeoutMs: DEFAULTS.retryTimeoutMs,
      initialBackoffMs: DEFAULTS.initialBackoffMs,
      readTimeoutMs: DEFAULTS.readTimeoutMs,
      connectTimeoutMs: DEFAULTS.connectTimeoutMs,
      backoffBase: DEFAULTS.backoffBase,
      maxBackoffMs: DEFAULTS.maxBackoffMs,
      ...LIMITS,
    });
  });

  it('native: with no options, an upload of 3 parts + 1 byte is cut by the default upload part, and its download makes one ranged GET per default part', async () => {
    useEngine('native');
    const s = servers();
    const size = 3 * DEFAULTS.partSize + 1;
    const data = bytes(size, 11);
    const key = `${uniqueKey('defaults-plan')}/o.bin`;
    const gets: (string | undefined)[] = [];
    const proxy = await faultProxy(s.s3.endpoint, (req: http.IncomingMessage) => {
      if (req.method === 'GET' && req.url?.split('?')[0]?.endsWith(key)) {
        gets.push(req.headers.range);
      }
      return false;
    });
    try {
      const store = s3Through(proxy.url);
      const url = `s3://${s.s3.bucket}/${key}`;
      const up = await upload(data, url, { store });
      expect(up.parts).toBe(Math.ceil(size / DEFAULTS.uploadPartSize));
      const dest = join(tempDir(), 'plan.bin');
      const r = await download(url, dest, { store });
      expect(r.bytes).toBe(size);
      const parts = Math.ceil(size / DEFAULTS.partSize);
      expect(r.parts).toBe(parts);
      // One GET per part: the first asks for the whole object (S3 sends its stored checksums
      // only on an unranged reply) and is read for its first part only, each later one a range
      // of at most one default part, together the whole object.
      expect(gets).toHaveLength(parts);
      expect(gets[0]).toBeUndefined();
      const ranges = gets.slice(1).map((h) =>
        /^bytes=(\d+)-(\d+)$/
          .exec(h ?? '')!
          .slice(1)
          .map(Number),
      );
      ranges.sort((a, b) => a[0]! - b[0]!);
      expect(ranges.map(([a]) => a)).toEqual([1, 2, 3].map((i) => i * DEFAULTS.partSize));
      expect(ranges.map(([a, b]) => b! - a! + 1)).toEqual([
        DEFAULTS.partSize,
        DEFAULTS.partSize,
        1,
      ]);
    } finally {
      await proxy.close();
    }
  });

  it('native: with no maxRetries, a request that keeps failing is sent 1 + the default retries times', async () => {
    useEngine('native');
    const s = servers();
    const key = `${uniqueKey('defaults-retry')}/o.bin`;
    const proxy = await faultProxy(s.s3.endpoint, () => true);
    try {
      // Only the first wait is shortened: the number of retries is the engine's default.
      const store = { ...s3Through(proxy.url), initialBackoffMs: 1 };
      await rejection(head(`s3://${s.s3.bucket}/${key}`, { store }));
      expect(proxy.failed).toBe(1 + DEFAULTS.maxRetries);
    } finally {
      await proxy.close();
    }
  });

  it('js: with no maxRetries, a request that keeps failing is sent 1 + the default retries times', async () => {
    useEngine('js');
    const o = seedHttp(1000, 'defaults-retry');
    await fault({ path: o.path, kind: 'status', status: 503 });
    await rejection(head(o.url, { store: { initialBackoffMs: 1 } }));
    expect(await requestsFor(o.path)).toBe(1 + DEFAULTS.maxRetries);
  });

  for (const engine of ENGINES) {
    it(`${engine}: with no concurrency, downloadMany has the default number of objects in flight`, async () => {
      useEngine(engine);
      const s = servers();
      // Every body takes at least 2 s through the proxy: in the first second only the first
      // `manyConcurrency` objects can have asked for theirs.
      const size = 128 * 1024;
      const objects = Array.from({ length: DEFAULTS.manyConcurrency + 8 }, () =>
        seedHttp(size, 'defaults-many'),
      );
      const started: number[] = [];
      const proxy = await faultProxy(
        s.http.url,
        (req) => {
          if (req.method === 'GET') started.push(performance.now());
          return false;
        },
        { bytesPerSec: size / 2 },
      );
      try {
        const dir = tempDir();
        const items = objects.map((o, i) => ({
          url: `${proxy.url}${o.path}`,
          dest: join(dir, `${i}.bin`),
        }));
        const results = await downloadMany(items);
        expect(results.map((r) => r.bytes)).toEqual(objects.map(() => size));
        const first = Math.min(...started);
        expect(started.filter((t) => t - first < 1000)).toHaveLength(DEFAULTS.manyConcurrency);
        expect(started).toHaveLength(objects.length);
      } finally {
        await proxy.close();
      }
    });
  }
});
