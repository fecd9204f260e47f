// Driving resumable downloads from tests: the journal beside a destination, and a download in a
// child process killed with SIGKILL part-way.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { StoreOptions } from '../../src/index.js';
import { distEntry, runModule, type ChildResult } from './child.js';

export interface JournalFile {
  etag: string;
  size: number;
  partSize: number;
  /** `[offset, length, crc]` of every part whose bytes are written. */
  done: [number, number, number][];
}

/** The journal of a resumable download into `dir/name` (throws while there is none). */
export const journalOf = (dir: string, name: string): JournalFile =>
  JSON.parse(readFileSync(join(dir, `.${name}.objget.json`), 'utf8')) as JournalFile;

/** The part file of a resumable download into `dir/name`. */
export const partFileOf = (dir: string, name: string): string => join(dir, `.${name}.objget.part`);

export async function waitFor(cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Parts journaled so far for `dir/name` (0 while there is no journal). */
export function journaledParts(dir: string, name: string): number {
  try {
    return journalOf(dir, name).done.length;
  } catch {
    return 0;
  }
}

export interface ResumableChild {
  dest: string;
  kill(): void;
  /** How the child ended; its stdout says `finished` if the download completed. */
  done: Promise<ChildResult>;
}

/** Start `download(url, dir/name, { resume: true, durable: false, … })` in a child process. */
export function resumableChild(
  url: string,
  dir: string,
  name: string,
  opts: { partSize: number; concurrency?: number; store?: StoreOptions },
): ResumableChild {
  const dest = join(dir, name);
  const options = { resume: true, durable: false, concurrency: 2, ...opts };
  const { child, done } = runModule(
    `import { download } from ${JSON.stringify(distEntry())};
     await download(${JSON.stringify(url)}, ${JSON.stringify(dest)}, ${JSON.stringify(options)});
     console.log('finished');`,
    { OBJGET_ENGINE: 'native' },
  );
  return { dest, kill: () => child.kill('SIGKILL'), done };
}

/** Start a download in a child process and kill -9 it once `parts` parts are journaled. */
export async function killedAfter(
  url: string,
  dir: string,
  name: string,
  parts: number,
  opts: { partSize: number; concurrency?: number; store?: StoreOptions },
): Promise<string> {
  const c = resumableChild(url, dir, name, opts);
  await waitFor(() => journaledParts(dir, name) >= parts);
  c.kill();
  const r = await c.done;
  expect(r.signal).toBe('SIGKILL');
  expect(r.stdout).not.toContain('finished');
  return c.dest;
}
