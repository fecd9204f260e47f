// GCS for the JS engine, a Provider (cloud.ts). Reads go where object_store reads them, the XML
// API (`base/bucket/name`): its HEAD gives the size, the ETag the ranged GETs are pinned to by
// If-Match (read.ts), the generation and `x-goog-hash` (crc32c, md5) to verify with; the JSON API
// answers the rest: objects.list (names exactly as stored), delete, rewrite (copy;
// `ifGenerationMatch=0` for ifNotExists) and uploads (gcs-upload.ts).
import { StorageError } from '../../errors.js';
import { displayUrl } from '../../redact.js';
import type { ListedObject, ObjectInfo, StoreOptions } from '../../types.js';
import { advertised } from './checksum.js';
import type { Located, Provider } from './cloud.js';
import {
  answer,
  encodeName,
  gcsError,
  gcsSend,
  GCS_SCHEMES,
  jsonHref,
  objectHref,
  resolveBucket,
  resolveObject,
  via,
  type GcsObject,
} from './gcs-bucket.js';
import { gcsUpload } from './gcs-upload.js';
import { discard, one, send, statedSize, type Response } from './http.js';
import { conditional, listPages, parseS3 } from './s3.js';

/** HEAD of an object (XML API): its size, ETag, generation, and the headers (`x-goog-hash`). */
export async function gcsHead(
  o: GcsObject,
): Promise<{ info: ObjectInfo; headers: Response['headers'] }> {
  const res = await send(objectHref(o), 'HEAD', {}, o.store, undefined, {
    ...via(o, o.url, 'HEAD'),
    // A HEAD has no body to read a reason from: its status says it.
    fail: async (r) => {
      discard(r.body);
      return gcsError('HEAD', r.statusCode, '', o.url);
    },
  });
  await res.body.dump();
  return { info: gcsInfo(res.headers, statedSize(res, 'HEAD', o.url)), headers: res.headers };
}

/** An object's size, ETag, time and generation (its version) from a reply's headers. */
export function gcsInfo(h: Response['headers'], size: number): ObjectInfo {
  const lm = one(h['last-modified']);
  return {
    size,
    etag: one(h.etag),
    lastModified: lm ? new Date(lm) : undefined,
    version: one(h['x-goog-generation']),
  };
}

interface ListPage {
  nextPageToken?: string;
  items?: { name?: string; size?: string; etag?: string; updated?: string }[];
}

/**
 * Every object under `prefixUrl` (recursive), page by page as the caller iterates
 * (objects.list with pageToken), names exactly as stored. As the native engine: the prefix is a
 * directory, `a/b` lists what is below `a/b/`.
 */
export async function* gcsList(
  prefixUrl: string,
  store: StoreOptions | undefined,
): AsyncGenerator<ListedObject> {
  const b = await resolveBucket(prefixUrl, store);
  yield* listPages(prefixUrl, async (below, token) => {
    const q = new URLSearchParams({
      prefix: below,
      // GCS's own page size, asked for explicitly (an emulator may not page otherwise).
      maxResults: '1000',
      fields: 'nextPageToken,items(name,size,etag,updated)',
    });
    if (token !== undefined) q.set('pageToken', token);
    const href = `${jsonHref(b)}?${q.toString()}`;
    const res = await gcsSend(b, { method: 'GET', what: 'objects.list', url: prefixUrl, href });
    const page = (await answer(res, 'objects.list', prefixUrl)) as ListPage;
    return {
      objects: (page.items ?? []).map((o) => [
        String(o.name ?? ''),
        Number(o.size ?? 0),
        o.etag,
        o.updated,
      ]),
      next: page.nextPageToken || undefined,
    };
  });
}

/** Objects removed at once. */
const REMOVING = 8;

/** Remove objects (objects.delete, a few at once); one that is not there is not an error. */
export async function gcsRemove(urls: string[], store: StoreOptions | undefined): Promise<void> {
  const targets = await Promise.all(urls.map((url) => resolveObject(url, store)));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const o = targets[next++]!;
      const res = await gcsSend(o, {
        method: 'DELETE',
        what: 'objects.delete',
        url: o.url,
        href: jsonHref(o, o.key),
      }).catch((e: unknown) => {
        if (e instanceof StorageError && e.code === 'NotFound') return undefined;
        throw e;
      });
      await res?.body.dump();
    }
  };
  await Promise.all(Array.from({ length: Math.min(REMOVING, targets.length) }, worker));
}

interface Rewrite {
  done?: boolean;
  rewriteToken?: string;
}

/**
 * Server-side copy within one bucket (objects.rewrite, continued until done). With
 * `ifNotExists`, `ifGenerationMatch=0`: an object already at `to` is `AlreadyExists`.
 */
export async function gcsCopy(
  from: string,
  to: string,
  ifNotExists: boolean,
  store: StoreOptions | undefined,
): Promise<void> {
  if (parseS3(from).base !== parseS3(to).base) {
    throw new StorageError(
      'InvalidArgument',
      'copy works within one store (same scheme and bucket/container/host); download and upload to move between stores',
    );
  }
  const src = await resolveObject(from, store);
  const dst = await resolveObject(to, store);
  let token: string | undefined;
  try {
    for (;;) {
      const q = new URLSearchParams(ifNotExists ? { ifGenerationMatch: '0' } : {});
      if (token) q.set('rewriteToken', token);
      const href = `${jsonHref(src, src.key)}/rewriteTo/b/${encodeName(dst.bucket)}/o/${encodeName(dst.key)}?${q.toString()}`;
      const res = await gcsSend(dst, { method: 'POST', what: 'objects.rewrite', url: to, href });
      const r = (await answer(res, 'objects.rewrite', to)) as Rewrite;
      if (r.done !== false) return;
      if (!r.rewriteToken) {
        throw new StorageError('Generic', `${displayUrl(to)}: objects.rewrite gave no token`, {
          url: to,
        });
      }
      token = r.rewriteToken;
    }
  } catch (e) {
    throw ifNotExists ? conditional(e, to) : e;
  }
}

const located = (o: GcsObject): Located => ({
  url: o.url,
  store: o.store,
  href: objectHref(o),
  via: (what) => via(o, o.url, what),
});

export const gcs: Provider = {
  schemes: GCS_SCHEMES,
  calls: ['list', 'remove', 'copy', 'upload'],
  locate: async (url, store) => located(await resolveObject(url, store)),
  head: async (url, store) => (await gcsHead(await resolveObject(url, store))).info,
  info: gcsInfo,
  offered: (headers, partial) => advertised(headers, partial),
  list: gcsList,
  remove: gcsRemove,
  copy: gcsCopy,
  upload: gcsUpload,
};
