// What every command shares: the library's options as flags, URLs as the library reads them,
// the output mode, and how a failure becomes a message and an exit code.
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { Store, StorageError, type StoreOptions } from '../index.js';
import { EXIT, exitFor } from './exit.js';

/** A usage error: printed with the command's name, exit code 2. */
export class UsageError extends Error {}

/** The flags the store options come from (commander's camelCase names). */
export interface StoreFlags {
  endpoint?: string;
  region?: string;
  profile?: string;
  signRequest?: boolean;
  caCert?: string;
  rdma?: boolean;
  rdmaRequire?: boolean;
}

/** The flags of output. */
export interface OutputFlags {
  json?: boolean;
  quiet?: boolean;
}

export const KEYS_HELP = `Keys are written as they are stored, as in the AWS CLI and s5cmd: s3://b/a%20b names the
key "a%20b", and "?" and "#" are part of the key (objget encodes them for the library).
http(s):// URLs are sent as they are written. ls prints keys as stored, to paste back.`;

/** Store flags on a command. */
export function storeFlags(cmd: Command): Command {
  return cmd
    .option('--endpoint <url>', 'S3-compatible endpoint (aws_endpoint), e.g. http://localhost:9000')
    .option('--region <region>', 'S3 region (aws_region)')
    .option('--profile <name>', 'AWS profile (as AWS_PROFILE) for credentials, region, endpoint')
    .option('--no-sign-request', 'anonymous requests: public buckets (skipSignature)')
    .option('--ca-cert <file>', 'PEM root certificate(s) trusted for this store (caCert)');
}

/**
 * `--rdma[=require]`. An option with an optional value would take the next path as its value
 * (`--rdma s3://b/k dest`), so `--rdma=require` is read as the hidden `--rdma-require`.
 */
export function rdmaFlags(cmd: Command): Command {
  return cmd
    .option('--rdma', 'S3 over RDMA when available; --rdma=require fails without it')
    .addOption(new Option('--rdma-require').hideHelp());
}

/** `--rdma=require` as commander reads it (`--rdma-require`). */
export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => (a === '--rdma=require' ? '--rdma-require' : a));
}

/** Output flags on a command. */
export function outputFlags(cmd: Command): Command {
  return cmd
    .option('--json', 'one JSON object per line (NDJSON) on stdout, for scripts')
    .option('-q, --quiet', 'no progress bars: one line per finished object and a summary');
}

/** A positive integer flag. */
export function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('must be a positive integer');
  }
  return n;
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size flag: bytes, or with a K, M or G suffix (binary: 8M is 8 MiB). */
export function size(v: string): number {
  const m = /^(\d+)\s*([kmg]?)(?:i?b)?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('must be a size such as 8388608, 8M or 8MiB');
  }
  return n;
}

const URL_RE = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/]*)(?:\/(.*))?$/s;

/** Whether an argument is a URL of a store (not a local path, not `file://`). */
export function isRemote(arg: string): boolean {
  const m = URL_RE.exec(arg);
  return !!m && m[1]!.toLowerCase() !== 'file';
}

/** Whether an argument names a URL whose path is a key as stored (not http(s) or file). */
function hasKeys(scheme: string): boolean {
  return !['http', 'https', 'file'].includes(scheme.toLowerCase());
}

/**
 * The library's URL for an argument: a store URL's key, written as stored, is percent-encoded
 * (by `Store.url`); http(s) URLs and local paths are passed as written.
 */
export function libraryUrl(arg: string): string {
  const m = URL_RE.exec(arg);
  if (!m || !hasKeys(m[1]!)) return arg;
  return new Store(`${m[1]}://${m[2]}`).url(m[3] ?? '');
}

/**
 * The library's URL of a prefix to list. The library lists below a prefix, not a whole bucket
 * (its URLs must name a key), so a bucket alone is a usage error that says so.
 */
export function prefixUrl(arg: string): string {
  const m = URL_RE.exec(arg);
  if (m && hasKeys(m[1]!) && !(m[3] ?? '').replace(/\/+$/, '')) {
    throw new UsageError(
      `${arg}: objget lists a prefix below a bucket (s3://bucket/prefix/), not a whole bucket`,
    );
  }
  return libraryUrl(arg);
}

/** The URL of a key under a bucket, as the user writes it (keys as stored). */
export function userUrl(libUrl: string): string {
  const m = URL_RE.exec(libUrl);
  if (!m || !hasKeys(m[1]!)) return libUrl;
  const key = (m[3] ?? '').split('/').map(decodeURIComponent).join('/');
  return `${m[1]}://${m[2]}/${key}`;
}

/** The store part (scheme and authority) of a URL, to tell whether two URLs share a store. */
export function storeOf(arg: string): string | undefined {
  const m = URL_RE.exec(arg);
  return m ? `${m[1]!.toLowerCase()}://${m[2]}` : undefined;
}

/** The key of a store URL as the user wrote it (empty for a bucket). */
export function keyOf(arg: string): string {
  return URL_RE.exec(arg)?.[3] ?? '';
}

/** The library's `StoreOptions` from the flags; `--profile` sets AWS_PROFILE as the library reads. */
export function storeOptions(f: StoreFlags): StoreOptions {
  const config: Record<string, string> = {};
  if (f.endpoint !== undefined) config.aws_endpoint = f.endpoint;
  if (f.region !== undefined) config.aws_region = f.region;
  if (f.profile !== undefined) process.env.AWS_PROFILE = f.profile;
  const o: StoreOptions = {};
  if (Object.keys(config).length) o.config = config;
  if (f.signRequest === false) o.skipSignature = true;
  if (f.caCert !== undefined) {
    try {
      o.caCert = readFileSync(f.caCert);
    } catch (e) {
      throw new UsageError(`--ca-cert: cannot read ${f.caCert}: ${(e as Error).message}`);
    }
  }
  if (f.rdmaRequire) o.rdma = 'require';
  else if (f.rdma) o.rdma = true;
  return o;
}

/** Human-readable bytes (binary units). */
export function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** Where a command writes its records: stdout, or stderr when stdout carries object bytes. */
export interface Out {
  json: boolean;
  write(line: string): void;
  event(e: Record<string, unknown>): void;
}

export function out(flags: OutputFlags, toStderr = false): Out {
  const stream = toStderr ? process.stderr : process.stdout;
  return {
    json: !!flags.json,
    write: (line) => stream.write(`${line}\n`),
    event: (e) => stream.write(`${JSON.stringify(e)}\n`),
  };
}

/** The code and message of any failure, never with a secret (the library's messages are scrubbed). */
export function describe(e: unknown): { code: string; message: string } {
  if (e instanceof StorageError) return { code: e.code, message: e.message };
  if (e instanceof UsageError) return { code: 'Usage', message: e.message };
  return { code: 'Generic', message: e instanceof Error ? e.message : String(e) };
}

/** The exit code of a failure of one call. */
export function exitOf(e: unknown, signal: AbortSignal): number {
  if (signal.aborted) return EXIT.interrupted;
  if (e instanceof UsageError) return EXIT.usage;
  return exitFor(e instanceof StorageError ? e.code : undefined);
}

/** What every command's action receives besides its own arguments. */
export interface Context {
  signal: AbortSignal;
  /** The command's exit code, set by its action. */
  exit: number;
  /** Whether the running command aborts through `signal` (else Ctrl-C exits at once). */
  abortable: boolean;
}
