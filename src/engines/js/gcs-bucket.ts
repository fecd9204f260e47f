// Where a GCS bucket is and how its requests travel, for the JS engine: the store's `config`
// over the `GOOGLE_*` environment (object_store's GoogleConfigKey names), the endpoint
// (`google_base_url`, an emulator key's `gcs_base_url`, else storage.googleapis.com), a bearer
// token from gcs-auth.ts, and GCS's failures read as typed errors.
import { StorageError } from '../../errors.js';
import { displayUrl } from '../../redact.js';
import type { StoreOptions } from '../../types.js';
import { gcsToken, serviceAccount, type GcsAuth } from './gcs-auth.js';
import { codeOf, send, type Response, type Via } from './http.js';
import { bodyText, errorCodeOf, keyed, parseS3, settingsOf, type S3Request } from './s3.js';

/** The schemes the JS engine reads as GCS. */
export const GCS_SCHEMES = ['gs'];

const DEFAULT_BASE = 'https://storage.googleapis.com';

/** object_store's names of the GCS settings (aliases → one name). */
const KEYS: Record<string, string> = {
  google_service_account: 'key_file',
  service_account: 'key_file',
  google_service_account_path: 'key_file',
  service_account_path: 'key_file',
  google_service_account_key: 'key_json',
  service_account_key: 'key_json',
  google_bucket: 'ignored',
  google_bucket_name: 'ignored',
  bucket: 'ignored',
  bucket_name: 'ignored',
  google_base_url: 'base_url',
  base_url: 'base_url',
  google_application_credentials: 'application_credentials',
  application_credentials: 'application_credentials',
  google_bearer_token: 'bearer',
  bearer_token: 'bearer',
  google_skip_signature: 'skip',
  skip_signature: 'skip',
};

/** object_store's HTTP client settings (with or without `google_`): the JS engine's connections
 * are undici's, sized and timed by the store options; `allow_http` is read. */
const CLIENT = new Set(
  'allow_http connect_timeout default_content_type http1_only http2_only http2_keep_alive_interval http2_keep_alive_timeout http2_keep_alive_while_idle http2_max_frame_size pool_idle_timeout pool_max_idle_per_host randomize_addresses timeout user_agent'.split(
    ' ',
  ),
);
const PROXY = new Set(['proxy_url', 'proxy_ca_certificate', 'proxy_excludes']);

const isTrue = (v: string | undefined): boolean => v?.trim().toLowerCase() === 'true';

/** One setting's name → its meaning, or why it is refused. */
function meaning(name: string, url: string): string | undefined {
  const bare = name.replace(/^google_/, '');
  if (KEYS[name]) return KEYS[name];
  if (PROXY.has(bare)) {
    throw new StorageError(
      'NotSupported',
      `the JS engine's GCS requests do not go through a proxy ('${name}'); the native engine's do`,
      { url },
    );
  }
  if (CLIENT.has(bare)) return bare === 'allow_http' ? 'allow_http' : 'ignored';
  return undefined;
}

/** The settings of a GCS store: the `GOOGLE_*` environment, then the store's `config` over it. */
const settings = (store: StoreOptions | undefined, url: string): Map<string, string> =>
  settingsOf('GOOGLE_', KEYS, (name) => meaning(name, url), 'gs', store, url);

/** One GCS bucket, resolved for one call. */
export interface Bucket {
  bucket: string;
  /** The API's root: `https://storage.googleapis.com`, or an emulator's. */
  base: string;
  store: StoreOptions | undefined;
  sign: NonNullable<Via['sign']>;
}

/** A located GCS object: its bucket, its name exactly as stored, the caller's URL. */
export interface GcsObject extends Bucket {
  key: string;
  url: string;
}

/** A name as object_store puts it in a path: every byte but ASCII letters and digits escaped
 * (so `/`, `.` and `..` stay inside the one segment). */
