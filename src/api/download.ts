import { engineFor } from '../engines/index.js';
import { StorageError, type ItemOutcome } from '../errors.js';
import { checkArgs, DEFAULTS } from '../options.js';
import { valuesOrThrow } from '../settle.js';
import type {
  DownloadItem,
  DownloadManyOptions,
  DownloadOptions,
  Engine,
  GetOptions,
  ObjectInfo,
  TransferResult,
} from '../types.js';
import { guarded, transferResult } from './call.js';

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
  return guarded(async () => {
    checkArgs('download', url, dest, options);
    const engine = engineFor(url);
    return transferResult(
      engine,
      url,
      dest,
      await engine.download(url, dest, options),
      options.store,
    );
  });
}

/**
 * Read an object, or a byte range of it, into a Buffer.
 *
 * @example
 * const head = await get('gs://bucket/data.parquet', { range: { suffix: 8 } });
 */
export async function get(url: string, options: GetOptions = {}): Promise<Buffer> {
  return guarded(async () => {
    checkArgs('get', url, options);
    if (options.into) return (await getDetailed(url, options)).data;
    return engineFor(url).get(url, options.range, options);
  });
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
  return guarded(async () => {
    checkArgs('getDetailed', url, options);
    if ((options as GetOptions).range) {
      throw new StorageError('InvalidArgument', 'getDetailed reads whole objects', { url });
    }
    const engine = engineFor(url);
    const { data, result } = await engine.getDetailed(url, options.into, options);
    return { data, result: transferResult(engine, url, '', result, options.store) };
  });
}

/** Size, ETag, last modification and version of an object. */
export async function head(
  url: string,
  options: Omit<GetOptions, 'range' | 'signal'> = {},
): Promise<ObjectInfo> {
  return guarded(async () => {
    checkArgs('head', url, options);
    return engineFor(url).head(url, options.store);
  });
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
 * below `root` is `UnsafeKey`): `downloadPrefix`'s way in. The items go to their engines in
 * groups, one group after another, so that at most `concurrency` objects are in flight; each
 * engine runs its group through its own scheduler (the native engine's shares its request
 * budget), and progress and outcomes keep their place in `items`.
 */
export async function downloadManyBeneath(
  items: DownloadItem[],
  options: DownloadManyOptions,
  root: string | undefined,
): Promise<TransferResult[]> {
  const concurrency = options.concurrency ?? DEFAULTS.manyConcurrency;
  const outcomes: ItemOutcome<TransferResult>[] = new Array(items.length);
  const groups = await guarded(async () => byEngine(items));
  for (const [engine, indices] of groups) {
    const cb = options.onProgress;
    const raw = await guarded(() =>
      engine.downloadMany(
        indices.map((i) => items[i]!),
        concurrency,
        {
          ...options,
          concurrency: options.partConcurrency,
          root,
          onProgress:
            cb && ((p) => cb(p.index === undefined ? p : { ...p, index: indices[p.index] })),
        },
      ),
    );
    raw.forEach((o, j) => {
      const { url, dest } = items[indices[j]!]!;
      outcomes[indices[j]!] =
        o.status === 'fulfilled'
          ? {
              status: 'fulfilled',
              value: transferResult(engine, url, dest, o.value, options.store),
            }
          : o;
    });
  }
  return valuesOrThrow(outcomes);
}

/** The items' indices, by the engine each one's URL goes to, in order of first appearance. */
function byEngine(items: DownloadItem[]): Map<Engine, number[]> {
  const groups = new Map<Engine, number[]>();
  items.forEach(({ url }, i) => {
    const engine = engineFor(url);
    const group = groups.get(engine);
    if (group) group.push(i);
    else groups.set(engine, [i]);
  });
  return groups;
}
