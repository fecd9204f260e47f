// Every failure leaves the world as it was: no file at the destination, no temporary beside it.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { rejection } from './helpers/expect.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { download, get, StorageError } from '../src/index.js';
import { distEntry, runModule } from './helpers/child.js';
import { bytes, servers, tempDir, uniqueKey, useEngine } from './helpers/servers.js';

async function fault(body: object): Promise<void> {
  const r = await fetch(`${servers().http.url}/__fault`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  expect(r.status).toBe(204);
}

function seed(size: number): { key: string; path: string; data: Buffer } {
  const key = `${uniqueKey('cleanup')}/obj.bin`;
  const data = bytes(size, 11);
  const path = join(servers().http.root, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return { key, path: `/${key}`, data };
}

const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});
afterEach(async () => {
  await fetch(`${servers().http.url}/__fault`, { method: 'DELETE' });
});

for (const engine of ['native', 'js'] as const) {
  describe(`${engine} engine: interrupted transfers leave nothing`, () => {
    it('a connection reset mid-body fails the download and leaves the directory empty', async () => {
      useEngine(engine);
      const { path } = seed(8 * 1024 * 1024);
      await fault({ path, kind: 'reset', afterBytes: 1024 * 1024 });
      const dir = tempDir();
      const dest = join(dir, 'out.bin');
      const err = await download(`${servers().http.url}${path}`, dest, {
        store: { maxRetries: 1, initialBackoffMs: 10 },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect(existsSync(dest)).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    });

    it('transient 503s are retried and the download succeeds', async () => {
      useEngine(engine);
      const { path, data } = seed(300_000);
      await fault({ path, kind: 'status', status: 503, times: 2 });
      const dir = tempDir();
      const r = await download(`${servers().http.url}${path}`, join(dir, 'r.bin'), {
        store: { maxRetries: 3, initialBackoffMs: 10 },
      });
      expect(r.bytes).toBe(data.length);
      expect(readFileSync(join(dir, 'r.bin')).equals(data)).toBe(true);
    });

    it('a 503 that outlasts the retries fails cleanly', async () => {
      useEngine(engine);
      const { path } = seed(1000);
      await fault({ path, kind: 'status', status: 503 });
      const dir = tempDir();
      const err = await rejection(
        download(`${servers().http.url}${path}`, join(dir, 'x.bin'), {
          store: { maxRetries: 1, initialBackoffMs: 10 },
        }),
      );
      // A 503 storm that outlasts the retries (issue 9).
      expect(err.code).toBe('Throttled');
      expect(readdirSync(dir)).toEqual([]);
    });

    it('an existing destination survives a failed download untouched', async () => {
      useEngine(engine);
      const { path } = seed(4 * 1024 * 1024);
      await fault({ path, kind: 'reset', afterBytes: 100_000 });
      const dir = tempDir();
      const dest = join(dir, 'keep.bin');
      writeFileSync(dest, 'previous contents');
      await download(`${servers().http.url}${path}`, dest, {
        store: { maxRetries: 0 },
      }).catch(() => undefined);
      expect(readdirSync(dir)).toEqual(['keep.bin']);
      expect(statSync(dest).size).toBe('previous contents'.length);
    });

    it('an AbortSignal rejects with Aborted and removes the temporary', async () => {
      useEngine(engine);
      const { path } = seed(16 * 1024 * 1024);
      await fault({ path, kind: 'throttle', bytesPerSec: 4 * 1024 * 1024 });
      const dir = tempDir();
      const ac = new AbortController();
      const p = download(`${servers().http.url}${path}`, join(dir, 'a.bin'), { signal: ac.signal });
      await waitFor(() => readdirSync(dir).length > 0);
      ac.abort();
      const err = await rejection(p);
      expect(err.code).toBe('Aborted');
      await waitFor(() => readdirSync(dir).length === 0);
      expect(readdirSync(dir)).toEqual([]);
      const getErr = await rejection(
        get(`${servers().http.url}${path}`, {
          signal: AbortSignal.abort(),
        }),
      );
      expect(getErr.code).toBe('Aborted');
    });

    it('a killed process leaves nothing at the destination', async () => {
      const { path } = seed(32 * 1024 * 1024);
      await fault({ path, kind: 'throttle', bytesPerSec: 4 * 1024 * 1024 });
      const dir = tempDir();
      const dest = join(dir, 'killed.bin');
      const { child, done } = runModule(
        `import { download } from ${JSON.stringify(distEntry())};
         await download(${JSON.stringify(`${servers().http.url}${path}`)}, ${JSON.stringify(dest)});
         console.log('finished');`,
        { OBJGET_ENGINE: engine },
      );
      // Wait until bytes are landing in the temporary, then kill without warning.
      await waitFor(() => readdirSync(dir).some((f) => statSync(join(dir, f)).size > 0), 20_000);
      child.kill('SIGKILL');
      const r = await done;
      expect(r.signal).toBe('SIGKILL');
      expect(r.stdout).not.toContain('finished');
      expect(existsSync(dest)).toBe(false);
      // Only the hidden temporary may remain (it is what `resume` will continue from).
      expect(
        readdirSync(dir).every((f) => f.startsWith('.killed.bin.objget-') && f.endsWith('.part')),
      ).toBe(true);
    });
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
