import { DownloadManyError, fromNative, StorageError, type ItemOutcome } from './errors.js';
import { selectEngine } from './engine.js';
import type {
  DownloadItem,
  DownloadManyOptions,
  DownloadOptions,
  GetOptions,
  ObjectInfo,
  TransferResult,
} from './types.js';

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
    const engine = selectEngine();
    const r = await engine.download(url, dest, options);
    return { url, dest, ...r, engine: engine.name };
  } catch (e) {
    throw asStorageError(e);
  }
}

/**
 * Read an object, or a byte range of it, into a Buffer.
 *
 * @example
 * const head = await get('gs://bucket/data.parquet', { range: { suffix: 8 } });
 */
export async function get(url: string, options: GetOptions = {}): Promise<Buffer> {
  try {
    return await selectEngine().get(url, options.range, options);
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
  const concurrency = options.concurrency ?? 16;
  if (!Array.isArray(items))
    throw new StorageError('InvalidArgument', 'items must be an array of { url, dest }');
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new StorageError(
      'InvalidArgument',
      `concurrency must be a positive integer, got ${concurrency}`,
    );
  }
  for (const [i, item] of items.entries()) {
    if (typeof item?.url !== 'string' || typeof item?.dest !== 'string') {
      throw new StorageError('InvalidArgument', `item ${i} must be { url: string, dest: string }`);
    }
  }
  if (items.length === 0) return [];
  let engine;
  try {
    engine = selectEngine();
  } catch (e) {
    throw asStorageError(e);
  }
  const raw = await engine.downloadMany(items, concurrency, {
    ...options,
    concurrency: options.partConcurrency,
  });
  const outcomes: ItemOutcome<TransferResult>[] = raw.map((o, i) =>
    o.status === 'fulfilled'
      ? {
          status: 'fulfilled',
          value: { url: items[i]!.url, dest: items[i]!.dest, ...o.value, engine: engine.name },
        }
      : o,
  );
  if (outcomes.some((o) => o.status === 'rejected')) throw new DownloadManyError(outcomes);
  return outcomes.map((o) => (o as { value: TransferResult }).value);
}
