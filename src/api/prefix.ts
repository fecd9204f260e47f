import { lstat, readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { DownloadManyError, StorageError, type ItemOutcome } from '../errors.js';
import { checkArgs, DEFAULTS } from '../options.js';
import { settleAll, valuesOrThrow } from '../settle.js';
import { joinKey } from '../urls.js';
import { guarded } from './call.js';
import { downloadManyBeneath } from './download.js';
import { list, upload } from './ops.js';
import type {
  DownloadManyOptions,
  ListedObject,
  Progress,
  TransferResult,
  UploadOptions,
  UploadResult,
} from '../types.js';

export interface DownloadPrefixOptions extends DownloadManyOptions {
  /** Download only the objects this returns true for. */
  filter?: (o: ListedObject) => boolean;
  /** Replace files that already exist (default true); false skips them. */
  overwrite?: boolean;
}

export interface DownloadPrefixResult {
  /** One result per object downloaded, in listing order. */
  results: TransferResult[];
  /**
   * URLs of the objects not downloaded, in listing order: their file existed
   * (`overwrite: false`), or their key cannot be placed safely under `destDir` (`UnsafeKey`).
   * `skippedDetails` says which, for each, in the same order.
   */
  skipped: string[];
  /** Why each object of `skipped` was not downloaded. */
  skippedDetails: SkippedObject[];
}

/** An object `downloadPrefix` did not download, and why. */
export interface SkippedObject {
  url: string;
  key: string;
  /** `'exists'`: its file existed (`overwrite: false`); `'unsafeKey'`: see `error`. */
  reason: 'exists' | 'unsafeKey';
  /** For `'unsafeKey'`: the `UnsafeKey` error saying what is wrong with the key. */
  error?: StorageError;
}

export interface UploadDirOptions extends Omit<UploadOptions, 'onProgress'> {
  /** Files uploaded at once, default 8 (each may run its own parts in parallel). */
  fileConcurrency?: number;
  /** Upload only the files this returns true for (paths relative to `dir`, `/`-separated). */
  filter?: (relativePath: string) => boolean;
  /** Progress per file (with its index in the returned list) and across the whole set. */
  onProgress?: (p: Progress) => void;
}

/**
 * Progress across a set of objects: each object's events, with the set's running totals
 * (`setBytes` of `setTotal`, `objectsDone` of `objectsTotal`) added.
 */
class SetProgress {
  private readonly seen: number[];
  private readonly finished: boolean[];
  private bytes = 0;
  private done = 0;
  private readonly total: number;

  constructor(
    sizes: number[],
    private readonly cb: (p: Progress) => void,
  ) {
    this.seen = sizes.map(() => 0);
    this.finished = sizes.map(() => false);
    this.total = sizes.reduce((a, b) => a + b, 0);
  }

  item(index: number, p: Progress): void {
    this.bytes += p.bytes - this.seen[index]!;
    this.seen[index] = p.bytes;
    if (!this.finished[index] && p.total !== undefined && p.bytes >= p.total) {
      this.finished[index] = true;
      this.done++;
    }
    this.cb({
      ...p,
      index,
      setBytes: this.bytes,
      setTotal: this.total,
      objectsDone: this.done,
      objectsTotal: this.seen.length,
    });
  }
}

/**
 * Where a key lands under `root`, or why it may not: a key that would leave `root` (a `..`
 * segment, an absolute path, a backslash, a NUL, a drive letter, an empty segment) or that no
 * file name can hold portably (a control character such as a newline or a tab) is refused.
 */
export function safeTarget(root: string, rel: string): string | StorageError {
  const unsafe = (why: string): StorageError =>
    new StorageError('UnsafeKey', `key ${JSON.stringify(rel)} ${why}; nothing was written`);
  if (rel.includes('\0')) return unsafe('contains a NUL');
  // eslint-disable-next-line no-control-regex
  if (/[\x01-\x1f\x7f]/.test(rel)) return unsafe('contains a control character');
  if (rel.includes('\\')) return unsafe('contains a backslash');
  if (rel.startsWith('/')) return unsafe('is an absolute path');
  const segments = rel.split('/');
  // `C:x` is drive-relative on Windows wherever it stands (`a/C:x` too).
  if (segments.some((s) => /^[a-zA-Z]:/.test(s))) return unsafe('has a drive letter');
  if (segments.some((s) => s === '..' || s === '.')) return unsafe('has a . or .. segment');
  if (segments.some((s) => s === '')) return unsafe('has an empty segment');
  const target = resolve(root, ...segments);
  const back = relative(root, target);
  if (!back || back.startsWith(`..${sep}`) || back === '..' || isAbsolute(back)) {
    return unsafe('resolves outside the destination directory');
  }
  return target;
}

/**
 * Download every object under a prefix URL into `destDir`, keeping the key structure below the
 * prefix, through the same scheduler as `downloadMany` (at most `concurrency` objects at once).
 * Directory markers (keys ending in `/`) are skipped. A key that would land outside `destDir` —
 * by its own segments, or through a link inside `destDir` — is refused with `UnsafeKey` and
 * nothing is written for it. If any object fails the others still
 * finish, then the call rejects with a `DownloadManyError` listing every outcome.
 *
 * @example
 * await downloadPrefix('s3://bucket/datasets/v3/', './data', { concurrency: 64 });
 */
export async function downloadPrefix(
  prefixUrl: string,
  destDir: string,
  options: DownloadPrefixOptions = {},
): Promise<DownloadPrefixResult> {
  checkArgs('downloadPrefix', prefixUrl, destDir, options);
  const root = resolve(destDir);
  const items: { url: string; dest: string }[] = [];
  const sizes: number[] = [];
  const skippedDetails: SkippedObject[] = [];
  for await (const o of list(prefixUrl, { store: options.store })) {
    // A folder marker (a zero-byte key ending in `/`, what consoles create) is no file.
    if (o.size === 0 && (o.key.endsWith('/') || o.url.endsWith('/'))) continue;
    if (options.filter && !options.filter(o)) continue;
    const target = safeTarget(root, o.relative);
    if (target instanceof StorageError) {
      const error = Object.assign(target, { url: o.url });
      skippedDetails.push({ url: o.url, key: o.key, reason: 'unsafeKey', error });
      continue;
    }
    if (options.overwrite === false && (await lstat(target).catch(() => undefined))) {
      skippedDetails.push({ url: o.url, key: o.key, reason: 'exists' });
      continue;
    }
    items.push({ url: o.url, dest: target });
    sizes.push(o.size);
  }
  const cb = options.onProgress;
  const set = cb && new SetProgress(sizes, cb);
  let results: TransferResult[] = [];
  let outcomes: ItemOutcome<TransferResult>[] = [];
  try {
    // Every file beneath `root`, with no link on the way: a directory inside destDir that is a
    // link to elsewhere is refused (UnsafeKey), not written through.
    results = await downloadManyBeneath(
      items,
      { ...options, onProgress: set && ((p) => set.item(p.index ?? 0, p)) },
      root,
    );
    outcomes = results.map((value) => ({ status: 'fulfilled', value }));
  } catch (e) {
    if (!(e instanceof DownloadManyError)) throw e;
    outcomes = e.outcomes as ItemOutcome<TransferResult>[];
  }
  valuesOrThrow(outcomes);
  return { results, skipped: skippedDetails.map((s) => s.url), skippedDetails };
}

/**
 * Upload every regular file under `dir` to `prefixUrl` + its relative path (`/`-separated),
 * at most `fileConcurrency` files at once. Symbolic links are not followed. If any file fails
 * the others still finish, then the call rejects with a `DownloadManyError`-shaped error whose
 * `outcomes` say what happened to each file.
 */
export async function uploadDir(
  dir: string,
  prefixUrl: string,
  options: UploadDirOptions = {},
): Promise<UploadResult[]> {
  return guarded(async () => {
    checkArgs('uploadDir', dir, prefixUrl, options);
    const root = resolve(dir);
    const files = (await filesUnder(root)).filter((f) => !options.filter || options.filter(f.rel));
    const cb = options.onProgress;
    const set =
      cb &&
      new SetProgress(
        files.map((f) => f.size),
        cb,
      );
    const outcomes = await settleAll(
      files,
      options.fileConcurrency ?? DEFAULTS.fileConcurrency,
      ({ rel }, i) =>
        upload(join(root, ...rel.split('/')), joinKey(prefixUrl, rel), {
          ...options,
          onProgress: set && ((p) => set.item(i, p)),
        }),
      (e) => e as StorageError,
    );
    return valuesOrThrow(outcomes, 'uploads');
  });
}

/** Every regular file under `dir`, as `/`-separated paths relative to it (symlinks skipped). */
async function filesUnder(dir: string): Promise<{ rel: string; size: number }[]> {
  const out: { rel: string; size: number }[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push({ rel: r, size: (await lstat(join(dir, r))).size });
    }
  };
  await walk('');
  return out;
}
