// Where a download read in JavaScript lands (the JS engine's, a registered scheme's; the native
// engine lands its own): a uniquely named temporary beside the destination (or the device / FIFO
// itself), fsynced when durable, renamed into place; nothing is left behind on failure.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fromNodeError, StorageError } from '../errors.js';
import { DEFAULTS } from '../options.js';
import type { Verifier } from './js/checksum.js';
import type { EngineTransfer, Progress, TransferSettings } from '../types.js';

/** Throttled progress, like the native engine's: at most every 100 ms, and once at the end. */
export class Reporter {
  private bytes = 0;
  private last = 0;
  private total: number | undefined;
  constructor(
    private readonly cb: ((p: Progress) => void) | undefined,
    private readonly index?: number,
  ) {}
  plan(total: number): void {
    this.total = total;
  }
  add(n: number): void {
    this.bytes += n;
    if (this.cb && performance.now() - this.last >= 100) {
      this.last = performance.now();
      this.emit(0);
    }
  }
  finish(): void {
    this.emit(1);
  }
  private emit(done: number): void {
    try {
      this.cb?.({
        ...(this.index === undefined ? {} : { index: this.index }),
        bytes: this.bytes,
        total: this.total,
        partsDone: done,
        partsTotal: 1,
      });
    } catch {
      // the caller's callback failed; the transfer goes on
    }
  }
}

/**
 * Stream a body into an open file, in order, counting and hashing; returns the bytes written. A
 * failure of the file (disk full, …) is `Io` and names `where`; one of the body is its own.
 */
export async function writeBody(
  body: AsyncIterable<Uint8Array>,
  fh: FileHandle,
  where: string,
  url: string,
  report: Reporter,
  signal: AbortSignal | undefined,
  verifier?: Verifier,
): Promise<number> {
  let local: unknown;
  let bytes = 0;
  // Into the open file, in order (a FIFO or a device takes no offsets); the file stays open for
  // the caller's fdatasync.
  const out = new Writable({
    write(chunk: Uint8Array, _encoding, done) {
      writeAll(fh, chunk).then(
        () => {
          bytes += chunk.length;
          done();
        },
        (e: unknown) => {
          local ??= e;
          done(e as Error);
        },
      );
    },
  });
  const counted = async function* (src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const c of src) {
      verifier?.update(c);
      report.add(c.length);
      yield c;
    }
  };
  try {
    await pipeline(body, counted, out, { signal });
  } catch (e) {
    if (local !== undefined && !signal?.aborted) throw fromNodeError(local, url, where);
    throw e;
  }
  return bytes;
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let at = 0; at < chunk.length;) {
    at += (await fh.write(chunk, at, chunk.length - at, null)).bytesWritten;
  }
}

/**
 * Save a body from anywhere (a registered scheme's handler) the way every download lands: a
 * temporary beside `dest`, fdatasync when durable, rename; nothing left on failure.
 */
export async function saveStream(
  url: string,
  body: AsyncIterable<Uint8Array>,
  dest: string,
  t: TransferSettings,
  index?: number,
): Promise<EngineTransfer> {
  const report = new Reporter(t.onProgress, index);
  const started = performance.now();
  const target = isAbsolute(dest) ? dest : resolve(dest);
  try {
    return await withTemp(url, target, t, async (fh, where): Promise<EngineTransfer> => {
      const bytes = await writeBody(body, fh, where, url, report, t.signal);
      report.plan(bytes);
      report.finish();
      return { bytes, elapsedMs: performance.now() - started, parts: 1, resumedBytes: 0 };
    });
  } catch (e) {
    if (t.signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url);
  }
}

/**
 * The name objget's own files beside `name` are made from: `name`, or, where the longest of
 * them (`.name.objget-<16 hex>.part`) would pass 255 bytes, its first 200 bytes (at a character
 * boundary), `-` and 16 hex digits of its SHA-256 (as the native engine's `place::stem`).
 */
export function tempStem(name: string): string {
  const raw = Buffer.from(name);
  if (raw.length + 30 <= 255) return name;
  let cut = 200;
  while (cut > 0 && (raw[cut]! & 0xc0) === 0x80) cut--;
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 16);
  return `${raw.subarray(0, cut).toString()}-${hash}`;
}

function planted(path: string, what: string): StorageError {
  return new StorageError(
    'UnsafeKey',
    `${path}: ${what}; objget writes only its own regular files and follows no link there, so nothing was written`,
  );
}

