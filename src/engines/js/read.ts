// Cloud reads for the JS engine (every provider of providers.ts), as the native engine reads: an
// unranged GET whose reply says the size, the ETag and the stored checksums and carries the first
// part (a small object is one request; a larger one's first reply is dropped after its first
// part),
// then `concurrency` parallel ranged GETs of `partSize` bytes, each pinned by If-Match to the
// ETag, each resuming after a cut; a file's parts are written at their offsets into the
// pre-sized temporary (positional writes, no reordering in memory), a Buffer's into their slice
// of it; the checksum is fed the bytes in order as the parts before them complete.
import { isAbsolute, resolve } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { fromNodeError, StorageError } from '../../errors.js';
import { DEFAULTS } from '../../options.js';
import { displayUrl } from '../../redact.js';
import type { EngineTransfer, ObjectInfo, TransferSettings } from '../../types.js';
import { abortedError, Reporter, withTemp, writeBody } from '../land.js';
import { Verifier } from './checksum.js';
import type { Located, Provider } from './cloud.js';
import { discard, resumable, send, startFromContentRange, statedSize } from './http.js';
import type { Readable } from 'node:stream';

/** Where a whole object's parts land. */
interface Sink {
  /** `chunks`, one after the other, from `pos`. */
  write(chunks: Buffer[], pos: number): Promise<void>;
  /** Bytes already written, to feed the checksum in order. */
  read(pos: number, len: number): Promise<Buffer>;
}

function bufferSink(buf: Buffer): Sink {
  return {
    write: async (chunks, pos) => {
      for (const c of chunks) pos += c.copy(buf, pos);
    },
    read: async (pos, len) => buf.subarray(pos, pos + len),
  };
}

