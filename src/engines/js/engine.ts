import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { fromNodeError, StorageError } from '../../errors.js';
import { displayUrl } from '../../redact.js';
import { settleAll } from '../../settle.js';
import { locate } from '../../urls.js';
import { advertised, unavailable, Verifier } from './checksum.js';
import {
  discard,
  one,
  rangeHeader,
  resumable,
  send,
  startFromContentRange,
  totalFromContentRange,
  type Response,
  type Via,
} from './http.js';
import type { Provider } from './cloud.js';
import { PROVIDERS, providerOf } from './providers.js';
import { downloadWhole, getWhole } from './read.js';
import { abortedError, Reporter, withTemp, writeBody } from '../land.js';
import type {
  ByteRange,
  Engine,
  ObjectInfo,
  EngineTransfer,
  StoreOptions,
  TransferSettings,
  VerifiedChecksum,
} from '../../types.js';

type Done = EngineTransfer;

/** The calls the JS engine makes on every store it reads. */
const READS = ['head', 'get', 'download', 'downloadMany', 'exists'];

/**
 * What the JS engine does per scheme; every other call on that scheme answers `NotSupported`
 * (an http(s) server is read-only on either engine; local files are read only here).
 */
export const JS_SCHEME_CAPABILITIES: Record<string, string[]> = {
  http: READS,
  https: READS,
  file: READS,
  ...Object.fromEntries(
    PROVIDERS.flatMap((p) => p.schemes.map((s) => [s, [...READS, ...p.calls]])),
  ),
};

/** Schemes the pure-JS engine serves. */
export const JS_SCHEMES = Object.keys(JS_SCHEME_CAPABILITIES);
/** Every call the JS engine makes on some scheme (engineInfo().js.capabilities). */
export const JS_CAPABILITIES = [...new Set(Object.values(JS_SCHEME_CAPABILITIES).flat())];

/**
 * Why calls run on the JS engine (the addon's load failure, or OBJGET_ENGINE=js), so that a call
 * only the native engine serves says what to install instead of a bare `NotSupported`.
 */
export type WhyJs = () => string | undefined;

function because(why: WhyJs): string {
  const reason = why();
  return reason ? `: ${reason}` : ' (see engineInfo())';
}

function nativeOnly(what: string, url: string, why: WhyJs): StorageError {
  return new StorageError(
    'NotSupported',
    `${displayUrl(url)}: ${what} of this kind of URL needs the native engine (the JS engine's calls per scheme are in engineInfo().js)${because(why)}`,
    { url },
  );
}

/**
 * S3 over RDMA is the native engine's: on the JS engine, `rdma` on a URL that is not S3 is
 * refused, and `'require'` is `RdmaUnavailable` (`true` falls back to HTTP, as it may).
 */
function refuseRdma(url: string, store: StoreOptions | undefined): void {
  const r = store?.rdma;
  if (r !== true && r !== 'require') return;
  if (!/^s3:\/\//i.test(url)) {
    throw new StorageError(
      'InvalidArgument',
      'rdma applies to S3 URLs only (S3 over RDMA is an S3 protocol)',
      { url },
    );
  }
  if (r === 'require') {
    throw new StorageError(
      'RdmaUnavailable',
      'the JS engine has no RDMA data path; the native addon is not in use',
      { url },
    );
  }
}

/** The provider of a cloud scheme, or why the JS engine cannot serve it. */
function cloudOf(scheme: string, url: string, why: WhyJs): Provider {
  const p = providerOf(scheme);
  if (p) return p;
  throw new StorageError(
    'NotSupported',
    `${displayUrl(url)}: the JS engine does not speak ${scheme}:// (it speaks ${JS_SCHEMES.join(', ')}); ${scheme}:// needs the native engine${because(why)}`,
    { url },
  );
}

function checkRange(range: ByteRange | undefined): void {
  if (!range) return;
  const values = 'suffix' in range ? [range.suffix] : [range.offset, range.length ?? 0];
  for (const v of values) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new StorageError(
        'InvalidArgument',
        `range values must be non-negative integers, got ${v}`,
      );
    }
  }
}

