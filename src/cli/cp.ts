// `objget cp`: object → file (download), file → object (upload), prefix → directory
// (downloadPrefix), directory → prefix (uploadDir), object → object in one store (copy), and `-`
// for stdin (upload of a stream) or stdout (get).
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import {
  copy,
  download,
  downloadPrefix,
  get,
  head,
  StorageError,
  upload,
  uploadDir,
  type ItemOutcome,
  type TransferResult,
  type UploadResult,
} from '../index.js';
import {
  exitOf,
  isRemote,
  keyOf,
  libraryUrl,
  out,
  outputFlags,
  positiveInt,
  prefixUrl,
  rdmaFlags,
  size,
  storeFlags,
  storeOf,
  storeOptions,
  UsageError,
  userUrl,
  type Context,
  type OutputFlags,
  type StoreFlags,
} from './common.js';
import { EXIT } from './exit.js';
import { Display, modeOf } from './progress.js';

interface CpFlags extends StoreFlags, OutputFlags {
  recursive?: boolean;
  concurrency?: number;
  partConcurrency?: number;
  partSize?: number;
  ifNotExists?: boolean;
  resume?: boolean;
  verify: boolean;
  sync: boolean;
  contentType?: string;
  metadata?: string[];
}

const collect = (v: string, all: string[] = []): string[] => [...all, v];

export function cpCommand(ctx: Context): Command {
  const cmd = new Command('cp')
    .summary('copy: object ↔ file, prefix ↔ directory, object → object, - for stdin/stdout')
    .description(
      'Copy objects and files. The last path is the destination; a destination ending in / (or ' +
        'an existing directory) receives each source under its own name.',
    )
    .argument('<paths...>', 'source(s), then the destination')
    .option(
      '-r, --recursive',
      'a prefix into a directory (downloadPrefix), or a directory to a prefix (uploadDir)',
    )
    .option(
      '--concurrency <n>',
      'parts of one object in flight; with --recursive, objects in flight',
      positiveInt,
    )
    .option(
      '--part-concurrency <n>',
      'with --recursive: parts of each object in flight',
      positiveInt,
    )
    .option(
      '--part-size <size>',
      'bytes per part, e.g. 8M (downloads: ranged GETs; uploads: multipart)',
      size,
    )
    .option(
      '--if-not-exists',
      'uploads and copies: fail with AlreadyExists instead of overwriting; --recursive downloads: skip existing files',
    )
    .option('--resume', 'downloads: keep an interrupted download and continue it next time')
    .option('--no-verify', 'downloads: verify no checksum (checksum off)')
    .option('--no-sync', 'downloads: no fdatasync before the rename (durable false)')
    .option('--content-type <type>', 'uploads: the Content-Type')
    .option('--metadata <key=value>', 'uploads: user metadata (repeatable)', collect);
  rdmaFlags(cmd);
  storeFlags(cmd);
  outputFlags(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ objget cp s3://bucket/model.bin ./model.bin
  $ objget cp ./model.bin s3://bucket/models/            # key models/model.bin
  $ objget cp --recursive s3://bucket/datasets/v3/ ./data
  $ objget cp --recursive ./data s3://bucket/datasets/v4/
  $ objget cp s3://bucket/a.bin s3://bucket/b.bin        # server-side copy
  $ tar c dir | objget cp - s3://bucket/dir.tar
  $ objget cp s3://bucket/log.txt - | head`,
  );
  return cmd.action(async (paths: string[], flags: CpFlags) => {
    ctx.abortable = true;
    ctx.exit = await cp(paths, flags, ctx);
  });
}

