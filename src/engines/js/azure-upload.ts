// Azure uploads for the JS engine, cut into parts as the S3 uploads are (upload.ts `cut`: the
// native engine's part sizes): one part is one Put Blob; more are block-blob blocks (Put Block,
// `concurrency` in flight) committed by one Put Block List. Every request carries the
// Content-MD5 of its body, which Azure checks; the commit sets the whole blob's MD5, so later
// reads verify it. `ifNotExists` is If-None-Match: * on the Put Blob or the Put Block List: one
// atomic step, nothing staged. A failed or aborted upload commits nothing, so no blob appears
// (its uncommitted blocks are dropped by Azure after a week) and one already there is untouched.
import { createHash, randomBytes } from 'node:crypto';
import type { UploadOptions } from '../../types.js';
import { azureSend, resolveBlob, type Blob } from './azure.js';
import { conditional } from './s3.js';
import type { UploadSource, Uploaded } from './cloud.js';
import { one } from './http.js';
import { requestedPart, uploadWith, type Feed } from './upload.js';

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
  requestedPart(o);
  const target = resolveBlob(url, o.store);
  const whole = createHash('md5');
  return uploadWith(source, url, o, {
    seen: (part) => void whole.update(part),
    one: async (data) => ({
      done: await write(target, o, 'Put Blob', data, {
        'x-ms-blob-type': 'BlockBlob',
        'content-md5': md5(data),
      }),
    }),
    async many(feed) {
      const ids = await blocks(target, feed, o.signal);
      const list = Buffer.from(
        `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids
          .map((id) => `<Latest>${id}</Latest>`)
          .join('')}</BlockList>`,
      );
      const headers = { 'content-md5': md5(list), 'x-ms-blob-content-md5': whole.digest('base64') };
      const done = await Promise.race([
        write(target, o, 'Put Block List', list, headers, [['comp', 'blocklist']]),
        feed.aborted,
      ]);
      return { done, parts: ids.length };
    },
  });
}

/**
 * Put the parts of `feed` as blocks, `concurrency` workers each taking the next part as it
 * finishes one; any failure or an abort stops them all. Returns the block IDs in order (one
 * length for every block of a blob, as Azure requires).
 */
async function blocks(b: Blob, feed: Feed, signal: AbortSignal | undefined): Promise<string[]> {
  const nonce = randomBytes(12).toString('hex');
  const ids: string[] = [];
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  signal?.addEventListener('abort', stop, { once: true });
  let taking: Promise<unknown> = Promise.resolve();
  let failure: unknown;
  // Parts are taken one at a time, in order (the source is read in order), each named then.
  const take = (): Promise<[number, Buffer] | undefined> => {
    const got = taking.then(async (): Promise<[number, Buffer] | undefined> => {
      const data = feed.ready.shift() ?? (await feed.pull());
      if (data === undefined) return undefined;
      const i = ids.length;
      ids.push(Buffer.from(`${nonce}-${String(i).padStart(6, '0')}`).toString('base64'));
      return [i, data];
    });
    taking = got.catch(() => undefined);
    return got;
  };
  const worker = async (): Promise<void> => {
    for (let next = await take(); next && failure === undefined; next = await take()) {
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
      feed.report.add(data.length);
      feed.buffers.give(data);
    }
  };
  const guarded = (): Promise<void> =>
    worker().catch((e: unknown) => {
      failure ??= e;
      ac.abort();
    });
  const workers = Promise.all(Array.from({ length: feed.concurrency }, guarded));
  try {
    await Promise.race([workers, feed.aborted]);
  } finally {
    ac.abort();
    signal?.removeEventListener('abort', stop);
  }
  if (failure !== undefined) throw failure;
  return ids;
}