async function httpHead(url: URL, store: StoreOptions | undefined): Promise<ObjectInfo> {
  const href = url.href;
  let res: Response;
  let size: number | undefined;
  if (url.search) {
    // Presigned URLs are signed for GET: ask for one byte and read the size from Content-Range.
    res = await send(href, 'GET', { range: 'bytes=0-0' }, store, undefined);
    discard(res.body);
    size =
      res.statusCode === 206 || res.statusCode === 416
        ? totalFromContentRange(res.headers['content-range'])
        : Number(one(res.headers['content-length']));
  } else {
    res = await send(href, 'HEAD', {}, store, undefined);
    await res.body.dump();
    size = Number(one(res.headers['content-length']));
  }
  if (size === undefined || !Number.isFinite(size)) {
    throw new StorageError(
      'Generic',
      `${displayUrl(href)}: the server did not say how large the object is`,
      { url: href },
    );
  }
  const lm = one(res.headers['last-modified']);
  return {
    size,
    etag: one(res.headers.etag),
    lastModified: lm ? new Date(lm) : undefined,
    version: one(res.headers['x-amz-version-id']),
  };
}

async function httpOpen(
  url: URL,
  range: ByteRange | undefined,
  store: StoreOptions | undefined,
  signal: AbortSignal | undefined,
  how: Via = {},
): Promise<{
  body: AsyncIterable<Buffer>;
  raw: Readable;
  length: number;
  etag?: string;
  offered: VerifiedChecksum[];
}> {
  const href = url.href;
  const shown = how.shown ?? href;
  const res = await send(
    href,
    'GET',
    range ? { range: rangeHeader(range) } : {},
    store,
    signal,
    how,
  );
  if (res.statusCode === 416) {
    discard(res.body);
    throw new StorageError(
      'InvalidArgument',
      `${displayUrl(shown)}: the requested range is outside the object`,
      { url: shown },
    );
  }
  if (range && res.statusCode !== 206) {
    discard(res.body);
    throw new StorageError(
      'NotSupported',
      `${displayUrl(shown)}: the server ignored the Range header`,
      { url: shown },
    );
  }
  const length = Number(one(res.headers['content-length']));
  if (!Number.isFinite(length)) {
    discard(res.body);
    throw new StorageError('Generic', `${displayUrl(shown)}: the server sent no Content-Length`, {
      url: shown,
    });
  }
  const etag = one(res.headers.etag);
  const start = res.statusCode === 206 ? startFromContentRange(res.headers['content-range']) : 0;
  if (start === undefined) {
    discard(res.body);
    throw new StorageError('Generic', `${displayUrl(shown)}: a 206 reply without Content-Range`, {
      url: shown,
    });
  }
  return {
    body: resumable(res.body, href, etag, start, start + length, store, signal, how),
    raw: res.body,
    length,
    etag,
    offered: advertised(res.headers, res.statusCode === 206),
  };
}

async function fileEtag(path: string): Promise<{ size: number; etag: string; mtime: Date }> {
  const s = await stat(path, { bigint: true });
  if (!s.isFile()) throw Object.assign(new Error(`${path}: not a file`), { code: 'ENOENT' });
  const micros = s.mtimeNs / 1000n;
  return {
    size: Number(s.size),
    etag: `${s.ino.toString(16)}-${micros.toString(16)}-${s.size.toString(16)}`,
    mtime: new Date(Number(s.mtimeMs)),
  };
}

function fileRange(size: number, range: ByteRange | undefined): [number, number] {
  if (!range) return [0, size];
  if ('suffix' in range) return [Math.max(0, size - range.suffix), size];
  const end = range.length === undefined ? size : Math.min(size, range.offset + range.length);
  return [range.offset, end];
}

async function readAll(
  body: AsyncIterable<Buffer>,
  expected: number,
  report: Reporter,
  verifier: Verifier | undefined,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) {
    chunks.push(c as Buffer);
    verifier?.update(c as Buffer);
    report.add((c as Buffer).length);
  }
  return Buffer.concat(chunks, expected);
}

/** The provider that serves `call` for a URL's scheme (none for a URL that does not parse). */
function serving<C extends Provider['calls'][number]>(
  url: string,
  call: C,
): (Provider & Required<Pick<Provider, C>>) | undefined {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  const p = scheme === undefined ? undefined : providerOf(scheme);
  return p?.calls.includes(call) ? (p as Provider & Required<Pick<Provider, C>>) : undefined;
}

/** A whole object's bytes, or the filled view of `into` holding them. */
function fit(data: Buffer, into: Buffer | undefined, url: string): Buffer {
  if (!into) return data;
  if (data.length > into.length) {
    throw new StorageError(
      'InvalidArgument',
      `the object has ${data.length} bytes and \`into\` holds ${into.length}`,
      { url },
    );
  }
  return into.subarray(0, data.copy(into));
}

