import { fromNative, fromNodeError, StorageError, type ItemOutcome } from './errors.js';
import { selectEngine } from './engine.js';
import { saveStream } from './js/engine.js';
import { checkRdma } from './rdma.js';
import { checkArgs } from './validate.js';
import { settleAll, valuesOrThrow } from './pool.js';
import { chunks, handlerFor, need, type SchemeHandler } from './schemes.js';
import type {
  DownloadItem,
  DownloadManyOptions,
  DownloadOptions,
  GetOptions,
  ObjectInfo,
  StoreOptions,
  TransferResult,
} from './types.js';

/** A result says when it came over TLS without certificate checks. */
function insecure(store: StoreOptions | undefined): { insecureSkipTlsVerify?: true } {
  return store?.insecureSkipTlsVerify === true ? { insecureSkipTlsVerify: true } : {};
}

function asStorageError(e: unknown): StorageError {
  return e instanceof StorageError ? e : fromNative(e);
}

/**
 * Download an object to a local file. The bytes land in a uniquely named temporary file beside
 * `dest`, are fsynced, and are renamed into place: on any failure `dest` is untouched and the
 * temporary is gone. Parent directories are created.
 *
 * @example
 * const r = await download('s3://bucket/model.bin', './model.bin');
 * console.log(r.bytes, r.engine);
 */
