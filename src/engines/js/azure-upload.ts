// Azure uploads for the JS engine, cut into parts as the S3 uploads are (upload.ts `cut`: the
// native engine's part sizes): one part is one Put Blob; more are block-blob blocks (Put Block,
// `concurrency` in flight) committed by one Put Block List. Every request carries the
// Content-MD5 of its body, which Azure checks; the commit sets the whole blob's MD5, so later
// reads verify it. `ifNotExists` is If-None-Match: * on the Put Blob or the Put Block List: one
// atomic step, nothing staged. A failed or aborted upload commits nothing, so no blob appears
// (its uncommitted blocks are dropped by Azure after a week) and one already there is untouched.
import { createHash, randomBytes } from 'node:crypto';
import { fromNodeError } from '../../errors.js';
import { DEFAULTS } from '../../options.js';
import type { UploadOptions } from '../../types.js';
import { abortedError, Reporter } from '../land.js';
import { azureSend, conditional, resolveBlob, type Blob } from './azure.js';
import { running } from './checksum.js';
import type { UploadSource, Uploaded } from './cloud.js';
import { one } from './http.js';
import { cut, requestedPart, whenAborted } from './upload.js';

const md5 = (data: Buffer): string => createHash('md5').update(data).digest('base64');

/** The headers a blob is stored with: its Content-Type and user metadata. */
function attributes(o: UploadOptions): Record<string, string> {
  const h: Record<string, string> = {};
  if (o.contentType !== undefined) h['x-ms-blob-content-type'] = o.contentType;
  for (const [k, v] of Object.entries(o.metadata ?? {})) h[`x-ms-meta-${k.toLowerCase()}`] = v;
  return h;
}

const IF_NOT_EXISTS = { 'if-none-match': '*' };

/** What a write made: its ETag and version. */
type Written = { etag?: string; version?: string };

/** One write that makes the blob (Put Blob or Put Block List), conditional under ifNotExists. */
async function write(
  b: Blob,
  o: UploadOptions,
  what: string,
  body: Buffer,
  headers: Record<string, string>,
  query: [string, string][] = [],
): Promise<Written> {
  const res = await azureSend(b, {
    method: 'PUT',
    what,
    url: b.url,
    key: b.key,
    query,
    headers: { ...headers, ...attributes(o), ...(o.ifNotExists ? IF_NOT_EXISTS : {}) },
    signal: o.signal,
    body,
  }).catch((e: unknown) => {
    throw o.ifNotExists ? conditional(e, b.url) : e;
  });
  await res.body.dump();
  return { etag: one(res.headers.etag), version: one(res.headers['x-ms-version-id']) };
}

/** Upload `source` to the Azure blob `url`. */
export async function azureUpload(
  source: UploadSource,
  url: string,
  o: UploadOptions,
): Promise<Uploaded> {
  const requested = requestedPart(o);
  const concurrency = Math.max(1, o.concurrency ?? DEFAULTS.uploadConcurrency);
  const target = resolveBlob(url, o.store);
  const report = new Reporter(o.onProgress);
  const aborted = whenAborted(o.signal, url);
  aborted.catch(() => undefined);
  const whole = running('crc64nvme');
  const wholeMd5 = createHash('md5');
  let bytes = 0;
  const parts = cut(source, requested, (size) => report.plan(size));
  const pull = async (): Promise<Buffer | undefined> => {
    const r = await Promise.race([parts.next(), aborted]);
    if (r.done) return undefined;
    whole.update(r.value);
    wholeMd5.update(r.value);
    bytes += r.value.length;
    return r.value;
  };
  try {
    if (o.signal?.aborted) throw abortedError(url);
    const first = (await pull()) ?? Buffer.alloc(0);
    const second = await pull();
    let done: Written;
    let n = 1;
    if (second === undefined) {
      done = await write(target, o, 'Put Blob', first, {
        'x-ms-blob-type': 'BlockBlob',
        'content-md5': md5(first),
      });
      report.add(first.length);
    } else {
      const ids = await blocks(target, [first, second], pull, concurrency, o, report, aborted);
      n = ids.length;
      const list = Buffer.from(
        `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids
          .map((id) => `<Latest>${id}</Latest>`)
          .join('')}</BlockList>`,
      );
      const headers = {
        'content-md5': md5(list),
        'x-ms-blob-content-md5': wholeMd5.digest('base64'),
      };
      done = await Promise.race([
        write(target, o, 'Put Block List', list, headers, [['comp', 'blocklist']]),
        aborted,
      ]);
    }
    report.finish();
    const checksum = {
      algorithm: 'crc64nvme' as const,
      value: (await whole.digest()).toString('base64'),
    };
    return { ...done, bytes, parts: n, checksum };
  } catch (e) {
    // The source is dropped on any failure: a stream is destroyed, a file closed.
    void parts.return(undefined).catch(() => undefined);
    const d = (source as { destroy?: () => void }).destroy;
    if (typeof d === 'function' && !Buffer.isBuffer(source)) d.call(source);
    if (o.signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url);
  }
}

/**
 * Put the parts `pull` gives (the first ones already pulled) as blocks, `concurrency` workers
 * each taking the next part as it finishes one; any failure or an abort stops them all. Returns
 * the block IDs in order (one length for every block of a blob, as Azure requires).
 */
async function blocks(
  b: Blob,
  ready: Buffer[],
  pull: () => Promise<Buffer | undefined>,
  concurrency: number,
  o: UploadOptions,
  report: Reporter,
  aborted: Promise<never>,
): Promise<string[]> {
  const nonce = randomBytes(12).toString('hex');
  const ids: string[] = [];
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  o.signal?.addEventListener('abort', stop, { once: true });
  let taking: Promise<unknown> = Promise.resolve();
  let failure: unknown;
  // Parts are taken one at a time, in order (the source is read in order), each named then.
  const take = (): Promise<[number, Buffer] | undefined> => {
    const got = taking.then(async (): Promise<[number, Buffer] | undefined> => {
      const data = ready.shift() ?? (await pull());
      if (data === undefined) return undefined;
      const i = ids.length;
      ids.push(Buffer.from(`${nonce}-${String(i).padStart(6, '0')}`).toString('base64'));
      return [i, data];
    });
    taking = got.catch(() => undefined);
    return got;
  };
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      const next = await take();
      if (!next) return;
      const [i, data] = next;
      const res = await azureSend(b, {
        method: 'PUT',
        what: `Put Block ${i + 1}`,
        url: b.url,
        key: b.key,
        query: [
          ['comp', 'block'],
          ['blockid', ids[i]!],
        ],
        headers: { 'content-md5': md5(data) },
        signal: ac.signal,
        body: data,
      });
      await res.body.dump();
      report.add(data.length);
    }
  };
  const guarded = async (): Promise<void> => {
    try {
      await worker();
    } catch (e) {
      failure ??= e;
      ac.abort();
    }
  };
  try {
    await Promise.race([Promise.all(Array.from({ length: concurrency }, guarded)), aborted]);
    if (failure !== undefined) throw failure;
    return ids;
  } catch (e) {
    ac.abort();
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', stop);
  }
}