/** Pure-JS engine: undici for http(s) and S3, fs for files. `why` says why it runs (WhyJs). */
export function jsEngine(why: WhyJs): Engine {
  const engine: Engine = {
    name: 'js',
    async exists(url, store) {
      try {
        await engine.head(url, store);
        return true;
      } catch (e) {
        if ((e as StorageError).code === 'NotFound') return false;
        throw e;
      }
    },
    async upload(source, url, o) {
      refuseRdma(url, o.store);
      const p = serving(url, 'upload');
      if (!p) throw nativeOnly('upload', url, why);
      return p.upload(source, url, o);
    },
    async remove(urls, store) {
      const other = urls.find((u) => !serving(u, 'remove'));
      if (other !== undefined) throw nativeOnly('remove', other, why);
      // One batch per provider (each removes its URLs in as few requests as it can).
      for (const p of PROVIDERS) {
        const mine = urls.filter((u) => serving(u, 'remove') === p);
        if (mine.length) await p.remove!(mine, store);
      }
    },
    async copy(from, to, ifNotExists, store) {
      const p = serving(to, 'copy');
      if (!p || serving(from, 'copy') !== p) throw nativeOnly('copy', p ? from : to, why);
      await p.copy(from, to, ifNotExists, store);
    },
    async *list(prefixUrl, store) {
      const p = serving(prefixUrl, 'list');
      if (!p) throw nativeOnly('list', prefixUrl, why);
      yield* p.list(prefixUrl, store);
    },
    async head(url, store) {
      const loc = locate(url);
      if (loc.kind === 'cloud') return cloudOf(loc.scheme, url, why).head(url, store);
      if (loc.kind === 'http') return httpHead(loc.url, store);
      try {
        const f = await fileEtag(loc.path);
        return { size: f.size, etag: f.etag, lastModified: f.mtime };
      } catch (e) {
        throw fromNodeError(e, url, loc.path);
      }
    },

    async getDetailed(url, into, t) {
      const started = performance.now();
      const loc = locate(url);
      if (loc.kind === 'cloud') {
        refuseRdma(url, t.store);
        const got = await getWhole(cloudOf(loc.scheme, url, why), url, t).catch((e: unknown) => {
          throw t.signal?.aborted ? abortedError(url) : fromNodeError(e, url);
        });
        return { data: fit(got.data, into, url), result: got.result };
      }
      const data = await engine.get(url, undefined, t);
      const out = fit(data, into, url);
      const result = { bytes: data.length, elapsedMs: performance.now() - started, parts: 1 };
      return { data: out, result: { ...result, resumedBytes: 0, path: 'http' as const } };
    },

    async get(url, range, t) {
      const { store, signal } = t;
      refuseRdma(url, store);
      checkRange(range);
      if (range && t.checksum === 'required') {
        throw new StorageError(
          'InvalidArgument',
          "checksum 'required' verifies whole objects; a byte range cannot be verified",
        );
      }
      const report = new Reporter(t.onProgress);
      if (signal?.aborted) throw abortedError(url);
      if (range && ('suffix' in range ? range.suffix === 0 : range.length === 0)) {
        return Buffer.alloc(0);
      }
      const loc = locate(url);
      try {
        if (loc.kind === 'cloud') {
          const p = cloudOf(loc.scheme, url, why);
          if (!range) return (await getWhole(p, url, t)).data;
          const o = await p.locate(url, store);
          let asked = range;
          if ('suffix' in range && p.suffixRanges === false) {
            const { size } = await p.head(url, store);
            if (size === 0) return Buffer.alloc(0);
            asked = { offset: Math.max(0, size - range.suffix) };
          }
          const { body, raw, length } = await httpOpen(
            new URL(o.href),
            asked,
            store,
            signal,
            o.via('GET'),
          );
          if (length === 0) {
            // A range that selects bytes, answered with none (Azure's 206 for a range that starts
            // at or past the end): refused with the native engine's code for it on that store.
            discard(raw);
            throw new StorageError(
              'Generic',
              `${displayUrl(url)}: the requested range starts at or past the end of the object`,
              { url },
            );
          }
          report.plan(length);
          const buf = await readAll(body, length, report, undefined);
          report.finish();
          return buf;
        }
        if (loc.kind === 'http') {
          const { body, raw, length, offered } = await httpOpen(loc.url, range, store, signal);
          let verifier: Verifier | undefined;
          try {
            verifier = range ? undefined : await Verifier.for(t.checksum, offered, url);
          } catch (e) {
            discard(raw);
            throw e;
          }
          report.plan(length);
          const buf = await readAll(body, length, report, verifier);
          await verifier?.finish();
          report.finish();
          return buf;
        }
        if (!range && t.checksum === 'required') throw unavailable(url);
        const f = await fileEtag(loc.path);
        const [start, end] = fileRange(f.size, range);
        if (range && start >= f.size) {
          throw new StorageError(
            'InvalidArgument',
            `${loc.path}: the requested range is outside the object`,
            { url },
          );
        }
        const fh = await open(loc.path, 'r');
        try {
          const buf = Buffer.allocUnsafe(end - start);
          let off = 0;
          while (off < buf.length) {
            const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
            if (bytesRead === 0) break;
            off += bytesRead;
          }
          report.plan(off);
          report.add(off);
          report.finish();
          return buf.subarray(0, off);
        } finally {
          await fh.close();
        }
      } catch (e) {
        if (signal?.aborted) throw abortedError(url);
        // The last n bytes of an empty object are no bytes (HTTP answers 416): its size decides.
        if (range && 'suffix' in range) {
          const size = await engine.head(url, store).then(
            (i) => i.size,
            () => undefined,
          );
          if (size === 0) return Buffer.alloc(0);
        }
        throw fromNodeError(e, url, loc.kind === 'file' ? loc.path : undefined);
      }
    },

    async download(url, dest, t) {
      refuseRdma(url, t.store);
      return downloadOne(url, dest, t, undefined, why);
    },

    async downloadMany(items, concurrency, t) {
      return settleAll(
        items,
        concurrency,
        (item, i) => downloadOne(item.url, item.dest, t, i, why),
        (e, item) => fromNodeError(e, item.url),
      );
    },
  };
  return engine;
}

