import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromNative, StorageError, type ItemOutcome } from '../errors.js';
import { awsProfileSettings, credentialsId, installAwsDefaultChain } from './credentials.js';
import type {
  ByteRange,
  ChecksumAlgorithm,
  DataPath,
  DownloadItem,
  Engine,
  EngineTransfer,
  ObjectInfo,
  RdmaInfo,
  Progress,
  StoreOptions,
  TransferSettings,
} from '../types.js';
import type * as Binding from '../../index.js';

type NativeBinding = typeof Binding;
type Loaded =
  { binding: NativeBinding; reason?: undefined } | { binding?: undefined; reason: string };

let loaded: Loaded | undefined;

function packageRoot(): string {
  // dist/index.{js,cjs} sits one level below the package root, src/engines/native.ts two.
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url));
  return join(here, basename(here) === 'engines' ? '../..' : '..');
}

/** Load the napi-rs addon once. Never throws: a missing addon is a state, reported by reason. */
export function loadNative(): Loaded {
  if (loaded) return loaded;
  const require = createRequire(join(packageRoot(), 'package.json'));
  try {
    const binding = require('./index.cjs') as NativeBinding;
    // The RDMA shim is looked for here (OBJGET_RDMA_SHIM overrides); it is loaded only when
    // RDMA is first asked for, so a machine without it loads objget as usual.
    binding.rdmaSearchPath([join(packageRoot(), 'native', 'build', 'lib')]);
    installAwsDefaultChain(binding);
    loaded = { binding };
  } catch (e) {
    loaded = { reason: whyNotLoaded(require, e) };
  }
  return loaded;
}

const firstLine = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';

/**
 * The napi-rs platform suffix of this process, as the generated loader (index.cjs) spells it:
 * the addon is `objget.<suffix>.node` beside the package or in the package `objget-<suffix>`.
 */
function platformSuffix(): string {
  const { platform, arch } = process;
  if (platform === 'linux') {
    // What the loader checks too: a glibc runtime reports its version, musl does not.
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } };
    return `linux-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/**
 * Why the addon did not load, and what to do about it: which platform package is missing and
 * how to install it, or why the one installed did not load, or that this platform has none.
 */
function whyNotLoaded(require: NodeJS.Require, e: unknown): string {
  let pkg: { name?: string; version?: string; optionalDependencies?: Record<string, string> };
  let suffix: string;
  try {
    pkg = require('./package.json') as typeof pkg;
    suffix = platformSuffix();
  } catch {
    return `the native addon for ${process.platform}-${process.arch} did not load: ${firstLine(e)}`;
  }
  const name = `${pkg.name ?? 'objget'}-${suffix}`;
  const prebuilt = Object.keys(pkg.optionalDependencies ?? {});
  const local = `./${pkg.name ?? 'objget'}.${suffix}.node`;
  try {
    // A binary beside the package (a source build) is what the loader tries first.
    require.resolve(local);
    try {
      require(local);
    } catch (err) {
      return `the native addon ${local.slice(2)} did not load: ${firstLine(err)}`;
    }
  } catch {
    // none beside the package: the platform package is next
  }
  if (!prebuilt.includes(name)) {
    const list = prebuilt.map((p) => p.slice((pkg.name ?? 'objget').length + 1)).join(', ');
    return (
      `objget has no prebuilt native addon for ${suffix} (prebuilt: ${list || 'none'}); ` +
      `the JS engine serves http(s) and local files (${firstLine(e)})`
    );
  }
  try {
    require.resolve(`${name}/package.json`);
  } catch {
    return (
      `the native addon for ${suffix} is in the package ${name}, which is not installed ` +
      `(npm leaves optional dependencies out under --omit=optional, or when the lock file was ` +
      `written on another platform): install it with \`npm install --include=optional\` or ` +
      `\`npm install ${name}@${pkg.version ?? 'latest'}\``
    );
  }
  try {
    require(name);
  } catch (err) {
    return `the native addon in ${name} did not load: ${firstLine(err)}`;
  }
  return `the native addon for ${suffix} did not load: ${firstLine(e)}`;
}

/**
 * The addon's store options for a call on `urls`: the caller's, with its credential function's
 * id, and for S3 URLs the AWS profile's region and endpoint (used by the engine only where
 * nothing else gives one).
 */
