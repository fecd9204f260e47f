// Hardening of `resume: true` (issue 9): a resume re-reads the parts its journal lists and
// fetches again what no longer matches; two downloads into one destination are serialised or
// answered with Busy; an abort settles only after the call's last write; and a download killed
// with SIGKILL over and over ends byte-identical. Real servers, real kill -9.
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { download, StorageError, upload, type StoreOptions } from '../src/index.js';
import { rejection } from './helpers/expect.js';
import { faultProxy } from './helpers/fault-proxy.js';
import { clearFaults, fault, seedHttp } from './helpers/fixture.js';
import {
  journaledParts,
  journalOf,
  killedAfter,
  partFileOf,
  resumableChild,
  waitFor,
} from './helpers/resume.js';
import { backends, bytes, servers, tempDir, uniqueKey, useEngine } from './helpers/servers.js';

const PART = 1024 * 1024;
const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});
afterEach(clearFaults);

const sha256 = (file: string): string =>
  createHash('sha256').update(readFileSync(file)).digest('hex');

/** Overwrite `data.length` bytes of `file` at `at`, in place. */
function overwrite(file: string, at: number, data: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, at);
  } finally {
    closeSync(fd);
  }
}

/** Flip one bit of byte `at` of `file`, knowing it held `original`. */
function flip(file: string, at: number, original: number): void {
  overwrite(file, at, Buffer.from([original ^ 0x40]));
}

describe('resume re-verifies the parts it keeps', () => {
  for (const damage of ['a flipped byte', 'bytes that never reached the disk'] as const) {
    it(`a journaled part with ${damage} is fetched again (no checksum would catch it)`, async () => {
      useEngine('native');
      // The fixture advertises no checksum: only the journal's own CRCs can tell.
      const o = seedHttp(8 * PART + 3, 'hr-verify');
      await fault({ path: o.path, kind: 'throttle', bytesPerSec: 4 * PART });
      const dir = tempDir();
      const dest = await killedAfter(o.url, dir, 'v.bin', 3, { partSize: PART });
      await clearFaults();
      const journal = journalOf(dir, 'v.bin');
      const part = partFileOf(dir, 'v.bin');
      const whole = journal.done.filter(([, len]) => len === PART);
      const bad = whole.slice(0, damage === 'a flipped byte' ? 1 : 2);
      for (const [offset, len] of bad) {
        if (damage === 'a flipped byte') flip(part, offset + 1234, o.data[offset + 1234]!);
        // A power loss with `durable: false`: the journal reached the disk, these bytes did not.
        else overwrite(part, offset, Buffer.alloc(len));
      }
      const r = await download(o.url, dest, {
        resume: true,
        checksum: damage === 'a flipped byte' ? 'auto' : 'off',
      });
      expect(readFileSync(dest).equals(o.data)).toBe(true);
      const kept = journal.done.length - bad.length;
      expect(r.parts).toBe(9 - kept);
      const sum = (parts: [number, number, number][]) => parts.reduce((n, [, l]) => n + l, 0);
      expect(r.resumedBytes).toBe(sum(journal.done) - sum(bad));
      expect(r.checksum).toBeUndefined();
      expect(readdirSync(dir)).toEqual(['v.bin']);
    });
  }
});