/**
 * Make `dir` (as `mkdir -p`); beneath `root`, every component below `root` must be a directory,
 * not a link (`UnsafeKey`). Node has no openat: checked by lstat before the temporary is made
 * and again before the rename (the native engine works from directory descriptors instead).
 */
async function makeDir(dir: string, root: string | undefined): Promise<void> {
  if (root === undefined) {
    await mkdir(dir, { recursive: true });
    return;
  }
  const rel = relative(root, dir);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new StorageError('UnsafeKey', `${dir}: not beneath ${root}; nothing was written`);
  }
  await mkdir(root, { recursive: true });
  let at = root;
  for (const name of rel ? rel.split(sep) : []) {
    at = join(at, name);
    let s = await lstat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!s) {
      await mkdir(at).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      s = await lstat(at);
    }
    if (s.isSymbolicLink()) throw planted(at, 'a symbolic link');
    if (!s.isDirectory()) {
      throw Object.assign(new Error(`ENOTDIR: not a directory, '${at}'`), { code: 'ENOTDIR' });
    }
  }
}

/**
 * A character device or FIFO, opened to be written in order (never replaced). A FIFO with no
 * reader is an error, not a wait; only this user's or root's are written.
 */
async function openStream(dest: string, nofollow: number): Promise<FileHandle> {
  const probe = await open(dest, fsc.O_WRONLY | fsc.O_NONBLOCK | nofollow).catch(
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENXIO') {
        throw new StorageError('Io', `${dest}: a FIFO with no reader; start its reader first`);
      }
      if (e.code === 'ELOOP') throw planted(dest, 'a symbolic link');
      throw e;
    },
  );
  try {
    const s = await probe.stat();
    if (!s.isCharacterDevice() && !s.isFIFO()) {
      throw new StorageError('Io', `${dest}: changed while it was being opened`);
    }
    if (s.uid !== 0 && s.uid !== process.geteuid?.()) {
      throw planted(dest, 'a device or FIFO owned by another user');
    }
    // Node cannot clear O_NONBLOCK on a descriptor: a blocking one, now that a reader is there.
    return await open(dest, fsc.O_WRONLY | nofollow);
  } finally {
    await probe.close();
  }
}

/**
 * Where a download lands: a uniquely named temporary beside `dest` (created with O_EXCL and
 * O_NOFOLLOW), removed unless renamed over `dest`; or, when `dest` is a character device or a
 * FIFO, `dest` itself, written in order. `fill` writes into the open file (`where` names it).
 * With `t.root`, `dest`'s directory must lie beneath it with no link on the way.
 */
export async function withTemp<T>(
  url: string,
  dest: string,
  t: TransferSettings,
  fill: (fh: FileHandle, where: string) => Promise<T>,
): Promise<T> {
  const durable = t.durable ?? DEFAULTS.durable;
  const root = t.root === undefined ? undefined : resolve(t.root);
  const dir = dirname(dest);
  const local = (e: unknown): never => {
    throw e instanceof StorageError ? e : fromNodeError(e, url, dest);
  };
  await makeDir(dir, root).catch(local);
  // A plain download looks through a link at `dest` (the caller named it); beneath a root, not.
  const existing = await (root === undefined ? stat : lstat)(dest).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw new StorageError('InvalidArgument', `${dest}: is a directory`);
  }
  const nofollow = root === undefined ? 0 : fsc.O_NOFOLLOW;
  if (existing?.isCharacterDevice() || existing?.isFIFO()) {
    const fh = await openStream(dest, nofollow).catch(local);
    try {
      return await fill(fh, dest);
    } finally {
      await fh.close();
    }
  }
  if (existing && !existing.isFile() && !existing.isSymbolicLink()) {
    throw new StorageError(
      'InvalidArgument',
      `${dest}: is a block device or a socket; objget writes regular files, character devices and FIFOs`,
    );
  }
  const temp = join(
    dir,
    `.${tempStem(basename(dest))}.objget-${randomBytes(8).toString('hex')}.part`,
  );
  const fh = await open(temp, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o666).catch(
    local,
  );
  let closed = false;
  try {
    const out = await fill(fh, temp);
    if (durable) await fh.datasync().catch(local);
    closed = true;
    await fh.close();
    if (root !== undefined) await makeDir(dir, root).catch(local);
    await rename(temp, dest).catch(local);
    if (durable) {
      const d = await open(dir, 'r').catch(() => undefined);
      await d?.sync().catch(() => undefined);
      await d?.close();
    }
    return out;
  } catch (e) {
    if (!closed) await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw e;
  }
}

export function abortedError(url: string): StorageError {
  return new StorageError('Aborted', 'the transfer was aborted', { url });
}
