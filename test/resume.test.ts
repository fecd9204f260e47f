// resume: true — an interrupted download continues from its journal, fetching only what is
// missing, across processes; an object that changed starts over. Real server, real kill -9.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { download } from '../src/index.js';
import { rejection } from './helpers/expect.js';
import { clearFaults, fault, requestsFor, seedHttp } from './helpers/fixture.js';
import { journalOf, killedAfter, waitFor } from './helpers/resume.js';
import { bytes, tempDir, useEngine } from './helpers/servers.js';

const PART = 1024 * 1024;
const PARTS = 16;
const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});
afterEach(clearFaults);

describe('native engine: resume', () => {
  it('after kill -9, the next call fetches only the missing parts (counted at the server)', async () => {
    useEngine('native');
    const o = seedHttp(PARTS * PART + 5, 'resume');
    await fault({ path: o.path, kind: 'throttle', bytesPerSec: 4 * PART });
    const dir = tempDir();
    const dest = await killedAfter(o.url, dir, 'big.bin', 4, { partSize: PART });
    expect(existsSync(dest)).toBe(false);
    const journal = journalOf(dir, 'big.bin');
    expect(journal.size).toBe(o.data.length);
    expect(journal.partSize).toBe(PART);
    const kept = journal.done.length;
    expect(kept).toBeGreaterThanOrEqual(4);
    expect(kept).toBeLessThan(PARTS + 1);

    await clearFaults();
    const before = await requestsFor(o.path);
    const r = await download(o.url, dest, { resume: true, partSize: 4 * PART });
    const requests = (await requestsFor(o.path)) - before;
    const missing = PARTS + 1 - kept;
    // One HEAD re-checks the ETag, then one ranged GET per missing part (the journal's part
    // size wins over the call's).
    expect(r.parts).toBe(missing);
    expect(requests).toBe(1 + missing);
    expect(r.resumedBytes).toBe(journal.done.reduce((n, p) => n + p[1], 0));
    expect(r.bytes).toBe(o.data.length);
    expect(readFileSync(dest).equals(o.data)).toBe(true);
    expect(readdirSync(dir)).toEqual(['big.bin']);
  });

  it('an object that changed since the interruption is fetched from scratch', async () => {
    useEngine('native');
    const o = seedHttp(8 * PART, 'resume-changed');
    await fault({ path: o.path, kind: 'throttle', bytesPerSec: 4 * PART });
    const dir = tempDir();
    const dest = await killedAfter(o.url, dir, 'c.bin', 2, { partSize: PART });
    await clearFaults();
    const replaced = bytes(8 * PART, 4242);
    writeFileSync(o.file, replaced);
    const r = await download(o.url, dest, { resume: true, partSize: PART });
    expect(r.resumedBytes).toBe(0);
    expect(r.parts).toBe(8);
    expect(readFileSync(dest).equals(replaced)).toBe(true);
    expect(readdirSync(dir)).toEqual(['c.bin']);
  });

  it('an aborted download keeps its parts and journal for the next call', async () => {
    useEngine('native');
    const o = seedHttp(8 * PART, 'resume-abort');
    await fault({ path: o.path, kind: 'throttle', bytesPerSec: 4 * PART });
    const dir = tempDir();
    const dest = join(dir, 'a.bin');
    const ac = new AbortController();
    const pending = download(o.url, dest, {
      resume: true,
      partSize: PART,
      concurrency: 2,
      signal: ac.signal,
      onProgress: (p) => p.partsDone >= 2 && ac.abort(),
    });
    expect((await rejection(pending)).code).toBe('Aborted');
    await waitFor(() => existsSync(join(dir, '.a.bin.objget.json')));
    expect(existsSync(dest)).toBe(false);
    await clearFaults();
    const r = await download(o.url, dest, { resume: true });
    expect(r.resumedBytes).toBeGreaterThanOrEqual(2 * PART);
    expect(readFileSync(dest).equals(o.data)).toBe(true);
    expect(readdirSync(dir)).toEqual(['a.bin']);
  });

  it('a failed single-read download (nothing to resume from) leaves nothing behind', async () => {
    useEngine('native');
    const o = seedHttp(100_000, 'resume-small');
    await fault({ path: o.path, kind: 'reset', afterBytes: 50_000 });
    const dir = tempDir();
    const err = await rejection(
      download(o.url, join(dir, 's.bin'), {
        resume: true,
        store: { maxRetries: 0, initialBackoffMs: 1 },
      }),
    );
    expect(err.code).not.toBe('Aborted');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the JS engine answers resume with NotSupported', async () => {
    useEngine('js');
    const o = seedHttp(1000, 'resume-js');
    const dest = join(tempDir(), 'j.bin');
    expect((await rejection(download(o.url, dest, { resume: true }))).code).toBe('NotSupported');
    expect(existsSync(dest)).toBe(false);
  });
});
