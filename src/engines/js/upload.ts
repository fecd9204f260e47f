// Uploads for the JS engine: the driver every provider's uploads share (`uploadWith`: the source
// cut into parts, the CRC64NVME the native engine reports, aborts, the source dropped on
// failure) and S3's writer, as the native engine uploads: up to one part in a single PUT,
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
import { running } from './checksum.js';
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

/** The source as parts, in order, each a fresh or sliced Buffer (the last may be shorter). */
export async function* cut(
  source: Source,
  requested: number | undefined,
  planned: (size: number) => void,
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
        const buf = Buffer.allocUnsafe(Math.min(part, size - at));
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

async function crc64(data: Buffer): Promise<string> {
  const h = running('crc64nvme');
  h.update(data);
  return (await h.digest()).toString('base64');
}

/** What an upload gives back of the object it stored. */
export interface Stored {
  etag?: string;
  version?: string;
}

/** How one store writes an upload (S3 below; other providers in their own files). */
export interface Writer {
  /** The part size to cut the source at, for the one requested (validated) or none. */
  partSize(requested: number | undefined): number | undefined;
  /** The whole object in one request (the source was one part, or none). */
  single(data: Buffer): Promise<Stored>;
  /**
   * The object from more than one part: `ready`, then what `pull` gives until it gives
   * undefined. `crc64nvme` is the whole object's, once every part has been pulled. Rejects, having
   * left nothing behind, on any failure or once `aborted` rejects.
   */
  parts(
    ready: Buffer[],
    pull: () => Promise<Buffer | undefined>,
    report: Reporter,
    aborted: Promise<never>,
    crc64nvme: () => Promise<string>,
  ): Promise<Stored & { parts: number }>;
}

/**
 * Upload `source` through `w`: the source cut into parts (a file read at offsets, a stream as it
 * comes), the whole object's CRC64NVME computed as they are pulled (what the native engine
 * reports), an abort settling the call at once, the source dropped on failure.
 */
export async function uploadWith(
  source: Source,
  url: string,
  o: UploadOptions,
  writer: () => Promise<Writer>,
): Promise<Uploaded> {
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
  const w = await writer();
  const report = new Reporter(o.onProgress);
  const aborted = whenAborted(o.signal, url);
  aborted.catch(() => undefined);
  const whole = running('crc64nvme');
  let digest: Promise<string> | undefined;
  const crc64nvme = (): Promise<string> =>
    (digest ??= whole.digest().then((d) => d.toString('base64')));
  let bytes = 0;
  const parts = cut(source, w.partSize(requested), (size) => report.plan(size));
  const pull = async (): Promise<Buffer | undefined> => {
    const r = await Promise.race([parts.next(), aborted]);
    if (r.done) return undefined;
    whole.update(r.value);
    bytes += r.value.length;
    return r.value;
  };
  // The source is dropped on any failure: a stream is destroyed, a file closed.
  const drop = (): void => {
    void parts.return(undefined).catch(() => undefined);
    const d = (source as { destroy?: () => void }).destroy;
    if (typeof d === 'function' && !Buffer.isBuffer(source)) d.call(source);
  };
  try {
    if (o.signal?.aborted) throw abortedError(url);
    const first = (await pull()) ?? Buffer.alloc(0);
    const second = await pull();
    let stored: Stored & { parts: number };
    if (second === undefined) {
      stored = { ...(await Promise.race([w.single(first), aborted])), parts: 1 };
      report.add(first.length);
    } else {
      stored = await w.parts([first, second], pull, report, aborted, crc64nvme);
    }
    report.finish();
    return { ...stored, bytes, checksum: { algorithm: 'crc64nvme', value: await crc64nvme() } };
  } catch (e) {
    drop();
    if (o.signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url);
  }
}

/** Upload `source` to the S3 object `url`. */
export async function s3Upload(source: Source, url: string, o: UploadOptions): Promise<Uploaded> {
  const concurrency = Math.max(1, o.concurrency ?? DEFAULTS.uploadConcurrency);
  return uploadWith(source, url, o, async () => {
    const target = await resolveObject(url, o.store);
    return {
      partSize: (requested) => requested,
      single: (data) => putWhole(target, data, o),
      parts: (ready, pull, report, aborted, crc64nvme) =>
        multipart(target, ready, pull, concurrency, o, report, aborted, crc64nvme),
    };
  });
}

async function putWhole(
  t: S3Object,
  data: Buffer,
  o: UploadOptions,
): Promise<{ etag?: string; version?: string }> {
  const headers = {
    ...attributes(o),
    'x-amz-checksum-crc64nvme': await crc64(data),
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
  return { etag: one(res.headers.etag), version: one(res.headers['x-amz-version-id']) };
}

/**
 * A multipart upload of the parts `pull` gives (the first ones already pulled), `concurrency`
 * in flight; any failure or an abort stops the rest and aborts the upload before it rejects.
 */
async function multipart(
  t: S3Object,
  ready: Buffer[],
  pull: () => Promise<Buffer | undefined>,
  concurrency: number,
  o: UploadOptions,
  report: Reporter,
  aborted: Promise<never>,
  crc64nvme: () => Promise<string>,
): Promise<Stored & { parts: number }> {
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
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const send = async (i: number, data: Buffer): Promise<void> => {
    const crc = await crc64(data);
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
    // Every part has been pulled: the whole object's CRC64NVME is known.
    const crc = await crc64nvme();
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
    return { ...full, parts: n };
  } catch (e) {
    ac.abort();
    await Promise.allSettled(inFlight);
    await abortUpload(t, uploadId).catch(() => undefined);
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', stop);
  }
}