async function downloadOne(
  url: string,
  dest: string,
  t: TransferSettings,
  index: number | undefined,
  why: WhyJs,
): Promise<Done> {
  const { store, signal } = t;
  const report = new Reporter(t.onProgress, index);
  const started = performance.now();
  if (signal?.aborted) throw abortedError(url);
  if (!dest) throw new StorageError('InvalidArgument', 'the destination path is empty');
  const loc = locate(url);
  const p = loc.kind === 'cloud' ? cloudOf(loc.scheme, url, why) : undefined;
  if (t.resume) {
    throw new StorageError(
      'NotSupported',
      'resume is a native-engine feature; the JS engine downloads in one stream',
      { url },
    );
  }
  const target = isAbsolute(dest) ? dest : resolve(dest);
  try {
    if (loc.kind === 'cloud') return await downloadWhole(p!, url, target, t, index);
    return await withTemp(url, target, t, async (fh, where): Promise<Done> => {
      if (loc.kind === 'file') {
        if (t.checksum === 'required') throw unavailable(url);
        const f = await fileEtag(loc.path).catch((e: unknown) => {
          throw fromNodeError(e, url, loc.path);
        });
        await writeBody(createReadStream(loc.path), fh, where, url, report, signal);
        if (signal?.aborted) throw abortedError(url);
        report.plan(f.size);
        report.finish();
        return {
          bytes: f.size,
          etag: f.etag,
          elapsedMs: performance.now() - started,
          parts: 1,
          resumedBytes: 0,
        };
      }
      const { body, raw, length, etag, offered } = await httpOpen(
        loc.url,
        undefined,
        store,
        signal,
      );
      let verifier: Verifier | undefined;
      try {
        verifier = await Verifier.for(t.checksum, offered, url);
      } catch (e) {
        discard(raw);
        throw e;
      }
      report.plan(length);
      const written = await writeBody(body, fh, where, url, report, signal, verifier);
      if (written !== length) {
        throw new StorageError(
          'Generic',
          `${displayUrl(url)}: expected ${length} bytes but the body had ${written}`,
          { url },
        );
      }
      const checksum = await verifier?.finish();
      report.finish();
      return {
        bytes: length,
        etag,
        elapsedMs: performance.now() - started,
        parts: 1,
        checksum,
        resumedBytes: 0,
      };
    });
  } catch (e) {
    if (signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url, loc.kind === 'file' ? loc.path : undefined);
  }
}
