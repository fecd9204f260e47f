// S3 for the JS engine: where a bucket is (path-style or virtual-hosted, from the store's
// `config` and the `AWS_*` environment, as object_store reads them), SigV4 by
// @smithy/signature-v4, S3's XML answers by fast-xml-parser, and the calls that move no object
// bytes (head, list, remove, copy). Reads are src/engines/js/parts.ts's, writes upload.ts's.
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { XMLParser } from 'fast-xml-parser';
import { StorageError, type ErrorCode } from '../../errors.js';
import { UPLOAD_LIMITS } from '../../options.js';
import { displayUrl, registerSecret } from '../../redact.js';
import type { ListedObject, ObjectInfo, StoreOptions } from '../../types.js';
import { awsCredentials, awsProfileSettings } from '../credentials.js';
import {
  codeOf,
  discard,
  one,
  send,
  statedSize,
  type Method,
  type Response,
  type Via,
} from './http.js';

/** The schemes the JS engine reads as S3. */
export const S3_SCHEMES = ['s3', 's3a'];

/** object_store's names of the S3 settings the JS engine acts on (aliases → one name). */
const KEYS: Record<string, string> = {
  aws_access_key_id: 'access_key_id',
  access_key_id: 'access_key_id',
  aws_secret_access_key: 'secret_access_key',
  secret_access_key: 'secret_access_key',
  aws_session_token: 'token',
  aws_token: 'token',
  session_token: 'token',
  token: 'token',
  aws_region: 'region',
  region: 'region',
  aws_default_region: 'default_region',
  default_region: 'default_region',
  aws_endpoint: 'endpoint',
  aws_endpoint_url: 'endpoint',
  endpoint: 'endpoint',
  endpoint_url: 'endpoint',
  aws_endpoint_url_s3: 's3_endpoint',
  aws_virtual_hosted_style_request: 'virtual_hosted',
  virtual_hosted_style_request: 'virtual_hosted',
  aws_skip_signature: 'skip_signature',
  skip_signature: 'skip_signature',
  aws_unsigned_payload: 'unsigned_payload',
  unsigned_payload: 'unsigned_payload',
  aws_allow_http: 'allow_http',
  aws_checksum_algorithm: 'checksum',
  checksum_algorithm: 'checksum',
  aws_copy_if_not_exists: 'copy_if_not_exists',
  copy_if_not_exists: 'copy_if_not_exists',
  aws_conditional_put: 'conditional_put',
  conditional_put: 'conditional_put',
  aws_bucket: 'bucket',
  aws_bucket_name: 'bucket',
  bucket_name: 'bucket',
  bucket: 'bucket',
  aws_imdsv1_fallback: 'ignored',
  imdsv1_fallback: 'ignored',
  aws_metadata_endpoint: 'ignored',
  metadata_endpoint: 'ignored',
  aws_disable_tagging: 'ignored',
  disable_tagging: 'ignored',
  aws_disable_bulk_delete: 'ignored',
  disable_bulk_delete: 'ignored',
  // object_store's HTTP client settings: the JS engine's connections are undici's, sized and
  // timed by the store options (connectTimeoutMs, readTimeoutMs).
  allow_http: 'allow_http',
  disable_system_certificates: 'ignored',
  connect_timeout: 'ignored',
  default_content_type: 'ignored',
  http1_only: 'ignored',
  http2_only: 'ignored',
  http2_keep_alive_interval: 'ignored',
  http2_keep_alive_timeout: 'ignored',
  http2_keep_alive_while_idle: 'ignored',
  http2_max_frame_size: 'ignored',
  pool_idle_timeout: 'ignored',
  pool_max_idle_per_host: 'ignored',
  randomize_addresses: 'ignored',
  read_timeout: 'ignored',
  timeout: 'ignored',
  user_agent: 'ignored',
};

