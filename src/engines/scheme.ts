// Registered schemes: the registry, and the engine that serves their URLs through their handlers.
// A download from a handler lands like every other download (./land.ts).
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fromNative, fromNodeError, StorageError } from '../errors.js';
import { settleAll } from '../settle.js';
import { CLOUD_SCHEMES } from '../urls.js';
import { saveStream } from './land.js';
import type { Engine, EngineTransfer, ObjectInfo, TransferSettings } from '../types.js';

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

/** Schemes objget speaks itself; a handler cannot replace them. */
const BUILTIN = new Set([...CLOUD_SCHEMES, 'adl', 'http', 'https', 'file']);
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

/** `NotSupported`: the registered handler of `url` has no `what`. */
function lacks(url: string, what: string): StorageError {
  return new StorageError(
    'NotSupported',
    `${url.split(':')[0]}:// has no ${what}() in its registered handler`,
    { url },
  );
}

/** The handler's optional capability, or `NotSupported` naming what is missing. */
function need<K extends keyof SchemeHandler>(url: string, what: K): NonNullable<SchemeHandler[K]> {
  const h = handlerFor(url);
  if (!h) throw new StorageError('UnsupportedScheme', `${url.split(':')[0]}:// is not registered`);
  const f = h[what];
  if (typeof f !== 'function') throw lacks(url, what);
  return f.bind(h) as NonNullable<SchemeHandler[K]>;
}

/** Open an object through its handler: its chunks, or its handler's failure as a `StorageError`. */
async function open(
  url: string,
  signal: AbortSignal | undefined,
): Promise<AsyncIterable<Uint8Array>> {
  const body = await need(url, 'get')(url, { signal }).catch((e: unknown) => {
    throw fromNodeError(e, url);
  });
  if (!(body instanceof Uint8Array)) return body;
  return (async function* () {
    yield body;
  })();
}

/** A download through a handler, landing like every other download. */
async function save(
  url: string,
  dest: string,
  t: TransferSettings,
  index?: number,
): Promise<EngineTransfer> {
  if (t.resume) {
    throw new StorageError('NotSupported', 'resume is not available for registered schemes', {
      url,
    });
  }
  if (t.checksum === 'required') {
    throw new StorageError('ChecksumUnavailable', 'registered schemes offer no checksum', {
      url,
    });
  }
  return saveStream(url, await open(url, t.signal), dest, t, index);
}

/** A URL path's key, percent-decoded where it can be. */
function decodeKey(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The engine of registered schemes: each call goes to the URL's handler. */
export const schemeEngine: Engine = {
  name: 'js',
  async head(url) {
    return need(url, 'head')(url);
  },
  async exists(url) {
    try {
      await schemeEngine.head(url, undefined);
      return true;
    } catch (e) {
      if (fromNative(e).code === 'NotFound') return false;
      throw e;
    }
  },
  async get(url, range, t) {
    if (range) {
      throw new StorageError('NotSupported', 'registered schemes are read whole', { url });
    }
    const body = await open(url, t.signal);
    const parts: Uint8Array[] = [];
    try {
      for await (const c of body) parts.push(c);
    } catch (e) {
      throw fromNodeError(e, url);
    }
    return Buffer.concat(parts);
  },
  getDetailed(url) {
    return Promise.reject(
      new StorageError('NotSupported', 'registered schemes are read with get()', { url }),
    );
  },
  download: (url, dest, t) => save(url, dest, t),
  downloadMany(items, concurrency, t) {
    return settleAll(
      items,
      concurrency,
      ({ url, dest }, i) => save(url, dest, t, i),
      (e) => fromNative(e),
    );
  },
  async upload(source, url, o) {
    const put = need(url, 'put');
    const data =
      typeof source === 'string'
        ? await readFile(source)
        : Buffer.isBuffer(source)
          ? source
          : Buffer.concat(await Readable.from(source).toArray({ signal: o.signal }));
    const r = await put(url, data);
    return { etag: r?.etag, bytes: data.length, parts: 1, path: 'http' };
  },
  remove(urls) {
    return Promise.reject(lacks(urls[0] ?? '', 'remove'));
  },
  copy(from) {
    return Promise.reject(lacks(from, 'copy'));
  },
  async *list(prefixUrl) {
    const start = prefixUrl.endsWith('/') ? prefixUrl : `${prefixUrl}/`;
    for await (const o of need(prefixUrl, 'list')(prefixUrl)) {
      // A handler's URL that does not start with the prefix has no place below it.
      const relative = o.url.startsWith(start) ? decodeKey(o.url.slice(start.length)) : `/${o.url}`;
      yield { key: o.key, relative, url: o.url, size: o.size ?? 0 };
    }
  },
};