/** A directory that exists, or a path written as one. */
function isDirectory(path: string): boolean {
  if (path.endsWith('/')) return true;
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The name an object's file takes: the last segment of its key (or of an http(s) path). */
function objectName(src: string): string {
  const name = /^https?:\/\//i.test(src)
    ? basename(decodeURIComponent(new URL(src).pathname))
    : basename(keyOf(src));
  if (!name) throw new UsageError(`${src} names no object; use --recursive for a prefix`);
  return name;
}

/** A flag given where the library has no counterpart: a usage error, never silently ignored. */
function refuse(flags: CpFlags, names: (keyof CpFlags)[], what: string): void {
  for (const n of names) {
    const off = n === 'verify' || n === 'sync';
    if (off ? flags[n] === false : flags[n] !== undefined && flags[n] !== false) {
      const flag = off ? `--no-${n}` : `--${n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new UsageError(`${flag} does not apply to ${what}`);
    }
  }
}

const DOWNLOAD_ONLY: (keyof CpFlags)[] = ['resume', 'verify', 'sync'];
const UPLOAD_ONLY: (keyof CpFlags)[] = ['contentType', 'metadata'];

async function cp(paths: string[], flags: CpFlags, ctx: Context): Promise<number> {
  if (paths.length < 2) throw new UsageError('cp needs a source and a destination');
  const dst = paths.at(-1)!;
  const srcs = paths.slice(0, -1);
  if (srcs.length > 1 && dst !== '-' && !(isRemote(dst) ? dst.endsWith('/') : isDirectory(dst))) {
    throw new UsageError('several sources need a directory, or a prefix ending in /');
  }
  if (dst === '-' && srcs.length > 1) throw new UsageError('only one object goes to stdout');
  const store = storeOptions(flags);
  const metadata = parseMetadata(flags.metadata);
  const display = new Display(modeOf(flags), out(flags, dst === '-'));
  const base = { store, signal: ctx.signal };
  const reads = {
    ...base,
    partSize: flags.partSize,
    checksum: flags.verify ? undefined : ('off' as const),
  };
  const writes = {
    ...base,
    partSize: flags.partSize,
    contentType: flags.contentType,
    metadata,
  };
  let exit: number = EXIT.ok;
  const failed = (src: string, e: unknown, code: number): void => {
    display.fail(src, e);
    if (exit === EXIT.ok) exit = srcs.length > 1 ? EXIT.failed : code;
  };

  /**
   * A set (downloadPrefix, uploadDir): each object done or failed, in order; when any failed the
   * call rejects with every outcome, and the exit code is 1.
   */
  const runSet = async <T>(call: Promise<T[]>, ok: (v: T, i: number) => void, names: string[]) => {
    try {
      (await call).forEach(ok);
    } catch (e) {
      if (!hasOutcomes<T>(e)) throw e;
      e.outcomes.forEach((o, i) => {
        if (o.status === 'fulfilled') ok(o.value, i);
        else failed(o.reason.url ?? names[i] ?? '?', o.reason, EXIT.failed);
      });
      exit = ctx.signal.aborted ? EXIT.interrupted : EXIT.failed;
    }
  };
  const downloaded = (t: TransferResult): void =>
    display.done({ src: userUrl(t.url), dst: t.dest, bytes: t.bytes, engine: t.engine });

  for (const src of srcs) {
    if (ctx.signal.aborted) break;
    const progress = display.call();
    try {
      if (src === '-') {
        refuse(flags, [...DOWNLOAD_ONLY, 'recursive'], 'an upload from stdin');
        if (!isRemote(dst) || dst.endsWith('/')) {
          throw new UsageError('stdin goes to an object URL (not a prefix)');
        }
        progress.name('-');
        const r = await upload(process.stdin, libraryUrl(dst), {
          ...writes,
          concurrency: flags.concurrency,
          ifNotExists: flags.ifNotExists,
          onProgress: progress.onProgress,
        });
        display.done({ src, dst, bytes: r.bytes, etag: r.etag, engine: r.engine });
      } else if (dst === '-') {
        refuse(flags, ['recursive', 'resume', 'sync', 'ifNotExists', ...UPLOAD_ONLY], 'stdout');
        if (!isRemote(src)) throw new UsageError('stdout takes an object URL');
        progress.name(src);
        const data = await get(libraryUrl(src), {
          ...reads,
          concurrency: flags.concurrency,
          onProgress: progress.onProgress,
        });
        await new Promise<void>((res, rej) =>
          process.stdout.write(data, (e) => (e ? rej(e) : res())),
        );
        display.done({ src, dst, bytes: data.length });
      } else if (isRemote(src) && isRemote(dst)) {
        refuse(flags, [...DOWNLOAD_ONLY, ...UPLOAD_ONLY, 'recursive'], 'an object → object copy');
        if (storeOf(src) !== storeOf(dst) || /^https?:/i.test(src)) {
          throw new UsageError(
            'object → object copies are server-side, within one store; copy through a file between stores',
          );
        }
        const to = dst.endsWith('/') ? `${dst}${objectName(src)}` : dst;
        await copy(libraryUrl(src), libraryUrl(to), { store, ifNotExists: flags.ifNotExists });
        const info = await head(libraryUrl(to), { store });
        display.done({ src, dst: to, bytes: info.size, etag: info.etag });
      } else if (isRemote(src)) {
        refuse(flags, UPLOAD_ONLY, 'a download');
        if (flags.recursive) {
          const names: string[] = [];
          const options = {
            ...reads,
            durable: flags.sync ? undefined : false,
            resume: flags.resume,
            concurrency: flags.concurrency,
            partConcurrency: flags.partConcurrency,
            overwrite: flags.ifNotExists ? false : undefined,
            onProgress: progress.onProgress,
            filter: (o: { url: string }) => {
              progress.name(userUrl(o.url));
              names.push(userUrl(o.url));
              return true;
            },
          };
          const listed = downloadPrefix(prefixUrl(src), dst, options).then((r) => {
            for (const s of r.skippedDetails) {
              if (s.error) failed(userUrl(s.url), s.error, EXIT.failed);
              else display.skipped(userUrl(s.url), 'its file exists');
            }
            return r.results;
          });
          await runSet(listed, downloaded, names);
        } else {
          refuse(flags, ['partConcurrency'], 'one object (without --recursive)');
          if (flags.ifNotExists) {
            throw new UsageError('--if-not-exists applies to a download only with --recursive');
          }
          const target = isDirectory(dst) ? join(dst, objectName(src)) : dst;
          progress.name(src);
          const r = await download(libraryUrl(src), target, {
            ...reads,
            durable: flags.sync ? undefined : false,
            resume: flags.resume,
            concurrency: flags.concurrency,
            onProgress: progress.onProgress,
          });
          display.done({ src, dst: r.dest, bytes: r.bytes, engine: r.engine, path: r.path });
        }
      } else if (isRemote(dst)) {
        refuse(flags, DOWNLOAD_ONLY, 'an upload');
        const upload1 = { ...writes, ifNotExists: flags.ifNotExists };
        if (flags.recursive) {
          const names: string[] = [];
          const sent = uploadDir(src, libraryUrl(dst), {
            ...upload1,
            fileConcurrency: flags.concurrency,
            concurrency: flags.partConcurrency,
            onProgress: progress.onProgress,
            filter: (rel) => {
              progress.name(join(src, rel));
              names.push(join(src, rel));
              return true;
            },
          });
          const uploaded = (r: UploadResult, i: number): void =>
            display.done({ src: names[i]!, dst: userUrl(r.url), bytes: r.bytes, engine: r.engine });
          await runSet(sent, uploaded, names);
        } else {
          refuse(flags, ['partConcurrency'], 'one file (without --recursive)');
          if (isDirectory(src)) throw new UsageError(`${src} is a directory: use --recursive`);
          const to = dst.endsWith('/') ? `${dst}${basename(src)}` : dst;
          progress.name(src);
          const r = await upload(src, libraryUrl(to), {
            ...upload1,
            concurrency: flags.concurrency,
            onProgress: progress.onProgress,
          });
          display.done({ src, dst: to, bytes: r.bytes, etag: r.etag, engine: r.engine });
        }
      } else {
        throw new UsageError(
          'one side of cp must be an object URL (s3://, gs://, az://, http(s)://)',
        );
      }
    } catch (e) {
      if (e instanceof UsageError) {
        display.stop();
        throw e;
      }
      failed(src, e, exitOf(e, ctx.signal));
    }
  }
  if (ctx.signal.aborted) exit = EXIT.interrupted;
  display.finish(exit);
  return exit;
}

/** The outcomes of a set that failed in part (downloadPrefix's and uploadDir's rejection). */
function hasOutcomes<T>(e: unknown): e is StorageError & { outcomes: ItemOutcome<T>[] } {
  return e instanceof StorageError && Array.isArray((e as { outcomes?: unknown }).outcomes);
}

/** `--metadata k=v` flags as the library's record. */
function parseMetadata(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs) return undefined;
  const m: Record<string, string> = {};
  for (const p of pairs) {
    const at = p.indexOf('=');
    if (at <= 0) throw new UsageError(`--metadata takes key=value, got ${JSON.stringify(p)}`);
    m[p.slice(0, at)] = p.slice(at + 1);
  }
  return m;
}