/** Settings the native engine takes that the JS engine's requests do not carry. */
const NATIVE_ONLY: Record<string, string> = {
  aws_server_side_encryption: 'server-side encryption settings',
  server_side_encryption: 'server-side encryption settings',
  aws_sse_kms_key_id: 'server-side encryption settings',
  sse_kms_key_id: 'server-side encryption settings',
  aws_sse_bucket_key_enabled: 'server-side encryption settings',
  sse_bucket_key_enabled: 'server-side encryption settings',
  aws_sse_customer_key_base64: 'server-side encryption settings',
  sse_customer_key_base64: 'server-side encryption settings',
  aws_request_payer: 'requester pays',
  request_payer: 'requester pays',
  aws_s3_express: 'S3 Express',
  s3_express: 'S3 Express',
  aws_web_identity_token_file: 'a web identity token file in the options',
  web_identity_token_file: 'a web identity token file in the options',
  aws_role_arn: 'a role in the options',
  role_arn: 'a role in the options',
  aws_container_credentials_relative_uri: 'container credentials in the options',
  container_credentials_relative_uri: 'container credentials in the options',
  aws_container_credentials_full_uri: 'container credentials in the options',
  container_credentials_full_uri: 'container credentials in the options',
  aws_container_authorization_token_file: 'container credentials in the options',
  container_authorization_token_file: 'container credentials in the options',
  aws_role_session_name: 'a role in the options',
  role_session_name: 'a role in the options',
  aws_endpoint_url_sts: 'a role in the options',
  endpoint_url_sts: 'a role in the options',
  proxy_url: 'a proxy',
  proxy_ca_certificate: 'a proxy',
  proxy_excludes: 'a proxy',
};

const isTrue = (v: string | undefined): boolean => v?.trim().toLowerCase() === 'true';

