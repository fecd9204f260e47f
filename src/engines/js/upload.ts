// S3 uploads for the JS engine, as the native engine uploads: up to one part in a single PUT,
// larger as a multipart upload with `concurrency` parts in flight (aborted on any failure or
// abort: nothing is left behind), every request carrying the CRC64NVME of its bytes and the
// completion the whole object's; `ifNotExists` is If-None-Match on the PUT or on the
// CompleteMultipartUpload. Files are read part by part at their offsets, streams cut as their
// chunks come (memory stays near `concurrency` × part size).
import { open, stat } from 'node:fs/promises';
import { fromNodeError, StorageError } from '../../errors.js';
import { DEFAULTS, UPLOAD_LIMITS } from '../../options.js';
import type { UploadOptions } from '../../types.js';
import { abortedError, Reporter } from '../land.js';
import { crcCombine, running } from './checksum.js';
import type { UploadSource, Uploaded } from './cloud.js';
import { one } from './http.js';
import {
  abortUpload,
  completeUpload,
  conditional,
  createUpload,
  resolveObject,
  s3Send,
  type DonePart,
  type S3Object,
} from './s3.js';

type Source = UploadSource;

/** The part size for `size` bytes: the requested one, raised to S3's minimum and to fit. */
function partSizeFor(size: number, requested: number | undefined): number {
  let part = Math.max(requested ?? DEFAULTS.uploadPartSize, UPLOAD_LIMITS.minPart);
  while (Math.ceil(size / part) > UPLOAD_LIMITS.maxParts) part *= 2;
  return part;
}

/** A stream's part size once `made` parts are cut: doubled every 1,000 (to reach 10,000). */
const streamPart = (first: number, made: number): number => first * 2 ** Math.floor(made / 1000);

/**
 * The buffers a file's parts are read into, reused once their part is stored: the memory of an
 * upload stays at its parts in flight instead of growing with garbage not yet collected (a
 * 256 MiB file peaked at 327 MiB RSS without reuse).
 */
export class PartBuffers {
  private readonly free: Buffer[] = [];
  private readonly mine = new WeakSet<Buffer>();

  take(len: number): Buffer {
    const buf = this.free.pop() ?? Buffer.allocUnsafe(len);
    this.mine.add(buf);
    return buf.length === len ? buf : buf.subarray(0, len);
  }

  /**
   * `buf`'s part is stored: it may hold the next one (a Buffer not taken here, as a slice of the
   * caller's, is left alone; never give one back after a failure, when undici may still hold it).
   */
  give(buf: Buffer): void {
    // Only whole part-sized buffers go back; the last, shorter part's is dropped.
    if (this.mine.has(buf)) this.free.push(buf);
  }
}

/** The source as parts, in order, each a fresh or sliced Buffer (the last may be shorter). */
export async function* cut(
  source: Source,
  requested: number | undefined,
  planned: (size: number) => void,
  buffers: PartBuffers,
): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(source)) {
    planned(source.length);
    const part = partSizeFor(source.length, requested);
    for (let at = 0; at < source.length; at += part) yield source.subarray(at, at + part);
    return;
  }
  if (typeof source === 'string') {
    const size = (await stat(source)).size;
    planned(size);
    const part = partSizeFor(size, requested);
    const fh = await open(source, 'r');
    try {
      for (let at = 0; at < size; at += part) {
        const buf = buffers.take(Math.min(part, size - at));
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, at + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got !== buf.length) {
          throw new StorageError('Io', `${source}: the file shrank while it was being uploaded`);
        }
        yield buf;
      }
    } finally {
      await fh.close();
    }
    return;
  }
  const first = Math.max(requested ?? DEFAULTS.uploadPartSize, UPLOAD_LIMITS.minPart);
  let made = 0;
  let held: Buffer[] = [];
  let n = 0;
  for await (const c of source) {
    const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    held.push(chunk);
    n += chunk.length;
    let part = streamPart(first, made);
    while (n >= part) {
      const all = Buffer.concat(held, n);
      yield all.subarray(0, part);
      made++;
      held = [all.subarray(part)];
      n -= part;
      part = streamPart(first, made);
    }
  }
  if (n > 0 || made === 0) yield Buffer.concat(held, n);
}