async function storeConfig(
  binding: NativeBinding,
  urls: string | string[],
  store: StoreOptions | undefined,
): Promise<Binding.StoreConfig | undefined> {
  const s3 = (Array.isArray(urls) ? urls : [urls]).some((u) => /^s3a?:\/\//i.test(u));
  const profile = s3 ? await awsProfileSettings() : {};
  if (!store) return s3 ? profile : undefined;
  return {
    ...profile,
    credentials: store.credentials ? credentialsId(binding, store.credentials) : undefined,
    config: store.config,
    skipSignature: store.skipSignature,
    allowHttp: store.allowHttp,
    caCert: store.caCert === undefined ? undefined : store.caCert.toString(),
    insecureSkipTlsVerify: store.insecureSkipTlsVerify,
    connectTimeoutMs: store.connectTimeoutMs,
    readTimeoutMs: store.readTimeoutMs,
    maxRetries: store.maxRetries,
    retryTimeoutMs: store.retryTimeoutMs,
    initialBackoffMs: store.initialBackoffMs,
    rdma: store.rdma,
    rdmaPartSize: store.rdmaPartSize,
    rdmaBuffers: store.rdmaBuffers,
    rdmaBindAddress: store.rdmaBindAddress,
  };
}

/**
 * Run a native call with a cancel handle bridged from `signal`: napi-rs cannot stop a started
 * async call from an AbortSignal, so the signal fires the engine's cancellation token instead.
 */
async function withCancel<T>(
  binding: NativeBinding,
  url: string,
  signal: AbortSignal | undefined,
  call: (cancelId: number | undefined) => Promise<T>,
): Promise<T> {
  if (!signal) return call(undefined);
  if (signal.aborted) throw new StorageError('Aborted', 'the transfer was aborted', { url });
  const handle = new binding.CancelHandle();
  const onAbort = (): void => handle.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await call(handle.id);
  } finally {
    signal.removeEventListener('abort', onAbort);
    handle.release();
  }
}

function nativeRange(range: ByteRange | undefined): Binding.NativeRange | undefined {
  if (!range) return undefined;
  if ('suffix' in range) return { suffix: range.suffix };
  return { offset: range.offset, length: range.length };
}

type Done = EngineTransfer;

/** Objects per page of a native listing. */
const LIST_PAGE = 1000;

/** What the addon says of an object. */
function info(i: {
  size: number;
  etag?: string | null;
  lastModifiedMs?: number | null;
  version?: string | null;
}): ObjectInfo {
  return {
    size: i.size,
    etag: i.etag ?? undefined,
    lastModified: i.lastModifiedMs == null ? undefined : new Date(i.lastModifiedMs),
    version: i.version ?? undefined,
  };
}

function done(r: Binding.NativeTransferResult): Done {
  return {
    bytes: r.bytes,
    etag: r.etag ?? undefined,
    elapsedMs: r.elapsedMs,
    parts: r.parts,
    checksum: r.checksum
      ? { algorithm: r.checksum.algorithm as ChecksumAlgorithm, value: r.checksum.value }
      : undefined,
    resumedBytes: r.resumedBytes,
    path: r.path as DataPath,
  };
}

function transfer(t: TransferSettings): Binding.TransferConfig {
  return {
    partSize: t.partSize,
    concurrency: t.concurrency,
    durable: t.durable,
    checksum: t.checksum,
    resume: t.resume,
    root: t.root,
  };
}

/** Adapt the user's callback; a throwing callback must not take the process down. */
function progress(t: {
  onProgress?: (p: Progress) => void;
}): ((p: Binding.NativeProgress) => void) | undefined {
  const cb = t.onProgress;
  if (!cb) return undefined;
  return (p) => {
    try {
      cb({
        index: p.index ?? undefined,
        bytes: p.bytes,
        total: p.total ?? undefined,
        partsDone: p.partsDone,
        partsTotal: p.partsTotal,
      });
    } catch {
      // A progress callback's failure is the caller's; the transfer goes on.
    }
  };
}