/** A key as S3 wants it in a path: RFC 3986 unreserved kept, `/` kept, all else encoded. */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((seg) =>
      seg === '.' || seg === '..'
        ? seg.replace(/\./g, '%2E')
        : encodeURIComponent(seg).replace(
            /[!'()*]/g,
            (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
          ),
    )
    .join('/');
}

/** A query string whose values are encoded as SigV4 encodes them (so what is signed is sent). */
export function query(pairs: [string, string][]): string {
  const e = (s: string): string =>
    encodeURIComponent(s).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  return pairs.length ? `?${pairs.map(([k, v]) => `${e(k)}=${e(v)}`).join('&')}` : '';
}

/** One S3 bucket, resolved for one call: where to send, how to sign, what messages name. */
export interface Bucket {
  bucket: string;
  /** `https://host/bucket` (path-style) or `https://bucket.host` (virtual-hosted). */
  endpoint: string;
  region: string;
  store: StoreOptions | undefined;
  sign: Via['sign'];
}

/** A located S3 object: its bucket, its key exactly as stored, the caller's URL. */
export interface S3Object extends Bucket {
  key: string;
  url: string;
}

/** `s3://bucket/key` → the bucket and the key, percent-decoded (as object_store's Path). */
export function parseS3(url: string): { bucket: string; key: string; base: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new StorageError('InvalidUrl', `not a valid URL: ${(e as Error).message}`, { url });
  }
  if (!u.hostname) throw new StorageError('InvalidUrl', 'the URL names no bucket', { url });
  let key: string;
  try {
    key = decodeURIComponent(u.pathname.replace(/^\//, ''));
  } catch {
    throw new StorageError('InvalidUrl', 'the URL holds a malformed percent-escape', { url });
  }
  return { bucket: u.hostname, key, base: `${u.protocol}//${u.host}` };
}

function isLoopback(endpoint: string): boolean {
  try {
    const h = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
    if (isIPv4(h)) return h.startsWith('127.');
    if (isIPv6(h)) return h === '::1';
    return h.toLowerCase() === 'localhost';
  } catch {
    return false;
  }
}

/**
 * A cloud store's settings, as the native engine reads them: the provider's environment
 * variables (`prefix`, lower-cased into object_store's names, `keys` maps them; others are
 * passed over), then the store's `config` over them, each name's meaning from `meaning` (it may
 * throw; none: an unknown key, `InvalidArgument`).
 */
export function settingsOf(
  prefix: string,
  keys: Record<string, string>,
  meaning: (name: string) => string | undefined,
  scheme: string,
  store: StoreOptions | undefined,
  url: string,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(process.env)) {
    const k = name.startsWith(prefix) ? keys[name.toLowerCase()] : undefined;
    if (k && value !== undefined) out.set(k, value);
  }
  for (const [name, value] of Object.entries(store?.config ?? {})) {
    const k = meaning(name);
    if (!k) {
      throw new StorageError(
        'InvalidArgument',
        `unknown configuration key '${name}' for ${scheme} stores`,
        { url },
      );
    }
    out.set(k, value);
  }
  return out;
}

/** The settings of an S3 store: the `AWS_*` environment, then the store's `config` over it. */
function settings(store: StoreOptions | undefined, url: string): Map<string, string> {
  const meaning = (name: string): string | undefined => {
    if (NATIVE_ONLY[name] !== undefined) {
      throw new StorageError(
        'NotSupported',
        `the JS engine's S3 requests do not carry ${NATIVE_ONLY[name]} ('${name}'); the native engine does`,
        { url },
      );
    }
    return KEYS[name];
  };
  const out = settingsOf('AWS_', KEYS, meaning, 's3', store, url);
  for (const k of ['secret_access_key', 'token']) registerSecret(out.get(k));
  return out;
}

/**
 * Where the bucket of `url` is and how its requests are signed, as the native engine resolves
 * them: the store's `config` over the `AWS_*` environment, the AWS profile's region and
 * endpoint where neither gives one; object_store's endpoint rules (path-style
 * `endpoint/bucket` unless virtual-hosted; AWS's own hosts otherwise).
 */
let signing:
  | Promise<{
      SignatureV4: typeof import('@smithy/signature-v4').SignatureV4;
      Sha256: typeof import('@smithy/core/checksum').Sha256;
    }>
  | undefined;

/** The SigV4 signer's modules, loaded by the first signed S3 call rather than when objget is
 * imported (they are most of the JS engine's import time, and the native engine never needs
 * them). */
function signerLibs(): NonNullable<typeof signing> {
  return (signing ??= Promise.all([
    import('@smithy/signature-v4'),
    import('@smithy/core/checksum'),
  ]).then(([v4, checksum]) => ({ SignatureV4: v4.SignatureV4, Sha256: checksum.Sha256 })));
}

export async function resolveBucket(url: string, store: StoreOptions | undefined): Promise<Bucket> {
  const { bucket } = parseS3(url);
  const s = settings(store, url);
  const profile = await awsProfileSettings();
  const region = s.get('region') || s.get('default_region') || profile.profileRegion || 'us-east-1';
  const endpoint = (s.get('s3_endpoint') || s.get('endpoint') || profile.profileEndpoint || '')
    .trim()
    .replace(/\/+$/, '');
  const virtual = isTrue(s.get('virtual_hosted'));
  const bucketEndpoint = endpoint
    ? virtual
      ? endpoint
      : `${endpoint}/${bucket}`
    : virtual
      ? `https://${bucket}.s3.${region}.amazonaws.com`
      : `https://s3.${region}.amazonaws.com/${bucket}`;
  if (!/^https?:\/\//i.test(bucketEndpoint)) {
    throw new StorageError('InvalidArgument', `the S3 endpoint must be an http(s) URL`, { url });
  }
  const allowHttp =
    store?.allowHttp ??
    (isTrue(s.get('allow_http')) || endpoint.toLowerCase().startsWith('http://'));
  if (!allowHttp && bucketEndpoint.toLowerCase().startsWith('http://')) {
    throw new StorageError(
      'InvalidArgument',
      'the S3 endpoint is plain http:// and allowHttp is false',
      { url },
    );
  }
  const skip = store?.skipSignature === true || isTrue(s.get('skip_signature'));
  // As the native engine: over TLS or to this machine the payload is not hashed into the
  // signature (TLS protects it, and uploads carry a CRC64NVME the server checks).
  const unsignedPayload = s.has('unsigned_payload')
    ? isTrue(s.get('unsigned_payload'))
    : !endpoint || endpoint.toLowerCase().startsWith('https://') || isLoopback(endpoint);
  const id = s.get('access_key_id');
  const secret = s.get('secret_access_key');
  const keys =
    id && secret
      ? { accessKeyId: id, secretAccessKey: secret, sessionToken: s.get('token') || undefined }
      : undefined;
  const libs = skip ? undefined : await signerLibs();
  const signer = !libs
    ? undefined
    : new libs.SignatureV4({
        service: 's3',
        region,
        sha256: libs.Sha256,
        uriEscapePath: false,
        applyChecksum: false,
        credentials: () => awsCredentials(store?.credentials, keys, url),
      });
  const sign: Via['sign'] = async (method, target, headers, body) => {
    const payload = unsignedPayload
      ? 'UNSIGNED-PAYLOAD'
      : createHash('sha256')
          .update(body ?? Buffer.alloc(0))
          .digest('hex');
    const all = { ...headers, host: target.host, 'x-amz-content-sha256': payload };
    if (!signer) return all;
    const q: Record<string, string> = {};
    for (const [k, v] of target.searchParams) q[k] = v;
    const signed = await signer.sign({
      method,
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port ? Number(target.port) : undefined,
      path: target.pathname,
      query: q,
      headers: all,
    });
    return signed.headers as Record<string, string>;
  };
  return { bucket, endpoint: bucketEndpoint, region, store, sign };
}

/** `url`'s object in the bucket `bucketOf` resolves (S3's or GCS's): `InvalidUrl` without a key. */
export async function keyed<B>(
  url: string,
  store: StoreOptions | undefined,
  bucketOf: (url: string, store: StoreOptions | undefined) => Promise<B>,
): Promise<B & { key: string; url: string }> {
  const { key } = parseS3(url);
  if (!key) {
    throw new StorageError('InvalidUrl', 'the URL names a bucket but no object', { url });
  }
  return { ...(await bucketOf(url, store)), key, url };
}

export const resolveObject = (url: string, store: StoreOptions | undefined): Promise<S3Object> =>
  keyed(url, store, resolveBucket);

export const xml = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
  isArray: (name) => ['Contents', 'Deleted', 'Error', 'Part'].includes(name),
});

