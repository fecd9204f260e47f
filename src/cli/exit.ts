// The CLI's exit codes, in one place: the table `objget --help` prints and the README repeats.
import type { ErrorCode } from '../index.js';

/** Every exit code the CLI uses. */
export const EXIT = {
  ok: 0,
  /** Some objects of a set failed (a summary says which and why), or a failure of no class below. */
  failed: 1,
  /** A usage error: unknown option, bad argument, a URL objget cannot read, `rm` without --yes. */
  usage: 2,
  notFound: 3,
  denied: 4,
  precondition: 5,
  checksum: 6,
  /** Ctrl-C (SIGINT): the transfer was aborted cleanly (no partial file, multipart aborted). */
  interrupted: 130,
} as const;

/** The error codes of each class with its own exit code. */
const BY_CODE: Partial<Record<ErrorCode, number>> = {
  InvalidUrl: EXIT.usage,
  UnsupportedScheme: EXIT.usage,
  InvalidArgument: EXIT.usage,
  NotFound: EXIT.notFound,
  PermissionDenied: EXIT.denied,
  Unauthenticated: EXIT.denied,
  Precondition: EXIT.precondition,
  AlreadyExists: EXIT.precondition,
  ChecksumMismatch: EXIT.checksum,
  Aborted: EXIT.interrupted,
};

/** The exit code of one failed object (or call). */
export function exitFor(code: string | undefined): number {
  return BY_CODE[code as ErrorCode] ?? EXIT.failed;
}

/** The table, as `--help` shows it. */
export const EXIT_HELP = `Exit codes:
  0    success
  1    some objects of a set failed (a summary says which and why), or another failure
  2    usage error (also InvalidUrl, UnsupportedScheme, InvalidArgument; rm without --yes)
  3    NotFound
  4    PermissionDenied, Unauthenticated
  5    Precondition, AlreadyExists
  6    ChecksumMismatch
  130  interrupted (Ctrl-C): the transfer was aborted, nothing partial was left`;