export function encodeName(name: string): string {
  return encodeURIComponent(name).replace(
    /[-_.!~*'()]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export async function resolveBucket(url: string, store: StoreOptions | undefined): Promise<Bucket> {
  const { bucket } = parseS3(url);
  const s = settings(store, url);
  const auth: GcsAuth = {
    skip: store?.skipSignature === true || isTrue(s.get('skip')),
    keyFile: s.get('key_file') || undefined,
    keyJson: s.get('key_json') || undefined,
    applicationCredentials: s.get('application_credentials') || undefined,
    bearer: s.get('bearer') || undefined,
  };
  const key = await serviceAccount(auth, url);
  const base = (s.get('base_url') || key?.gcs_base_url || DEFAULT_BASE).trim().replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/i.test(base)) {
    throw new StorageError('InvalidArgument', 'the GCS base URL must be an http(s) URL', { url });
  }
  const allowHttp =
    store?.allowHttp ?? (isTrue(s.get('allow_http')) || base.toLowerCase().startsWith('http://'));
  if (!allowHttp && base.toLowerCase().startsWith('http://')) {
    throw new StorageError(
      'InvalidArgument',
      'the GCS base URL is plain http:// and allowHttp is false',
      { url },
    );
  }
  const token = await gcsToken(auth, key, store, url, bucket);
  const sign: Bucket['sign'] = async (_method, _target, headers) => {
    const t = await token();
    return t ? { ...headers, authorization: `Bearer ${t}` } : headers;
  };
  return { bucket, base, store, sign };
}

export const resolveObject = (url: string, store: StoreOptions | undefined): Promise<GcsObject> =>
  keyed(url, store, resolveBucket);

/** The XML API's URL of an object (where object_store reads it): HEAD and ranged GETs. */
export const objectHref = (o: GcsObject): string =>
  `${o.base}/${encodeName(o.bucket)}/${encodeName(o.key)}`;

/** The JSON API's URL of the bucket's objects (`/o`), or of one object (`/o/name`). */
export const jsonHref = (b: Bucket, key?: string): string =>
  `${b.base}/storage/v1/b/${encodeName(b.bucket)}/o${key === undefined ? '' : `/${encodeName(key)}`}`;

/** The JSON API's upload URL of the bucket. */
export const uploadHref = (b: Bucket): string =>
  `${b.base}/upload/storage/v1/b/${encodeName(b.bucket)}/o`;

/** GCS's short reason for a failure: JSON `errors[0].reason`, or the XML `<Code>` (never the
 * message, which may echo what was sent). */
function reasonOf(text: string): string | undefined {
  let reason: unknown;
  try {
    reason = (JSON.parse(text) as { error?: { errors?: { reason?: unknown }[] } }).error
      ?.errors?.[0]?.reason;
  } catch {
    reason = errorCodeOf(text);
  }
  return typeof reason === 'string' && /^[A-Za-z0-9.]{1,64}$/.test(reason) ? reason : undefined;
}

/** GCS's refusal of uploaded bytes whose CRC32C or MD5 does not match the one sent with them. */
const MISMATCH = /doesn't match calculated (CRC32C|MD5)/i;

/** A typed error for a GCS reply that failed: `what` failed, with the status and GCS's reason. */
export function gcsError(what: string, status: number, text: string, url: string): StorageError {
  const reason = reasonOf(text);
  const shown = `${displayUrl(url)}: ${what}: HTTP ${status}${reason ? ` ${reason}` : ''}`;
  if (status === 400 && MISMATCH.test(text.slice(0, 4096))) {
    return new StorageError('ChecksumMismatch', shown, { url });
  }
  return new StorageError(codeOf(status), shown, { url });
}

/** How GCS requests of `b` travel: with its token, failures read from GCS's reply. */
export function via(b: Bucket, url: string, what: string, body?: Buffer): Via {
  const fail = async (res: Response): Promise<StorageError> =>
    gcsError(what, res.statusCode, await bodyText(res), url);
  return { sign: b.sign, shown: url, body, fail };
}

/** One request to GCS: as an S3 one, but to a whole URL (`href`), not a key. */
export type GcsRequest = Omit<S3Request, 'key' | 'query' | 'resending'> & { href: string };

export function gcsSend(b: Bucket, r: GcsRequest): Promise<Response> {
  return send(r.href, r.method, r.headers ?? {}, b.store, r.signal, via(b, r.url, r.what, r.body));
}

/** A JSON reply, read (at most 16 MiB). */
export async function answer(res: Response, what: string, url: string): Promise<unknown> {
  const text = await bodyText(res, 16 << 20);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StorageError(
      'Generic',
      `${displayUrl(url)}: ${what} answered what objget cannot read`,
      {
        url,
      },
    );
  }
}