/** The body of a reply, at most `limit` bytes (an error's body is small; a hostile one is cut). */
export async function bodyText(res: Response, limit = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n > limit) {
      discard(res.body);
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The `<Code>` of an S3 error body (never its other fields: they may echo a signature). */
export function errorCodeOf(text: string): string | undefined {
  try {
    const doc = xml.parse(text) as { Error?: { Code?: unknown }[] };
    const code = doc.Error?.[0]?.Code;
    return typeof code === 'string' && /^[A-Za-z0-9.]{1,64}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

/** The code of an S3 error: by its status, as the native engine, a few S3 codes more exactly. */
export function s3Code(status: number, code: string | undefined): ErrorCode {
  if (code === 'NoSuchKey' || code === 'NoSuchBucket' || code === 'NoSuchUpload') return 'NotFound';
  if (code === 'SlowDown') return 'Throttled';
  if (code === 'AccessDenied') return 'PermissionDenied';
  return codeOf(status);
}

/** A typed error for an S3 reply that failed: `what` failed, with the status and S3's code. */
export function s3Error(what: string, status: number, text: string, url: string): StorageError {
  const code = errorCodeOf(text);
  return new StorageError(
    s3Code(status, code),
    `${displayUrl(url)}: ${what}: HTTP ${status}${code ? ` ${code}` : ''}`,
    { url },
  );
}

/** How S3 requests of `b` travel: signed, failures read from S3's XML, messages naming `url`. */
export function via(b: Bucket, url: string, what: string, body?: Buffer): Via {
  return {
    sign: b.sign,
    shown: url,
    body,
    fail: async (res) => s3Error(what, res.statusCode, await bodyText(res), url),
  };
}

/** One S3 request: what it is (named in errors), on which key (none: the bucket), with what. */
export interface S3Request {
  method: Method;
  what: string;
  /** The URL messages name. */
  url: string;
  key?: string;
  query?: [string, string][];
  headers?: Record<string, string>;
  signal?: AbortSignal;
  body?: Buffer;
  resending?: Via['resending'];
}

/** One signed request to the bucket. */
export function s3Send(b: Bucket, r: S3Request): Promise<Response> {
  const target = `${b.endpoint}/${r.key === undefined ? '' : encodeKey(r.key)}${query(r.query ?? [])}`;
  const how = { ...via(b, r.url, r.what, r.body), resending: r.resending };
  return send(target, r.method, r.headers ?? {}, b.store, r.signal, how);
}

/** The URL of a key in the bucket: what S3 is sent. */
export function objectHref(o: S3Object): string {
  return `${o.endpoint}/${encodeKey(o.key)}`;
}

/** Ask S3 for the checksums it keeps with the object (signed, on every read). */
export const CHECKSUM_MODE = { 'x-amz-checksum-mode': 'ENABLED' };

export function infoOf(h: Response['headers'], size: number): ObjectInfo {
  const lm = one(h['last-modified']);
  return {
    size,
    etag: one(h.etag),
    lastModified: lm ? new Date(lm) : undefined,
    version: one(h['x-amz-version-id']),
  };
}

/** HEAD of an object, asking for its stored checksums; the reply's headers are kept. */
export async function s3Head(
  o: S3Object,
  headers: Record<string, string> = {},
): Promise<{ info: ObjectInfo; headers: Response['headers'] }> {
  const res = await send(
    objectHref(o),
    'HEAD',
    { ...CHECKSUM_MODE, ...headers },
    o.store,
    undefined,
    {
      ...via(o, o.url, 'HEAD'),
      // A HEAD has no body to read an S3 code from: its status says it.
      fail: async (r) => {
        discard(r.body);
        return s3Error('HEAD', r.statusCode, '', o.url);
      },
    },
  );
  await res.body.dump();
  return { info: infoOf(res.headers, statedSize(res, 'HEAD', o.url)), headers: res.headers };
}

// ---- listing, removal, copy ------------------------------------------------------------------

/** A key as a URL path, as the native engine writes listed URLs (`url_key`). */
export function urlKey(key: string): string {
  return key
    .split('/')
    .map((seg) =>
      seg === '.'
        ? '%2E'
        : seg === '..'
          ? '%2E%2E'
          : seg.replace(/[\x00-\x1f\x7f-\uffff "#%<>?`{}\\^|[\]]/gu, (c) =>
              [...Buffer.from(c)]
                .map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`)
                .join(''),
            ),
    )
    .join('/');
}

/** A key S3 sent with `encoding-type=url` (form-encoded: `+` is a space). */
function decodeListed(v: unknown): string {
  const s = typeof v === 'string' ? v : String(v ?? '');
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

/** One page of a listing: its objects (key exactly as stored, size, ETag, time), and the next
 * page's token (none: the last page). */
export interface Page {
  objects: [key: string, size: number, etag?: string, lastModified?: string][];
  next?: string;
}

/**
 * Every object under `prefixUrl`, page by page as the caller iterates (`page` fetches the page
 * of `token`, none for the first, of the keys below `below`), as the native engine lists: the
 * prefix is a directory (`a/b` lists what is below `a/b/`), each key listed with its URL
 * (`url_key`). Every provider's listing goes through this.
 */
export async function* listPages(
  prefixUrl: string,
  page: (below: string, token: string | undefined) => Promise<Page>,
): AsyncGenerator<ListedObject> {
  const { key, base } = parseS3(prefixUrl);
  const trimmed = key.replace(/^\/+|\/+$/g, '');
  const below = trimmed ? `${trimmed}/` : '';
  let token: string | undefined;
  for (;;) {
    const p = await page(below, token);
    for (const [k, size, etag, lastModified] of p.objects) {
      yield {
        key: k,
        relative: k.startsWith(below) ? k.slice(below.length) : k,
        url: `${base}/${urlKey(k)}`,
        size,
        etag,
        lastModified: lastModified ? new Date(lastModified) : undefined,
        version: undefined,
      };
    }
    if (p.next === undefined) return;
    token = p.next;
  }
}

interface ListPage {
  ListBucketResult?: {
    IsTruncated?: string;
    NextContinuationToken?: string;
    Contents?: { Key?: string; Size?: string; ETag?: string; LastModified?: string }[];
  };
}

/**
 * Every object under `prefixUrl` (recursive, no delimiter), page by page as the caller
 * iterates (ListObjectsV2), keys exactly as stored. As the native engine: the prefix is a
 * directory, `a/b` lists what is below `a/b/`.
 */
export async function* s3List(
  prefixUrl: string,
  store: StoreOptions | undefined,
): AsyncGenerator<ListedObject> {
  const b = await resolveBucket(prefixUrl, store);
  yield* listPages(prefixUrl, async (below, token) => {
    const q: [string, string][] = [
      ['encoding-type', 'url'],
      ['list-type', '2'],
      ['prefix', below],
    ];
    if (token !== undefined) q.unshift(['continuation-token', token]);
    const res = await s3Send(b, { method: 'GET', what: 'ListObjectsV2', url: prefixUrl, query: q });
    const text = await bodyText(res, 64 << 20);
    let page: ListPage;
    try {
      page = xml.parse(text) as ListPage;
    } catch (e) {
      throw new StorageError(
        'Generic',
        `${displayUrl(prefixUrl)}: ListObjectsV2 answered what objget cannot read: ${(e as Error).message}`,
        { url: prefixUrl },
      );
    }
    const r = page.ListBucketResult;
    if (!r) {
      throw new StorageError(
        'Generic',
        `${displayUrl(prefixUrl)}: ListObjectsV2 answered what objget cannot read`,
        { url: prefixUrl },
      );
    }
    const objects: Page['objects'] = (r.Contents ?? []).map((c) => [
      decodeListed(c.Key),
      Number(c.Size ?? 0),
      c.ETag,
      c.LastModified,
    ]);
    if (r.IsTruncated !== 'true') return { objects };
    if (!r.NextContinuationToken) {
      throw new StorageError(
        'Generic',
        `${displayUrl(prefixUrl)}: ListObjectsV2 answered a truncated page without a token`,
        { url: prefixUrl },
      );
    }
    return { objects, next: r.NextContinuationToken };
  });
}

const escapeXml = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Remove objects: DeleteObjects per bucket, 1000 keys a request. A missing object is not an
 * error; any other failure of a key is that key's error.
 */
export async function s3Remove(urls: string[], store: StoreOptions | undefined): Promise<void> {
  const byBucket = new Map<string, { url: string; key: string }[]>();
  for (const url of urls) {
    const { bucket, key, base } = parseS3(url);
    if (!key) throw new StorageError('InvalidUrl', 'the URL names a bucket but no object', { url });
    const id = `${base}\0${bucket}`;
    byBucket.set(id, [...(byBucket.get(id) ?? []), { url, key }]);
  }
  for (const objects of byBucket.values()) {
    const b = await resolveBucket(objects[0]!.url, store);
    for (let i = 0; i < objects.length; i += 1000) {
      const batch = objects.slice(i, i + 1000);
      const body = Buffer.from(
        `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>${batch
          .map((o) => `<Object><Key>${escapeXml(o.key)}</Key></Object>`)
          .join('')}</Delete>`,
      );
      const md5 = createHash('md5').update(body).digest('base64');
      const res = await s3Send(b, {
        method: 'POST',
        what: 'DeleteObjects',
        url: batch[0]!.url,
        query: [['delete', '']],
        headers: { 'content-md5': md5, 'content-type': 'application/xml' },
        body,
      });
      const text = await bodyText(res);
      const doc = xml.parse(text) as {
        DeleteResult?: { Error?: { Key?: string; Code?: string }[] };
      };
      for (const e of doc.DeleteResult?.Error ?? []) {
        if (e.Code === 'NoSuchKey') continue;
        const failed = batch.find((o) => o.key === e.Key)?.url ?? batch[0]!.url;
        throw s3Error(
          'DeleteObjects',
          200,
          `<Error><Code>${escapeXml(e.Code ?? '')}</Code></Error>`,
          failed,
        );
      }
    }
  }
}

/** S3 answers some failures of CopyObject and CompleteMultipartUpload with a 200. */
function failedWith200(text: string): boolean {
  return /<Error>/.test(text.slice(0, 512));
}

/** The copy source header of an object: `/bucket/key`, the key encoded. */
const copySource = (o: S3Object): string => `/${o.bucket}/${encodeKey(o.key)}`;

/** Read a reply's XML, or the error S3 put in a 200. */
export async function answer(res: Response, what: string, url: string): Promise<unknown> {
  const text = await bodyText(res, 16 << 20);
  if (failedWith200(text)) throw s3Error(what, res.statusCode, text, url);
  try {
    return xml.parse(text) as unknown;
  } catch (e) {
    throw new StorageError(
      'Generic',
      `${displayUrl(url)}: ${what} answered what objget cannot read: ${(e as Error).message}`,
      { url },
    );
  }
}

/** Multipart uploads: create, complete (conditionally), abort. */
export async function createUpload(
  o: S3Object,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<string> {
  const res = await s3Send(o, {
    method: 'POST',
    what: 'CreateMultipartUpload',
    url: o.url,
    key: o.key,
    query: [['uploads', '']],
    headers,
    signal,
  });
  const doc = (await answer(res, 'CreateMultipartUpload', o.url)) as {
    InitiateMultipartUploadResult?: { UploadId?: string };
  };
  const id = doc.InitiateMultipartUploadResult?.UploadId;
  if (!id) {
    throw new StorageError(
      'Generic',
      `${displayUrl(o.url)}: CreateMultipartUpload gave no UploadId`,
      {
        url: o.url,
      },
    );
  }
  return id;
}

/** A request on the multipart upload `uploadId` of `o` (completing or aborting it). */
function onUpload(
  o: S3Object,
  uploadId: string,
  method: Method,
  what: string,
  extra: Pick<S3Request, 'headers' | 'body' | 'resending'> = {},
): Promise<Response> {
  const query: [string, string][] = [['uploadId', uploadId]];
  return s3Send(o, { method, what, url: o.url, key: o.key, query, ...extra });
}

export interface DonePart {
  etag: string;
  crc64nvme?: string;
}

/**
 * Complete a multipart upload; with `ifNotExists`, conditional (If-None-Match: *): an object
 * already there is `AlreadyExists`. A completion whose reply was lost is retried, and the retry
 * finds the upload gone (NoSuchUpload), or, conditional, the object in place (412): only after
 * such a retry, that object is taken as this upload's when it holds the CRC64NVME of the bytes
 * sent (`crc64nvme`), so the upload succeeds as on the native engine.
 */
export async function completeUpload(
  o: S3Object,
  uploadId: string,
  parts: DonePart[],
  ifNotExists: boolean,
  headers: Record<string, string> = {},
  crc64nvme?: string,
): Promise<{ etag?: string; version?: string }> {
  const body = Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>${parts
      .map(
        (p, i) =>
          `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(p.etag)}</ETag>${
            p.crc64nvme ? `<ChecksumCRC64NVME>${p.crc64nvme}</ChecksumCRC64NVME>` : ''
          }</Part>`,
      )
      .join('')}</CompleteMultipartUpload>`,
  );
  const h = {
    ...headers,
    'content-type': 'application/xml',
    ...(ifNotExists ? { 'if-none-match': '*' } : {}),
  };
  let resent = false;
  try {
    const res = await onUpload(o, uploadId, 'POST', 'CompleteMultipartUpload', {
      headers: h,
      body,
      resending: () => (resent = true),
    });
    const doc = (await answer(res, 'CompleteMultipartUpload', o.url)) as {
      CompleteMultipartUploadResult?: { ETag?: string };
    };
    return {
      etag: doc.CompleteMultipartUploadResult?.ETag,
      version: one(res.headers['x-amz-version-id']),
    };
  } catch (e) {
    // A lost reply's retry finds the upload gone, or (conditional) the object it made there.
    const retried =
      resent &&
      e instanceof StorageError &&
      (/NoSuchUpload/.test(e.message) || (ifNotExists && e.code === 'Precondition'));
    if (crc64nvme && retried) {
      const placed = await s3Head(o).catch(() => undefined);
      if (placed && one(placed.headers['x-amz-checksum-crc64nvme']) === crc64nvme) {
        return { etag: placed.info.etag, version: placed.info.version };
      }
    }
    throw ifNotExists ? conditional(e, o.url) : e;
  }
}

/** Abort a multipart upload, whatever signal the call had (nothing may be left behind). */
export async function abortUpload(o: S3Object, uploadId: string): Promise<void> {
  const res = await onUpload(o, uploadId, 'DELETE', 'AbortMultipartUpload');
  await res.body.dump();
}

/** A conditional write refused because the object exists: `AlreadyExists`, as the native engine. */
export function conditional(e: unknown, url: string): unknown {
  if (
    e instanceof StorageError &&
    (e.code === 'Precondition' || /ConditionalRequestConflict|PreconditionFailed/.test(e.message))
  ) {
    return new StorageError('AlreadyExists', `${displayUrl(url)}: the object already exists`, {
      url,
      cause: e,
    });
  }
  return e;
}

/** Parts of at most 5 GiB: what UploadPartCopy copies at once. */
const COPY_PART = UPLOAD_LIMITS.maxPart;

/**
 * Server-side copy within one bucket. With `ifNotExists`, as object_store's `multipart`
 * mechanism: the source is copied into a multipart upload (UploadPartCopy) completed with
 * If-None-Match, so an object already at `to` is `AlreadyExists` and nothing is staged.
 */
export async function s3Copy(
  from: string,
  to: string,
  ifNotExists: boolean,
  store: StoreOptions | undefined,
): Promise<void> {
  const a = parseS3(from);
  const b = parseS3(to);
  if (a.base !== b.base) {
    throw new StorageError(
      'InvalidArgument',
      'copy works within one store (same scheme and bucket/container/host); download and upload to move between stores',
    );
  }
  const src = await resolveObject(from, store);
  const dst = await resolveObject(to, store);
  if (!ifNotExists) {
    const res = await s3Send(dst, {
      method: 'PUT',
      what: 'CopyObject',
      url: to,
      key: dst.key,
      headers: { 'x-amz-copy-source': copySource(src) },
    });
    await answer(res, 'CopyObject', to);
    return;
  }
  const { info } = await s3Head(src);
  const uploadId = await createUpload(dst, {});
  try {
    const parts: DonePart[] = [];
    const n = Math.max(1, Math.ceil(info.size / COPY_PART));
    for (let i = 0; i < n; i++) {
      const headers: Record<string, string> = { 'x-amz-copy-source': copySource(src) };
      if (info.etag) headers['x-amz-copy-source-if-match'] = info.etag;
      if (n > 1) {
        const start = i * COPY_PART;
        headers['x-amz-copy-source-range'] =
          `bytes=${start}-${Math.min(info.size, start + COPY_PART) - 1}`;
      }
      const res = await s3Send(dst, {
        method: 'PUT',
        what: 'UploadPartCopy',
        url: to,
        key: dst.key,
        query: [
          ['partNumber', String(i + 1)],
          ['uploadId', uploadId],
        ],
        headers,
      });
      const doc = (await answer(res, 'UploadPartCopy', to)) as {
        CopyPartResult?: { ETag?: string };
      };
      parts.push({ etag: doc.CopyPartResult?.ETag ?? '' });
    }
    await completeUpload(dst, uploadId, parts, true);
  } catch (e) {
    await abortUpload(dst, uploadId).catch(() => undefined);
    throw e;
  }
}