describe('an aborted resumable download', () => {
  it('has written its last byte and journal record when it rejects (durable)', async () => {
    useEngine('native');
    const o = seedHttp(8 * PART, 'hr-abort');
    await fault({ path: o.path, kind: 'throttle', bytesPerSec: 4 * PART });
    const dir = tempDir();
    const dest = join(dir, 'a.bin');
    const ac = new AbortController();
    const err = await rejection(
      download(o.url, dest, {
        resume: true,
        durable: true,
        partSize: PART,
        concurrency: 2,
        signal: ac.signal,
        onProgress: (p) => p.partsDone >= 2 && ac.abort(),
      }),
    );
    expect(err.code).toBe('Aborted');
    // At once: the journal is there, with the parts that completed (synced, as durable asks).
    const json = join(dir, '.a.bin.objget.json');
    const part = partFileOf(dir, 'a.bin');
    expect(existsSync(json), 'journal written before the rejection').toBe(true);
    const journal = readFileSync(json, 'utf8');
    expect(journalOf(dir, 'a.bin').done.length).toBeGreaterThanOrEqual(2);
    const before = { part: sha256(part), json: statSync(json).mtimeMs, size: statSync(part).size };
    // Nothing of that call writes afterwards.
    await sleep(600);
    expect(readFileSync(json, 'utf8')).toBe(journal);
    expect({ part: sha256(part), json: statSync(json).mtimeMs, size: statSync(part).size }).toEqual(
      before,
    );
    expect(readdirSync(dir).sort()).toEqual(['.a.bin.objget.json', '.a.bin.objget.part']);
    await clearFaults();
    const r = await download(o.url, dest, { resume: true });
    expect(r.resumedBytes).toBeGreaterThanOrEqual(2 * PART);
    expect(readFileSync(dest).equals(o.data)).toBe(true);
    expect(readdirSync(dir)).toEqual(['a.bin']);
  });
});

describe('two processes resuming into one destination', () => {
  it('the second waits for the first, then finishes on its own part file: no NotFound, nothing left', async () => {
    useEngine('native');
    const o = seedHttp(8 * PART, 'hr-race');
    // About a second for the first download, well within the second's wait for the lock.
    await fault({ path: o.path, kind: 'throttle', bytesPerSec: 4 * PART });
    const dir = tempDir();
    const first = resumableChild(o.url, dir, 'r.bin', { partSize: PART });
    await waitFor(() => journaledParts(dir, 'r.bin') >= 1);
    const second = await download(o.url, first.dest, { resume: true, partSize: PART }).then(
      (r) => r,
      (e: unknown) => e,
    );
    const child = await first.done;
    expect(child.stdout, child.stderr).toContain('finished');
    if (second instanceof StorageError) {
      // Allowed when the first took longer than the wait (a loaded machine): a clear code.
      expect(second.code).toBe('Busy');
    } else {
      expect(second).toMatchObject({ bytes: o.data.length, resumedBytes: 0 });
    }
    expect(readFileSync(first.dest).equals(o.data)).toBe(true);
    expect(readdirSync(dir)).toEqual(['r.bin']);
  });

  it('a second download that cannot get the lock in time fails with Busy and touches nothing', async () => {
    useEngine('native');
    const o = seedHttp(8 * PART, 'hr-busy');
    // About four seconds for the first download: longer than the second waits.
    await fault({ path: o.path, kind: 'throttle', bytesPerSec: PART });
    const dir = tempDir();
    const first = resumableChild(o.url, dir, 'b.bin', { partSize: PART });
    await waitFor(() => journaledParts(dir, 'b.bin') >= 1);
    const err = await rejection(download(o.url, first.dest, { resume: true, partSize: PART }));
    expect(err.code).toBe('Busy');
    // The first download's files are its own, still there; it finishes.
    expect(existsSync(partFileOf(dir, 'b.bin'))).toBe(true);
    const child = await first.done;
    expect(child.stdout, child.stderr).toContain('finished');
    expect(readFileSync(first.dest).equals(o.data)).toBe(true);
    expect(readdirSync(dir)).toEqual(['b.bin']);
  });
});