function fileSink(fh: FileHandle): Sink {
  return {
    async write(chunks, pos) {
      // One positional writev for many of undici's chunks (~16–64 KiB each): a thread-pool trip
      // per MiB rather than per chunk.
      let left = chunks;
      while (left.length) {
        let n = (await fh.writev(left, pos)).bytesWritten;
        pos += n;
        const rest: Buffer[] = [];
        for (const c of left) {
          if (n >= c.length) n -= c.length;
          else {
            rest.push(n ? c.subarray(n) : c);
            n = 0;
          }
        }
        left = rest;
      }
    },
    async read(pos, len) {
      const out = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(out, got, len - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return out.subarray(0, got);
    },
  };
}

/** The most bytes read back at once to feed the checksum. */
const HASH_SLICE = 8 * 1024 * 1024;
/** A part's received chunks are written together once they hold this many bytes. */
const WRITE_BATCH = 1024 * 1024;

/**
 * Fetch `size` bytes of `o` into `sink` as parallel ranged GETs pinned to `etag`. Any part's
 * failure stops the others (their requests are aborted) and is the call's error. Returns the
 * number of parts.
 */
async function fetchParts(
  o: Located,
  size: number,
  etag: string | undefined,
  first: Readable,
  sink: Sink,
  t: TransferSettings,
  report: Reporter,
  verifier: Verifier | undefined,
): Promise<number> {
  const partSize = t.partSize ?? DEFAULTS.partSize;
  const concurrency = t.concurrency ?? DEFAULTS.concurrency;
  const n = Math.ceil(size / partSize);
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  t.signal?.addEventListener('abort', stop, { once: true });
  // The opening reply was asked for before the parts' controller: it stops with them.
  ac.signal.addEventListener('abort', () => discard(first), { once: true });
  const href = o.href;
  const how = o.via('GET');
  const done = new Set<number>();
  let hashed = 0;
  let hashing: Promise<void> = Promise.resolve();
  // The checksum takes the parts in order: each completed part lets through every completed
  // part from the first one not yet hashed.
  const completed = (i: number): Promise<void> => {
    done.add(i);
    hashing = hashing.then(async () => {
      while (verifier && done.has(hashed)) {
        const start = hashed * partSize;
        const end = Math.min(size, start + partSize);
        for (let at = start; at < end; at += HASH_SLICE) {
          verifier.update(await sink.read(at, Math.min(HASH_SLICE, end - at)));
        }
        hashed++;
      }
    });
    return hashing;
  };
  // The first part comes from the opening reply (the whole object's body, dropped once the
  // part is read); the others are ranged GETs pinned to the ETag.
  const body = async (start: number, end: number): Promise<Readable> => {
    if (start === 0) return first;
    const headers: Record<string, string> = { range: `bytes=${start}-${end - 1}` };
    if (etag) headers['if-match'] = etag;
    const res = await send(href, 'GET', headers, o.store, ac.signal, how);
    if (res.statusCode !== 206 || startFromContentRange(res.headers['content-range']) !== start) {
      discard(res.body);
      throw new StorageError(
        'Generic',
        `${displayUrl(o.url)}: the server did not send bytes ${start}-${end - 1} as asked (HTTP ${res.statusCode})`,
        { url: o.url },
      );
    }
    return res.body;
  };
  const part = async (i: number): Promise<void> => {
    const start = i * partSize;
    const end = Math.min(size, start + partSize);
    const from = await body(start, end);
    let pos = start;
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async (): Promise<void> => {
      await sink.write(batch, pos);
      pos += batched;
      report.add(batched);
      batch = [];
      batched = 0;
    };
    // The opening reply runs on to the object's end: only this part's bytes are taken from it.
    const whole = from === first && end < size;
    for await (const c of resumable(
      from,
      href,
      etag,
      start,
      whole ? size : end,
      o.store,
      ac.signal,
      how,
    )) {
      const take = whole ? c.subarray(0, end - pos - batched) : c;
      if (pos + batched + take.length > end) {
        throw new StorageError('Generic', `${displayUrl(o.url)}: a part sent more than asked`, {
          url: o.url,
        });
      }
      batch.push(take);
      batched += take.length;
      if (batched >= WRITE_BATCH) await flush();
      if (whole && pos + batched === end) break;
    }
    if (whole) discard(first);
    if (batched) await flush();
    if (pos !== end) {
      throw new StorageError('Network', `${displayUrl(o.url)}: a part ended early`, { url: o.url });
    }
    await completed(i);
  };
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (next < n && failure === undefined) {
      const i = next++;
      try {
        await part(i);
      } catch (e) {
        failure ??= e;
        ac.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  } finally {
    t.signal?.removeEventListener('abort', stop);
    // Not read (an empty object, or a failure first): its connection is let go.
    if (!first.readableEnded) discard(first);
  }
  if (t.signal?.aborted) throw abortedError(o.url);
  if (failure !== undefined) throw fromNodeError(failure, o.url);
  await hashing;
  return Math.max(1, n);
}

/**
 * An object opened for a whole read: located, its unranged GET sent (the reply's headers give the
 * size, the ETag and the stored checksums; its body is the first part's source), its checksum
 * chosen. The caller reads `first` or lets it go (`discard`).
 */
async function opened(p: Provider, url: string, t: TransferSettings, report: Reporter) {
  const o = await p.locate(url, t.store);
  const res = await send(o.href, 'GET', o.readHeaders ?? {}, o.store, t.signal, o.via('GET'));
  try {
    if (res.statusCode !== 200) {
      throw new StorageError('Generic', `${displayUrl(url)}: GET answered HTTP ${res.statusCode}`, {
        url,
      });
    }
    const info = p.info(res.headers, statedSize(res, 'GET', url));
    const verifier = await Verifier.for(t.checksum, p.offered(res.headers, false), url);
    report.plan(info.size);
    return { o, info, verifier, first: res.body };
  } catch (e) {
    discard(res.body);
    throw e;
  }
}

/** A whole read's result, once its checksum (if any) is verified. */
async function finished(
  info: ObjectInfo,
  started: number,
  parts: number,
  verifier: Verifier | undefined,
  report: Reporter,
): Promise<EngineTransfer> {
  const checksum = await verifier?.finish();
  report.finish();
  return {
    bytes: info.size,
    etag: info.etag,
    elapsedMs: performance.now() - started,
    parts,
    checksum,
    resumedBytes: 0,
  };
}

/** A whole cloud object into memory. */
export async function getWhole(
  p: Provider,
  url: string,
  t: TransferSettings,
): Promise<{ data: Buffer; result: EngineTransfer }> {
  const started = performance.now();
  const report = new Reporter(t.onProgress);
  const { o, info, verifier, first } = await opened(p, url, t, report);
  const data = Buffer.allocUnsafe(info.size);
  const sink = bufferSink(data);
  const parts = await fetchParts(o, info.size, info.etag, first, sink, t, report, verifier);
  return { data, result: await finished(info, started, parts, verifier, report) };
}

/** A cloud object into a file, landed as every JS download lands (src/engines/land.ts). */
export async function downloadWhole(
  p: Provider,
  url: string,
  dest: string,
  t: TransferSettings,
  index: number | undefined,
): Promise<EngineTransfer> {
  const started = performance.now();
  const report = new Reporter(t.onProgress, index);
  const target = isAbsolute(dest) ? dest : resolve(dest);
  const { o, info, verifier, first } = await opened(p, url, t, report);
  try {
    return await withTemp(url, target, t, async (fh, where): Promise<EngineTransfer> => {
      let parts = 1;
      if (where === target) {
        // A character device or a FIFO takes no offsets: the opening reply, in order.
        const how = o.via('GET');
        const body = resumable(first, o.href, info.etag, 0, info.size, o.store, t.signal, how);
        await writeBody(body, fh, where, url, report, t.signal, verifier);
      } else {
        await fh.truncate(info.size);
        const sink = fileSink(fh);
        parts = await fetchParts(o, info.size, info.etag, first, sink, t, report, verifier);
      }
      return finished(info, started, parts, verifier, report);
    });
  } finally {
    if (!first.readableEnded) discard(first);
  }
}