/** Resolves when `signal` aborts (never otherwise), to race the waits of an upload. */
export function whenAborted(signal: AbortSignal | undefined, url: string): Promise<never> {
  return new Promise((_, reject) => {
    if (!signal) return;
    const fail = (): void => reject(abortedError(url));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/** The headers an object is stored with: its Content-Type and user metadata. */
function attributes(o: UploadOptions): Record<string, string> {
  const h: Record<string, string> = {};
  if (o.contentType !== undefined) h['content-type'] = o.contentType;
  for (const [k, v] of Object.entries(o.metadata ?? {})) h[`x-amz-meta-${k.toLowerCase()}`] = v;
  return h;
}

async function crc64(data: Buffer): Promise<Buffer> {
  const h = await running('crc64nvme');
  h.update(data);
  return h.digest();
}

/** The upload's `partSize`, if it asks for one: `InvalidArgument` outside 64 KiB to 5 GiB. */
export function requestedPart(o: UploadOptions): number | undefined {
  const requested = o.partSize;
  if (
    requested !== undefined &&
    (requested < UPLOAD_LIMITS.minRequestedPart || requested > UPLOAD_LIMITS.maxPart)
  ) {
    throw new StorageError(
      'InvalidArgument',
      `partSize must be between 64 KiB and 5 GiB, got ${requested}`,
    );
  }
  return requested;
}

/** What a provider's upload reads: the parts after the first two, and how the call stands. */
export interface Feed {
  /** The first parts, already read. */
  ready: Buffer[];
  /** The next part, or undefined after the last. */
  pull: () => Promise<Buffer | undefined>;
  concurrency: number;
  report: Reporter;
  /** Rejects when the call is aborted. */
  aborted: Promise<never>;
  /** The buffers parts are read into: each part's goes back once the part is stored. */
  buffers: PartBuffers;
}

/** What an upload gives back of the object it stored. */
export interface Stored {
  etag?: string;
  version?: string;
}

/**
 * How a provider writes an upload: one part in one request, or more (its multipart kind). A
 * writer that answers the CRC64NVME of what it wrote (S3 computes each part's once and combines
 * them) spares the upload a second pass over every byte; otherwise the upload computes it.
 */
export interface Writer {
  /** The part size to cut at, for the one requested (validated) or none (the default). */
  partSize?(requested: number | undefined): number | undefined;
  /** Told each part as it is read, in order. */
  seen?(part: Buffer): void;
  one(data: Buffer): Promise<{ done: Stored; crc?: string }>;
  many(feed: Feed): Promise<{ done: Stored; parts: number; crc?: string }>;
  /** The writer answers `crc` (base64 CRC64NVME) from both `one` and `many`. */
  crc64?: true;
}

/**
 * Upload `source` to `url` through `writer`, as the native engine uploads: cut into parts
 * (`cut`), one part written whole, more by the writer's multipart kind; the result carries the
 * CRC64NVME of the bytes. The source is dropped on any failure (a stream destroyed, a file
 * closed).
 */
export async function uploadWith(
  source: Source,
  url: string,
  o: UploadOptions,
  writer: Writer,
): Promise<Uploaded> {
  const requested = requestedPart(o);
  const concurrency = Math.max(1, o.concurrency ?? DEFAULTS.uploadConcurrency);
  const report = new Reporter(o.onProgress);
  const aborted = whenAborted(o.signal, url);
  aborted.catch(() => undefined);
  const whole = writer.crc64 ? undefined : await running('crc64nvme');
  let bytes = 0;
  const buffers = new PartBuffers();
  const partSize = writer.partSize ? writer.partSize(requested) : requested;
  const parts = cut(source, partSize, (size) => report.plan(size), buffers);
  const pull = async (): Promise<Buffer | undefined> => {
    const r = await Promise.race([parts.next(), aborted]);
    if (r.done) return undefined;
    whole?.update(r.value);
    writer.seen?.(r.value);
    bytes += r.value.length;
    return r.value;
  };
  const drop = (): void => {
    void parts.return(undefined).catch(() => undefined);
    const d = (source as { destroy?: () => void }).destroy;
    if (typeof d === 'function' && !Buffer.isBuffer(source)) d.call(source);
  };
  try {
    if (o.signal?.aborted) throw abortedError(url);
    const first = (await pull()) ?? Buffer.alloc(0);
    const second = await pull();
    const sum = async (crc: string | undefined): Promise<string> =>
      crc ?? (await whole!.digest()).toString('base64');
    if (second === undefined) {
      const r = await writer.one(first);
      report.add(first.length);
      report.finish();
      const value = await sum(r.crc);
      return { ...r.done, bytes, parts: 1, checksum: { algorithm: 'crc64nvme', value } };
    }
    const feed = { ready: [first, second], pull, concurrency, report, aborted, buffers };
    const r = await writer.many(feed);
    report.finish();
    const value = await sum(r.crc);
    return { ...r.done, bytes, parts: r.parts, checksum: { algorithm: 'crc64nvme', value } };
  } catch (e) {
    drop();
    if (o.signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url);
  }
}

/** Upload `source` to the S3 object `url`. */
export async function s3Upload(source: Source, url: string, o: UploadOptions): Promise<Uploaded> {
  requestedPart(o);
  const target = await resolveObject(url, o.store);
  return uploadWith(source, url, o, {
    crc64: true,
    one: (data) => putWhole(target, data, o),
    many: (f) => multipart(target, f, o),
  });
}

async function putWhole(
  t: S3Object,
  data: Buffer,
  o: UploadOptions,
): Promise<{ done: { etag?: string; version?: string }; crc: string }> {
  const crc = (await crc64(data)).toString('base64');
  const headers = {
    ...attributes(o),
    'x-amz-checksum-crc64nvme': crc,
    ...(o.ifNotExists ? { 'if-none-match': '*' } : {}),
  };
  const res = await s3Send(t, {
    method: 'PUT',
    what: 'PutObject',
    url: t.url,
    key: t.key,
    headers,
    signal: o.signal,
    body: data,
  }).catch((e: unknown) => {
    throw o.ifNotExists ? conditional(e, t.url) : e;
  });
  await res.body.dump();
  return {
    done: { etag: one(res.headers.etag), version: one(res.headers['x-amz-version-id']) },
    crc,
  };
}

/**
 * A multipart upload of the parts `pull` gives (the first ones already pulled), `concurrency`
 * in flight; any failure or an abort stops the rest and aborts the upload before it rejects.
 */
async function multipart(
  t: S3Object,
  { ready, pull, concurrency, report, aborted, buffers }: Feed,
  o: UploadOptions,
): Promise<{ done: { etag?: string; version?: string }; parts: number; crc: string }> {
  const uploadId = await Promise.race([
    createUpload(t, {
      ...attributes(o),
      'x-amz-checksum-algorithm': 'CRC64NVME',
      'x-amz-checksum-type': 'FULL_OBJECT',
    }),
    aborted,
  ]);
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  o.signal?.addEventListener('abort', stop, { once: true });
  const done: DonePart[] = [];
  // Each part's CRC64NVME and length, to combine into the whole object's.
  const crcs: [Buffer, number][] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const send = async (i: number, data: Buffer): Promise<void> => {
    const sum = await crc64(data);
    crcs[i] = [sum, data.length];
    const crc = sum.toString('base64');
    const res = await s3Send(t, {
      method: 'PUT',
      what: 'UploadPart',
      url: t.url,
      key: t.key,
      query: [
        ['partNumber', String(i + 1)],
        ['uploadId', uploadId],
      ],
      headers: { 'x-amz-checksum-crc64nvme': crc },
      signal: ac.signal,
      body: data,
    });
    await res.body.dump();
    const etag = one(res.headers.etag);
    if (!etag) {
      throw new StorageError('Generic', `UploadPart ${i + 1} gave no ETag`, { url: t.url });
    }
    done[i] = { etag, crc64nvme: crc };
    report.add(data.length);
    buffers.give(data);
  };
  try {
    let n = 0;
    for (;;) {
      const data = ready.shift() ?? (await pull());
      if (data === undefined) break;
      const p: Promise<void> = send(n++, data).then(
        () => void inFlight.delete(p),
        (e: unknown) => {
          inFlight.delete(p);
          failure ??= e;
          ac.abort();
        },
      );
      inFlight.add(p);
      while (inFlight.size >= concurrency && failure === undefined) {
        await Promise.race([Promise.race(inFlight), aborted]);
      }
      if (failure !== undefined) break;
    }
    await Promise.race([Promise.all(inFlight), aborted]);
    if (failure !== undefined) throw failure;
    // Every part is stored: the whole object's CRC64NVME is its parts' combined.
    const [first, ...rest] = crcs;
    const crc = rest
      .reduce((acc, [sum, len]) => crcCombine('crc64nvme', acc, sum, len), first![0])
      .toString('base64');
    const full = await Promise.race([
      completeUpload(
        t,
        uploadId,
        done,
        o.ifNotExists === true,
        { 'x-amz-checksum-type': 'FULL_OBJECT', 'x-amz-checksum-crc64nvme': crc },
        crc,
      ),
      aborted,
    ]);
    return { done: full, parts: n, crc };
  } catch (e) {
    ac.abort();
    await Promise.allSettled(inFlight);
    await abortUpload(t, uploadId).catch(() => undefined);
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', stop);
  }
}