export async function download(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<TransferResult> {
  try {
    checkArgs('download', url, dest, options);
    const handler = handlerFor(url);
    if (handler) return await viaHandler(handler, url, dest, options);
    const engine = selectEngine();
    checkRdma(engine.name, url, options.store);
    const r = await engine.download(url, dest, options);
    return { url, dest, path: 'http', ...r, engine: engine.name, ...insecure(options.store) };
  } catch (e) {
    throw asStorageError(e);
  }
}

/** A download through a registered scheme's handler, landing like every other download. */
async function viaHandler(
  handler: SchemeHandler,
  url: string,
  dest: string,
  options: DownloadOptions,
  index?: number,
): Promise<TransferResult> {
  if (options.resume) {
    throw new StorageError('NotSupported', 'resume is not available for registered schemes', {
      url,
    });
  }
  if (options.checksum === 'required') {
    throw new StorageError('ChecksumUnavailable', 'registered schemes offer no checksum', {
      url,
    });
  }
  const body = await handler.get(url, { signal: options.signal }).catch((e: unknown) => {
    throw fromNodeError(e, url);
  });
  const r = await saveStream(url, chunks(body), dest, options, index);
  return { url, dest, path: 'http', ...r, engine: 'js' };
}

/**
 * Read an object, or a byte range of it, into a Buffer.
 *
 * @example
 * const head = await get('gs://bucket/data.parquet', { range: { suffix: 8 } });
 */
export async function get(url: string, options: GetOptions = {}): Promise<Buffer> {
  try {
    checkArgs('get', url, options);
    const handler = handlerFor(url);
    if (handler) {
      if (options.range) {
        throw new StorageError('NotSupported', 'registered schemes are read whole', { url });
      }
      const parts: Uint8Array[] = [];
      try {
        for await (const c of chunks(await handler.get(url, { signal: options.signal }))) {
          parts.push(c);
        }
      } catch (e) {
        throw fromNodeError(e, url);
      }
      return Buffer.concat(parts);
    }
    if (options.into) return (await getDetailed(url, options)).data;
    const engine = selectEngine();
    checkRdma(engine.name, url, options.store);
    return await engine.get(url, options.range, options);
  } catch (e) {
    throw asStorageError(e);
  }
}

/**
 * Read a whole object into memory, with its TransferResult (`path` says whether RDMA moved
 * it; `dest` is empty). With `into` (a buffer from `allocRdmaBuffer`), the object lands there
 * and `data` is the filled view of it.
 *
 * @example
 * const { data, result } = await getDetailed('s3://bucket/k', { store: { rdma: true } });
 */
export async function getDetailed(
  url: string,
  options: Omit<GetOptions, 'range'> = {},
): Promise<{ data: Buffer; result: TransferResult }> {
  try {
    checkArgs('getDetailed', url, options);
    if ((options as GetOptions).range) {
      throw new StorageError('InvalidArgument', 'getDetailed reads whole objects', { url });
    }
    if (handlerFor(url)) {
      throw new StorageError('NotSupported', 'registered schemes are read with get()', { url });
    }
    const engine = selectEngine();
    checkRdma(engine.name, url, options.store);
    const { data, result } = await engine.getDetailed(url, options.into, options);
    return {
      data,
      result: {
        url,
        dest: '',
        path: 'http',
        ...result,
        engine: engine.name,
        ...insecure(options.store),
      },
    };
  } catch (e) {
    throw asStorageError(e);
  }
}

/** Size, ETag, last modification and version of an object. */
export async function head(
  url: string,
  options: Omit<GetOptions, 'range' | 'signal'> = {},
): Promise<ObjectInfo> {
  try {
    checkArgs('head', url, options);
    const handler = handlerFor(url);
    if (handler) return await need(handler, 'head', url)(url);
    return await selectEngine().head(url, options.store);
  } catch (e) {
    throw asStorageError(e);
  }
}

/**
 * Download many objects, at most `concurrency` (default 16) in flight. Resolves with results in
 * input order. If any item fails, every other item still runs to its end, then the call rejects
 * with a `DownloadManyError` whose `outcomes` say what happened to each item; failed items leave
 * no file behind, finished ones stay.
 */
export async function downloadMany(
  items: DownloadItem[],
  options: DownloadManyOptions = {},
): Promise<TransferResult[]> {
  checkArgs('downloadMany', items, options);
  return downloadManyBeneath(items, options, undefined);
}

/**
 * `downloadMany`, with every `dest` resolved beneath `root` without following links (a link
 * below `root` is `UnsafeKey`): `downloadPrefix`'s way in.
 */
export async function downloadManyBeneath(
  items: DownloadItem[],
  options: DownloadManyOptions,
  root: string | undefined,
): Promise<TransferResult[]> {
  const concurrency = options.concurrency ?? 16;
  if (items.length === 0) return [];
  if (items.some((i) => handlerFor(i.url))) {
    return mixedMany(items, concurrency, { ...options, root });
  }
  let engine;
  try {
    engine = selectEngine();
  } catch (e) {
    throw asStorageError(e);
  }
  const raw = await engine.downloadMany(items, concurrency, {
    ...options,
    concurrency: options.partConcurrency,
    root,
  });
  const outcomes: ItemOutcome<TransferResult>[] = raw.map((o, i) =>
    o.status === 'fulfilled'
      ? {
          status: 'fulfilled',
          value: {
            url: items[i]!.url,
            dest: items[i]!.dest,
            path: 'http',
            ...o.value,
            engine: engine.name,
            ...insecure(options.store),
          },
        }
      : o,
  );
  return valuesOrThrow(outcomes);
}

/**
 * downloadMany over items some of which use registered schemes: each item is its own download
 * (native ones still share the engine's request budget), at most `concurrency` at once.
 */
async function mixedMany(
  items: DownloadItem[],
  concurrency: number,
  options: DownloadManyOptions & { root?: string },
): Promise<TransferResult[]> {
  const progress = options.onProgress;
  const outcomes = await settleAll(
    items,
    concurrency,
    ({ url, dest }, i) => {
      const o: DownloadOptions & { root?: string } = {
        ...options,
        concurrency: options.partConcurrency,
        onProgress: progress && ((p) => progress({ ...p, index: i })),
      };
      const handler = handlerFor(url);
      return handler ? viaHandler(handler, url, dest, o, i) : download(url, dest, o);
    },
    (e) => asStorageError(e),
  );
  return valuesOrThrow(outcomes);
}