/** The Rust engine behind the Engine interface; its failures reach the API layer as they are. */
export function nativeEngine(binding: NativeBinding): Engine {
  /** A transfer call: cancellable by `t.signal`, with the store's config, transfer and progress. */
  const transferCall = <T>(
    urls: string | string[],
    t: TransferSettings,
    call: (
      store: Binding.StoreConfig | undefined,
      transfer: Binding.TransferConfig,
      progress: ((p: Binding.NativeProgress) => void) | undefined,
      cancelId: number | undefined,
    ) => Promise<T>,
  ): Promise<T> =>
    withCancel(binding, Array.isArray(urls) ? (urls[0] ?? '') : urls, t.signal, async (id) =>
      call(await storeConfig(binding, urls, t.store), transfer(t), progress(t), id),
    );
  return {
    name: 'native',
    async head(url, store) {
      return info(await binding.head(url, await storeConfig(binding, url, store)));
    },
    get(url, range, t) {
      return transferCall(url, t, (...a) => binding.get(url, nativeRange(range), ...a));
    },
    async getDetailed(url, into, t) {
      const r = await transferCall(url, t, (...a) => binding.getDetailed(url, into, ...a));
      // With `into`, the filled view of it.
      const data = into ? r.data.subarray(0, r.result.bytes) : r.data;
      return { data, result: done(r.result) };
    },
    async download(url, dest, t) {
      return done(await transferCall(url, t, (...a) => binding.download(url, dest, ...a)));
    },
    async downloadMany(items: DownloadItem[], concurrency, t) {
      const urls = items.map((i) => i.url);
      const outcomes = await transferCall(urls, t, (...a) =>
        binding.downloadMany(items, concurrency, ...a),
      );
      return outcomes.map((o): ItemOutcome<Done> =>
        o.result
          ? { status: 'fulfilled', value: done(o.result) }
          : { status: 'rejected', reason: fromNative(o.error ?? 'unknown error') },
      );
    },
    async upload(source, url, o) {
      const config = {
        ifNotExists: o.ifNotExists,
        partSize: o.partSize,
        concurrency: o.concurrency,
        contentType: o.contentType,
        metadata: o.metadata,
      };
      const r = await withCancel(binding, url, o.signal, async (id) => {
        if (typeof source === 'string' || Buffer.isBuffer(source)) {
          return binding.upload(
            source,
            url,
            config,
            await storeConfig(binding, url, o.store),
            progress(o),
            id,
          );
        }
        // A stream: chunks go to the engine as they come, parts are cut there; the
        // engine's backpressure paces the reads.
        const sink = await binding.uploadStream(
          url,
          config,
          await storeConfig(binding, url, o.store),
          progress(o),
          id,
        );
        // The abort settles the call whatever the stream does (an idle stream never yields
        // again): each read and write races it; the stream is destroyed, the engine aborts
        // the multipart upload before the call rejects.
        const chunks = source[Symbol.asyncIterator]() as AsyncIterator<unknown>;
        let stop: (() => void) | undefined;
        const aborted = new Promise<never>((_, reject) => {
          stop = () => reject(new StorageError('Aborted', 'the transfer was aborted', { url }));
          o.signal?.addEventListener('abort', stop, { once: true });
        });
        try {
          for (;;) {
            const next = await Promise.race([chunks.next(), aborted]);
            if (next.done) break;
            const chunk = next.value as Buffer | string | Uint8Array;
            await Promise.race([
              sink.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string)),
              aborted,
            ]);
          }
        } catch (e) {
          // Stop the source: a Readable is destroyed (as `pipeline` does), another iterator
          // is told to finish.
          if (source instanceof Readable) source.destroy();
          else void chunks.return?.()?.catch(() => undefined);
          await sink.abort();
          throw e;
        } finally {
          if (stop) o.signal?.removeEventListener('abort', stop);
        }
        return sink.finish();
      });
      return {
        etag: r.etag ?? undefined,
        version: r.version ?? undefined,
        bytes: r.bytes,
        parts: r.parts,
        checksum: {
          algorithm: r.checksum.algorithm as ChecksumAlgorithm,
          value: r.checksum.value,
        },
        path: r.path as DataPath,
      };
    },
    async exists(url, store) {
      return binding.exists(url, await storeConfig(binding, url, store));
    },
    async remove(urls, store) {
      await binding.remove(urls, await storeConfig(binding, urls, store));
    },
    async copy(from, to, ifNotExists, store) {
      await binding.copy(from, to, ifNotExists, await storeConfig(binding, [from, to], store));
    },
    async *list(prefixUrl, store) {
      const cursor = await binding.list(prefixUrl, await storeConfig(binding, prefixUrl, store));
      for (;;) {
        const page = await cursor.next(LIST_PAGE);
        if (page.length === 0) return;
        for (const o of page) yield { ...info(o), key: o.key, relative: o.relative, url: o.url };
      }
    },
  };
}

/** Whether RDMA can be used in this process, and if not, exactly why. Never throws. */
export function rdmaInfo(): RdmaInfo {
  const n = loadNative();
  if (!n.binding) {
    return {
      available: false,
      reason: `RDMA needs the native addon: ${n.reason}`,
      registrations: 0,
      tokens: 0,
    };
  }
  const s = n.binding.rdmaStatus();
  return {
    available: s.available,
    reason: s.reason ?? undefined,
    backend: s.backend ?? undefined,
    shim: s.shim ?? undefined,
    header: s.header ?? undefined,
    clientSize: s.clientSize ?? undefined,
    log: s.log ?? undefined,
    registrations: s.registrations,
    tokens: s.tokens,
  };
}
