import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { selectEngine } from './engine.js';
import { fromNative, StorageError } from './errors.js';
import { checkRdma } from './rdma.js';
import { handlerFor, need } from './schemes.js';
import { checkArgs } from './validate.js';
import type { ListedObject, StoreOptions, UploadOptions, UploadResult } from './types.js';

function asStorageError(e: unknown): StorageError {
  return e instanceof StorageError ? e : fromNative(e);
}

/**
 * Upload a local file (path), a Buffer or a Readable to `url`. Up to one part (16 MiB) goes in
 * one PUT; larger objects as parallel multipart, aborted on any failure so nothing is left on
 * the server. A Readable is streamed: parts are cut as chunks arrive, so memory stays near
 * `concurrency × partSize` whatever its length. `ifNotExists` refuses to overwrite
 * (`AlreadyExists`), atomically.
 *
 * @example
 * await upload('./model.bin', 's3://bucket/model.bin', { ifNotExists: true });
 */
export async function upload(
  source: string | Buffer | Readable,
  url: string,
  options: UploadOptions = {},
): Promise<UploadResult> {
  try {
    checkArgs('upload', source, url, options);
    const handler = handlerFor(url);
    const engine = selectEngine();
    if (handler) {
      const data =
        typeof source === 'string'
          ? await readFile(source)
          : Buffer.isBuffer(source)
            ? source
            : Buffer.concat(await source.toArray({ signal: options.signal }));
      const put = await need(handler, 'put', url)(url, data);
      return { url, etag: put?.etag, bytes: data.length, parts: 1, engine: 'js', path: 'http' };
    }
    checkRdma(engine.name, url, options.store);
    const r = await engine.upload(source, url, options);
    return { url, path: 'http', ...r, engine: engine.name };
  } catch (e) {
    if (options?.signal?.aborted && !(e instanceof StorageError)) {
      throw new StorageError('Aborted', 'the transfer was aborted', { url });
    }
    throw asStorageError(e);
  }
}

/** Whether an object exists: false only for `NotFound`; other failures (auth…) throw. */
export async function exists(
  url: string,
  options: { store?: StoreOptions } = {},
): Promise<boolean> {
  try {
    checkArgs('exists', url, options);
    const handler = handlerFor(url);
    if (handler) {
      try {
        await need(handler, 'head', url)(url);
        return true;
      } catch (e) {
        if (asStorageError(e).code === 'NotFound') return false;
        throw e;
      }
    }
    return await selectEngine().exists(url, options.store);
  } catch (e) {
    throw asStorageError(e);
  }
}

/** Remove one object or many (batched per store). A missing object is not an error. */
export async function remove(
  urls: string | string[],
  options: { store?: StoreOptions } = {},
): Promise<void> {
  try {
    checkArgs('remove', urls, options);
    await selectEngine().remove(Array.isArray(urls) ? urls : [urls], options.store);
  } catch (e) {
    throw asStorageError(e);
  }
}

/** Copy an object to another key of the same store, server-side. */
export async function copy(
  from: string,
  to: string,
  options: { store?: StoreOptions; ifNotExists?: boolean } = {},
): Promise<void> {
  try {
    checkArgs('copy', from, to, options);
    await selectEngine().copy(from, to, options.ifNotExists ?? false, options.store);
  } catch (e) {
    throw asStorageError(e);
  }
}

/**
 * Every object under a prefix URL, recursively, fetched page by page as you iterate.
 *
 * @example
 * for await (const o of list('s3://bucket/logs/')) console.log(o.key, o.size);
 */
export async function* list(
  prefixUrl: string,
  options: { store?: StoreOptions } = {},
): AsyncGenerator<ListedObject> {
  try {
    checkArgs('list', prefixUrl, options);
    const handler = handlerFor(prefixUrl);
    if (handler) {
      const start = prefixUrl.endsWith('/') ? prefixUrl : `${prefixUrl}/`;
      for await (const o of need(handler, 'list', prefixUrl)(prefixUrl)) {
        // A handler's URL that does not start with the prefix has no place below it.
        const relative = o.url.startsWith(start)
          ? decodeKey(o.url.slice(start.length))
          : `/${o.url}`;
        yield { key: o.key, relative, url: o.url, size: o.size ?? 0 };
      }
      return;
    }
    yield* selectEngine().list(prefixUrl, options.store);
  } catch (e) {
    throw asStorageError(e);
  }
}

/** A URL path's key, percent-decoded where it can be. */
function decodeKey(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
