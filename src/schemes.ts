import { StorageError } from './errors.js';
import type { ObjectInfo } from './types.js';

/** What a registered scheme's handler returns for a read: bytes, or a stream of them. */
export type SchemeBody = Uint8Array | AsyncIterable<Uint8Array>;

/** One object a handler lists: its full URL (which `get` accepts), key and size. */
export interface SchemeListing {
  url: string;
  key: string;
  size?: number;
}

/**
 * A downloader (and optionally lister and uploader) for a scheme objget does not speak itself —
 * flame's `grpc://` case. `download`, `get`, `head`, `exists`, `downloadMany`,
 * `downloadPrefix` and `upload` use it like a built-in scheme.
 */
export interface SchemeHandler {
  /** Open an object for reading. */
  get(url: string, options: { signal?: AbortSignal }): Promise<SchemeBody>;
  /** Size and ETag; without it, `head` and `exists` answer `NotSupported`. */
  head?(url: string): Promise<ObjectInfo>;
  /** Every object under a prefix URL; needed by `list` and `downloadPrefix`. */
  list?(prefixUrl: string): AsyncIterable<SchemeListing>;
  /** Store bytes; needed by `upload` and `uploadDir`. */
  put?(url: string, body: Buffer): Promise<{ etag?: string } | void>;
}

const BUILTIN = new Set([
  's3',
  's3a',
  'gs',
  'az',
  'azure',
  'abfs',
  'abfss',
  'adl',
  'http',
  'https',
  'file',
]);
const handlers = new Map<string, SchemeHandler>();

/**
 * Register a handler for `scheme` (e.g. `'grpc'`). Built-in schemes cannot be replaced;
 * registering a scheme again replaces its handler.
 *
 * @example
 * registerScheme('grpc', { get: async (url) => fetchFromCache(url) });
 * await download('grpc://cache:9090/pkg.tar', './pkg.tar');
 */
export function registerScheme(scheme: string, handler: SchemeHandler): void {
  const s = String(scheme).toLowerCase().replace(/:$/, '');
  if (!/^[a-z][a-z0-9+.-]*$/.test(s) || s.length < 2) {
    throw new StorageError('InvalidArgument', `${JSON.stringify(scheme)} is not a URL scheme`);
  }
  if (BUILTIN.has(s)) {
    throw new StorageError('InvalidArgument', `${s}:// is built in and cannot be replaced`);
  }
  if (typeof handler?.get !== 'function') {
    throw new StorageError('InvalidArgument', 'a scheme handler needs a get(url) function');
  }
  handlers.set(s, handler);
}

/** Remove a registered scheme; true if there was one. */
export function unregisterScheme(scheme: string): boolean {
  return handlers.delete(String(scheme).toLowerCase().replace(/:$/, ''));
}

/** The registered schemes. */
export function registeredSchemes(): string[] {
  return [...handlers.keys()].sort();
}

/** The handler for a URL, if its scheme is a registered one. */
export function handlerFor(url: string): SchemeHandler | undefined {
  if (handlers.size === 0 || typeof url !== 'string') return undefined;
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]+):/.exec(url);
  return m ? handlers.get(m[1]!.toLowerCase()) : undefined;
}

/** The handler's optional capability, or `NotSupported` naming what is missing. */
export function need<K extends keyof SchemeHandler>(
  h: SchemeHandler,
  what: K,
  url: string,
): NonNullable<SchemeHandler[K]> {
  const f = h[what];
  if (typeof f !== 'function') {
    throw new StorageError(
      'NotSupported',
      `${url.split(':')[0]}:// has no ${String(what)}() in its registered handler`,
      { url },
    );
  }
  return f.bind(h) as NonNullable<SchemeHandler[K]>;
}

/** A handler's body as an async iterable of chunks. */
export function chunks(body: SchemeBody): AsyncIterable<Uint8Array> {
  if (body instanceof Uint8Array) {
    return (async function* () {
      yield body;
    })();
  }
  return body;
}