describe('SIGKILL-and-resume loop against MinIO', () => {
  const SIZE = 24 * PART + 11;
  const NAME = 'big.bin';

  /**
   * Kill a resumable download of `url` at random points, three times, then once more after at
   * least two more parts are journaled (so that the final call really resumes).
   */
  async function interrupted(url: string, dir: string, store: StoreOptions): Promise<void> {
    const opts = { partSize: PART, concurrency: 4, store };
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = resumableChild(url, dir, NAME, opts);
      const delay = 300 + Math.floor(Math.random() * 1200);
      delays.push(delay);
      await sleep(delay);
      c.kill();
      const r = await c.done;
      expect(r.signal, `killed after ${delays.join(', ')} ms`).toBe('SIGKILL');
    }
    await killedAfter(url, dir, NAME, journaledParts(dir, NAME) + 2, opts);
  }

  /** MinIO behind a proxy that slows every body, so that kills land mid-transfer. */
  async function slowS3<T>(run: (slow: StoreOptions, store: StoreOptions) => Promise<T>) {
    const s3 = backends().find((b) => b.name === 's3')!;
    const proxy = await faultProxy(servers().s3.endpoint, () => false, { bytesPerSec: PART });
    try {
      const slow = { ...s3.store, config: { ...s3.store.config, aws_endpoint: proxy.url } };
      return await run(slow, s3.store);
    } finally {
      await proxy.close();
    }
  }

  it('ends byte-identical, verified with the object CRC64NVME', { timeout: 120_000 }, async () => {
    useEngine('native');
    const s3 = backends().find((b) => b.name === 's3')!;
    const url = s3.url(`${uniqueKey('hr-kill')}/${NAME}`);
    const data = bytes(SIZE, 91);
    const up = await upload(data, url, { store: s3.store });
    expect(up.checksum?.algorithm).toBe('crc64nvme');
    const dir = tempDir();
    await slowS3((slow) => interrupted(url, dir, slow));
    const r = await download(url, join(dir, NAME), { resume: true, store: s3.store });
    expect(r.resumedBytes).toBeGreaterThan(0);
    expect(r.checksum).toEqual(up.checksum);
    expect(readFileSync(join(dir, NAME)).equals(data)).toBe(true);
    expect(readdirSync(dir)).toEqual([NAME]);
  });

  it(
    'a flipped byte in a journaled part is fetched again, and the CRC32 verified covers the disk',
    {
      timeout: 120_000,
    },
    async () => {
      useEngine('native');
      const s3 = backends().find((b) => b.name === 's3')!;
      const key = `${uniqueKey('hr-kill-flip')}/${NAME}`;
      const data = bytes(SIZE, 92);
      // Put by the AWS SDK, which stores a CRC32 (another CRC than the journal's own).
      await s3.put(key, data);
      const dir = tempDir();
      await slowS3((slow) => interrupted(s3.url(key), dir, slow));
      const journal = journalOf(dir, NAME);
      const [offset, len] = journal.done.at(-1)!;
      const at = offset + Math.floor(len / 2);
      flip(partFileOf(dir, NAME), at, data[at]!);
      const r = await download(s3.url(key), join(dir, NAME), { resume: true, store: s3.store });
      const want = Buffer.alloc(4);
      want.writeUInt32BE(crc32(data));
      expect(r.checksum).toEqual({ algorithm: 'crc32', value: want.toString('base64') });
      expect(r.resumedBytes).toBe(journal.done.reduce((n, [, l]) => n + l, 0) - len);
      expect(readFileSync(join(dir, NAME)).equals(data)).toBe(true);
      expect(readdirSync(dir)).toEqual([NAME]);
    },
  );

  it(
    'a symlink planted at the part file never writes through it',
    { timeout: 120_000 },
    async () => {
      useEngine('native');
      const s3 = backends().find((b) => b.name === 's3')!;
      const url = s3.url(`${uniqueKey('hr-kill-link')}/${NAME}`);
      const data = bytes(SIZE, 93);
      await upload(data, url, { store: s3.store });
      const dir = tempDir();
      await slowS3((slow) => killedAfter(url, dir, NAME, 2, { partSize: PART, store: slow }));
      // Someone with write access to the directory swaps the part file for a link to their file.
      const outside = tempDir();
      const target = join(outside, 'precious.bin');
      const precious = bytes(SIZE, 94);
      writeFileSync(target, precious);
      const part = partFileOf(dir, NAME);
      rmSync(part);
      symlinkSync(target, part);
      const outcome = await download(url, join(dir, NAME), { resume: true, store: s3.store }).then(
        (r) => r,
        (e: unknown) => e,
      );
      if (outcome instanceof StorageError) {
        expect(outcome.code).not.toBe('Generic');
        expect(existsSync(join(dir, NAME))).toBe(false);
      } else {
        expect(readFileSync(join(dir, NAME)).equals(data)).toBe(true);
      }
      expect(readFileSync(target).equals(precious)).toBe(true);
      expect(readdirSync(outside)).toEqual(['precious.bin']);
    },
  );
});
