// GCS uploads for the JS engine, through the JSON API (which GCS and fake-gcs-server both take):
// up to one part in one multipart/related request (the object's metadata, its CRC32C among them,
// then its bytes: GCS refuses bytes that do not match); larger as a resumable upload whose
// chunks (multiples of 256 KiB) go in order, the last carrying the whole object's CRC32C in
// `x-goog-hash`. `ifNotExists` is `ifGenerationMatch=0` on either. A resumable upload that fails
// or is aborted is cancelled: nothing is stored. The driver (parts, CRC64NVME, aborts) is
// upload.ts's.
import { randomBytes } from 'node:crypto';
import { StorageError } from '../../errors.js';
import { DEFAULTS } from '../../options.js';
import { displayUrl, registerSecret } from '../../redact.js';
import type { UploadOptions } from '../../types.js';
import { running } from './checksum.js';
import type { UploadSource, Uploaded } from './cloud.js';
import { answer, gcsSend, resolveObject, uploadHref, type GcsObject } from './gcs-bucket.js';
import { one, send } from './http.js';
import { conditional } from './s3.js';
import { requestedPart, uploadWith, type Feed, type Stored } from './upload.js';

/** A resumable upload's chunks are multiples of this (all but the last). */
const CHUNK = 256 * 1024;

/** What GCS answers about the object it stored. */
interface Resource {
  generation?: string;
  md5Hash?: string;
}

/** The ETag the XML API gives an object that is not composite: its MD5, hex, quoted. */
function stored(r: Resource): Stored {
  const md5 = r.md5Hash ? Buffer.from(r.md5Hash, 'base64') : undefined;
  return {
    etag: md5?.length === 16 ? `"${md5.toString('hex')}"` : undefined,
    version: r.generation,
  };
}

const contentType = (o: UploadOptions): string => o.contentType ?? 'application/octet-stream';

/** The object's resource as uploads send it: its name, Content-Type, metadata, CRC32C. */
function resource(t: GcsObject, o: UploadOptions, crc32c?: string): string {
  return JSON.stringify({
    name: t.key,
    contentType: contentType(o),
    ...(o.metadata ? { metadata: o.metadata } : {}),
    ...(crc32c ? { crc32c } : {}),
  });
}

async function crc32cOf(data: Buffer): Promise<string> {
  const h = await running('crc32c');
  h.update(data);
  return (await h.digest()).toString('base64');
}

/** The upload URL with its query: the upload type and, for ifNotExists, generation 0. */
function uploadTo(t: GcsObject, type: string, o: UploadOptions): string {
  const q = new URLSearchParams({
    uploadType: type,
    ...(o.ifNotExists ? { ifGenerationMatch: '0' } : {}),
  });
  return `${uploadHref(t)}?${q.toString()}`;
}

/** The whole object in one multipart/related request, its CRC32C in its metadata. */
async function single(t: GcsObject, data: Buffer, o: UploadOptions): Promise<Stored> {
  const boundary = `objget-${randomBytes(16).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n${resource(t, o, await crc32cOf(data))}\r\n--${boundary}\r\ncontent-type: ${contentType(o)}\r\n\r\n`,
    ),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  try {
    const res = await gcsSend(t, {
      method: 'POST',
      what: 'upload',
      url: t.url,
      href: uploadTo(t, 'multipart', o),
      headers: { 'content-type': `multipart/related; boundary=${boundary}` },
      body,
      signal: o.signal,
    });
    return stored((await answer(res, 'upload', t.url)) as Resource);
  } catch (e) {
    throw o.ifNotExists ? conditional(e, t.url) : e;
  }
}

/** Cancel a resumable upload (GCS answers 499), whatever signal the call had. */
async function cancel(t: GcsObject, session: string): Promise<void> {
  const res = await send(session, 'DELETE', {}, t.store, undefined, { sign: t.sign, shown: t.url });
  await res.body.dump();
}

/** A resumable upload of the parts, in order; cancelled on any failure or abort. */
async function resumable(
  t: GcsObject,
  { ready, pull, report, aborted, buffers }: Feed,
  o: UploadOptions,
): Promise<{ done: Stored; parts: number }> {
  const start = await Promise.race([
    gcsSend(t, {
      method: 'POST',
      what: 'resumable upload',
      url: t.url,
      href: uploadTo(t, 'resumable', o),
      headers: {
        'content-type': 'application/json; charset=UTF-8',
        'x-upload-content-type': contentType(o),
      },
      body: Buffer.from(resource(t, o)),
    }),
    aborted,
  ]).catch((e: unknown) => {
    throw o.ifNotExists ? conditional(e, t.url) : e;
  });
  await start.body.dump();
  const session = one(start.headers.location);
  if (!session) {
    throw new StorageError('Generic', `${displayUrl(t.url)}: GCS gave no resumable upload URL`, {
      url: t.url,
    });
  }
  // The session's URL lets anyone holding it write this object: it is never shown.
  registerSecret(session);
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  o.signal?.addEventListener('abort', stop, { once: true });
  const crc = await running('crc32c');
  let offset = 0;
  let n = 0;
  try {
    let data = ready.shift() ?? (await pull());
    while (data !== undefined) {
      const next = ready.shift() ?? (await pull());
      crc.update(data);
      const end = offset + data.length;
      const last = next === undefined;
      const headers: Record<string, string> = {
        'content-range': `bytes ${offset}-${end - 1}/${last ? end : '*'}`,
      };
      if (last) headers['x-goog-hash'] = `crc32c=${(await crc.digest()).toString('base64')}`;
      const res = await Promise.race([
        gcsSend(t, {
          method: 'PUT',
          what: `resumable upload part ${n + 1}`,
          url: t.url,
          href: session,
          headers,
          body: data,
          signal: ac.signal,
        }),
        aborted,
      ]);
      n++;
      report.add(data.length);
      if (last) {
        return {
          done: stored((await answer(res, 'resumable upload', t.url)) as Resource),
          parts: n,
        };
      }
      await res.body.dump();
      // 308: the bytes GCS holds so far, which must be every byte sent.
      if (res.statusCode !== 308 || one(res.headers.range) !== `bytes=0-${end - 1}`) {
        throw new StorageError(
          'Generic',
          `${displayUrl(t.url)}: GCS did not keep part ${n} as sent (HTTP ${res.statusCode})`,
          { url: t.url },
        );
      }
      offset = end;
      buffers.give(data);
      data = next;
    }
    throw new StorageError('Generic', `${displayUrl(t.url)}: an upload with no parts`, {
      url: t.url,
    });
  } catch (e) {
    ac.abort();
    await cancel(t, session).catch(() => undefined);
    throw o.ifNotExists ? conditional(e, t.url) : e;
  } finally {
    o.signal?.removeEventListener('abort', stop);
  }
}

/** Upload `source` to the GCS object `url`. */
export async function gcsUpload(
  source: UploadSource,
  url: string,
  o: UploadOptions,
): Promise<Uploaded> {
  requestedPart(o);
  const target = await resolveObject(url, o.store);
  return uploadWith(source, url, o, {
    // Parts of the size asked for (or the default), rounded up to whole 256 KiB chunks.
    partSize: (requested) => Math.ceil((requested ?? DEFAULTS.uploadPartSize) / CHUNK) * CHUNK,
    one: async (data) => ({ done: await single(target, data, o) }),
    many: (feed) => resumable(target, feed, o),
  });
}
