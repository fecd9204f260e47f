import type { Readable } from 'node:stream';
import { engineFor } from '../engines/index.js';
import { fromNative, StorageError } from '../errors.js';
import { checkArgs } from '../options.js';
import type { ListedObject, StoreOptions, UploadOptions, UploadResult } from '../types.js';
import { guarded } from './call.js';

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
  return guarded(async () => {
    try {
      checkArgs('upload', source, url, options);
      const engine = engineFor(url);
      const r = await engine.upload(source, url, options);
      return { url, path: 'http' as const, ...r, engine: engine.name };
    } catch (e) {
      if (options?.signal?.aborted && !(e instanceof StorageError)) {
        throw new StorageError('Aborted', 'the transfer was aborted', { url });
      }
      throw e;
    }
  });
}

/** Whether an object exists: false only for `NotFound`; other failures (auth…) throw. */
export async function exists(
  url: string,
  options: { store?: StoreOptions } = {},
): Promise<boolean> {
  return guarded(async () => {
    checkArgs('exists', url, options);
    return engineFor(url).exists(url, options.store);
  });
}

/** Remove one object or many (batched per store). A missing object is not an error. */
export async function remove(
  urls: string | string[],
  options: { store?: StoreOptions } = {},
): Promise<void> {
  return guarded(async () => {
    checkArgs('remove', urls, options);
    const all = Array.isArray(urls) ? urls : [urls];
    await engineFor(all[0] ?? '').remove(all, options.store);
  });
}

/** Copy an object to another key of the same store, server-side. */
export async function copy(
  from: string,
  to: string,
  options: { store?: StoreOptions; ifNotExists?: boolean } = {},
): Promise<void> {
  return guarded(async () => {
    checkArgs('copy', from, to, options);
    await engineFor(from).copy(from, to, options.ifNotExists ?? false, options.store);
  });
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
    yield* engineFor(prefixUrl).list(prefixUrl, options.store);
  } catch (e) {
    throw fromNative(e);
  }
}
