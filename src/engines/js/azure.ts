// Azure Blob Storage for the JS engine: where a container is (`az://`, `azure://`,
// `abfs[s]://container@account.dfs.core.windows.net`, the account, endpoint and emulator
// settings of the store's `config` and the `AZURE_*` environment, as object_store's
// MicrosoftAzureBuilder reads them), how its requests are authorised (azure-auth.ts), Azure's
// errors, and the calls that move no object bytes (head, list, remove, copy). Reads are
// read.ts's, uploads azure-upload.ts's.
import { XMLParser } from 'fast-xml-parser';
import { StorageError, type ErrorCode } from '../../errors.js';
import { displayUrl, registerSecret } from '../../redact.js';
import type { ListedObject, ObjectInfo, StoreOptions } from '../../types.js';
import { azureAuth } from './azure-auth.js';
import type { Located, Provider } from './cloud.js';
import { codeOf, discard, one, send, statedSize, type Response, type Via } from './http.js';
import { bodyText, conditional, encodeKey, infoOf, parseS3, urlKey, type S3Request } from './s3.js';

/** The schemes the JS engine reads as Azure Blob Storage (those the native engine takes). */
export const AZURE_SCHEMES = ['az', 'azure', 'abfs', 'abfss'];

/** object_store's names of the Azure settings (aliases → one name). */
const KEYS: Record<string, string> = {
  azure_storage_account_key: 'access_key',
  azure_storage_access_key: 'access_key',
  azure_storage_master_key: 'access_key',
  master_key: 'access_key',
  account_key: 'access_key',
  access_key: 'access_key',
  azure_storage_account_name: 'account_name',
  account_name: 'account_name',
  azure_storage_client_id: 'client_id',
  azure_client_id: 'client_id',
  client_id: 'client_id',
  azure_storage_client_secret: 'client_secret',
  azure_client_secret: 'client_secret',
  client_secret: 'client_secret',
  azure_storage_tenant_id: 'tenant_id',
  azure_storage_authority_id: 'tenant_id',
  azure_tenant_id: 'tenant_id',
  azure_authority_id: 'tenant_id',
  tenant_id: 'tenant_id',
  authority_id: 'tenant_id',
  azure_storage_authority_host: 'authority_host',
  azure_authority_host: 'authority_host',
  authority_host: 'authority_host',
  azure_storage_sas_key: 'sas_key',
  azure_storage_sas_token: 'sas_key',
  sas_key: 'sas_key',
  sas_token: 'sas_key',
  azure_storage_token: 'token',
  bearer_token: 'token',
  token: 'token',
  azure_storage_use_emulator: 'use_emulator',
  use_emulator: 'use_emulator',
  azure_storage_endpoint: 'endpoint',
  azure_endpoint: 'endpoint',
  endpoint: 'endpoint',
  azure_msi_endpoint: 'msi_endpoint',
  azure_identity_endpoint: 'msi_endpoint',
  identity_endpoint: 'msi_endpoint',
  msi_endpoint: 'msi_endpoint',
  azure_object_id: 'object_id',
  object_id: 'object_id',
  azure_msi_resource_id: 'msi_resource_id',
  msi_resource_id: 'msi_resource_id',
  azure_federated_token_file: 'federated_token_file',
  federated_token_file: 'federated_token_file',
  azure_use_fabric_endpoint: 'use_fabric_endpoint',
  use_fabric_endpoint: 'use_fabric_endpoint',
  azure_use_azure_cli: 'use_azure_cli',
  use_azure_cli: 'use_azure_cli',
  azure_skip_signature: 'skip_signature',
  skip_signature: 'skip_signature',
  azure_container_name: 'ignored',
  container_name: 'ignored',
  azure_disable_tagging: 'ignored',
  disable_tagging: 'ignored',
  azure_credential_type: 'credential_type',
  credential_type: 'credential_type',
  azure_allow_http: 'allow_http',
  allow_http: 'allow_http',
};

/** object_store's HTTP client settings (`azure_` prefix optional): the JS engine's connections
 * are undici's, sized and timed by the store options. */
const CLIENT_KEYS = new Set([
  'connect_timeout',
  'default_content_type',
  'disable_system_certificates',
  'http1_only',
  'http2_only',
  'http2_keep_alive_interval',
  'http2_keep_alive_timeout',
  'http2_keep_alive_while_idle',
  'http2_max_frame_size',
  'pool_idle_timeout',
  'pool_max_idle_per_host',
  'randomize_addresses',
  'read_timeout',
  'timeout',
  'user_agent',
]);

/** Settings the native engine takes that the JS engine's Azure requests do not carry (their
 * names without the `azure_` or `azure_storage_` prefix), by what they configure. */
const NATIVE_ONLY = new Map(
  (
    [
      ['customer-provided encryption keys', ['encryption_key']],
      [
        'Microsoft Fabric tokens',
        [
          'fabric_token_service_url',
          'fabric_workload_host',
          'fabric_session_token',
          'fabric_cluster_identifier',
        ],
      ],
      ['a proxy', ['proxy_url', 'proxy_ca_certificate', 'proxy_excludes']],
    ] as const
  ).flatMap(([what, names]) => names.map((n): [string, string] => [n, what])),
);

const isTrue = (v: string | undefined): boolean =>
  ['1', 'true', 'yes', 'on'].includes(v?.trim().toLowerCase() ?? '');

/** The canonical name of a setting, `ignored`, or why it is refused. */
function keyOf(name: string, url: string, explicit: boolean): string | undefined {
  const bare = name.replace(/^azure_(storage_)?/, '');
  const nativeOnly = NATIVE_ONLY.get(bare);
  if (nativeOnly !== undefined && explicit) {
    throw new StorageError(
      'NotSupported',
      `the JS engine's Azure requests do not carry ${nativeOnly} ('${name}'); the native engine does`,
      { url },
    );
  }
  const k = KEYS[name] ?? (CLIENT_KEYS.has(name.replace(/^azure_/, '')) ? 'ignored' : undefined);
  if (!k && explicit) {
    throw new StorageError('InvalidArgument', `unknown configuration key '${name}' for az stores`, {
      url,
    });
  }
  return k;
}

/** The settings of an Azure store: the `AZURE_*` environment, then the store's `config`. */
function settings(store: StoreOptions | undefined, url: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('AZURE_') || value === undefined) continue;
    const k = keyOf(name.toLowerCase(), url, false);
    if (k && k !== 'ignored') out.set(k, value);
  }
  for (const [name, value] of Object.entries(store?.config ?? {})) {
    const k = keyOf(name, url, true)!;
    if (k !== 'ignored') out.set(k, value);
  }
  for (const k of ['access_key', 'client_secret', 'sas_key', 'token']) registerSecret(out.get(k));
  return out;
}

/** An Azure URL: its container, the account it names (abfs), its key (decoded), its store URL. */
export function parseAzure(url: string): {
  container: string;
  account?: string;
  host?: string;
  key: string;
  base: string;
} {
  // The same URL rules as S3's (the host names the container, the key percent-decoded).
  const { bucket, key } = parseS3(url);
  const u = new URL(url);
  const scheme = u.protocol.slice(0, -1).toLowerCase();
  if (scheme === 'az' || scheme === 'azure') {
    return { container: bucket, key, base: `az://${bucket}` };
  }
  if (!u.username) {
    throw new StorageError(
      'InvalidUrl',
      'abfs URLs name the container as container@account.dfs.core.windows.net',
      { url },
    );
  }
  const container = decodeURIComponent(u.username);
  const host = u.host.toLowerCase();
  const m = /^([^.]+)\.(dfs|blob)\.(core\.windows\.net|fabric\.microsoft\.com)$/.exec(host);
  return {
    container,
    account: m?.[1],
    host: m ? `${m[1]}.blob.${m[3]}` : undefined,
    key,
    base: `${scheme}://${u.username}@${u.host}`,
  };
}

/** One Azure container, resolved for one call: where its blobs are, how requests are made. */
export interface Container {
  /** `https://account.blob.core.windows.net/container` (or the endpoint's, the emulator's). */
  endpoint: string;
  store: StoreOptions | undefined;
  sign: Via['sign'];
  /** A SAS token's query pairs, carried by every request. */
  sas: [string, string][];
}

/** A located blob: its container, its key exactly as stored, the caller's URL. */
export interface Blob extends Container {
  key: string;
  url: string;
}

/**
 * Where the container of `url` is and how its requests are authorised, as object_store
 * resolves them: the emulator (`use_emulator`: AZURITE_BLOB_STORAGE_URL or
 * http://127.0.0.1:10000, path-style under the account); else the endpoint given, or the
 * account's `https://account.blob.core.windows.net` (`.blob.fabric.microsoft.com` with
 * `use_fabric_endpoint`).
 */
export function resolveContainer(url: string, store: StoreOptions | undefined): Container {
  const p = parseAzure(url);
  const s = settings(store, url);
  const emulator = isTrue(s.get('use_emulator'));
  const account = p.account ?? s.get('account_name') ?? (emulator ? 'devstoreaccount1' : '');
  if (!account) {
    throw new StorageError(
      'InvalidArgument',
      'no Azure storage account: set azure_storage_account_name (or AZURE_STORAGE_ACCOUNT_NAME), or name it in an abfs URL',
      { url },
    );
  }
  const service = emulator
    ? `${(process.env.AZURITE_BLOB_STORAGE_URL || 'http://127.0.0.1:10000').replace(/\/+$/, '')}/${account}`
    : (s.get('endpoint')?.trim().replace(/\/+$/, '') ??
      (p.host
        ? `https://${p.host}`
        : isTrue(s.get('use_fabric_endpoint'))
          ? `https://${account}.blob.fabric.microsoft.com`
          : `https://${account}.blob.core.windows.net`));
  if (!/^https?:\/\//i.test(service)) {
    throw new StorageError('InvalidArgument', 'the Azure endpoint must be an http(s) URL', { url });
  }
  // Plain http is allowed by default where the endpoint is http (and always to the emulator):
  // only an explicit allowHttp: false refuses it.
  if (!emulator && store?.allowHttp === false && /^http:\/\//i.test(service)) {
    const why = 'the Azure endpoint is plain http:// and allowHttp is false';
    throw new StorageError('InvalidArgument', why, { url });
  }
  const skip = store?.skipSignature === true || isTrue(s.get('skip_signature'));
  const auth = azureAuth(s, account, emulator, store?.credentials, skip, url);
  return {
    endpoint: `${service}/${encodeKey(p.container)}`,
    store,
    sign: auth.sign,
    sas: auth.sas,
  };
}

export function resolveBlob(url: string, store: StoreOptions | undefined): Blob {
  const { key } = parseAzure(url);
  if (!key) {
    throw new StorageError('InvalidUrl', 'the URL names a bucket or host but no object', { url });
  }
  return { ...resolveContainer(url, store), key, url };
}

/** The URL of a request: the container's (no key) or a blob's, the query, the SAS after it. */
export function href(c: Container, key?: string, query: [string, string][] = []): string {
  const path = key === undefined ? c.endpoint : `${c.endpoint}/${encodeKey(key)}`;
  const q = new URLSearchParams([...query, ...c.sas]).toString();
  return q ? `${path}?${q}` : path;
}

/** The error code Azure names (the x-ms-error-code header, else the body's `<Code>`). */
function azureCode(res: Response, text: string): string | undefined {
  const code = one(res.headers['x-ms-error-code']) ?? /<Code>([^<]{1,64})<\/Code>/.exec(text)?.[1];
  return code && /^[A-Za-z0-9.]{1,64}$/.test(code) ? code : undefined;
}

/** The code of an Azure error: by its status, as the native engine, a few codes more exactly. */
function codeFor(status: number, code: string | undefined): ErrorCode {
  if (code === 'BlobNotFound' || code === 'ContainerNotFound') return 'NotFound';
  if (code === 'BlobAlreadyExists') return 'AlreadyExists';
  return codeOf(status);
}

/** A typed error for an Azure reply that failed (never its body: it may echo a signature). */
export async function azureError(what: string, res: Response, url: string): Promise<StorageError> {
  const text = res.statusCode === 304 ? '' : await bodyText(res, 64 << 10).catch(() => '');
  const code = azureCode(res, text);
  return new StorageError(
    codeFor(res.statusCode, code),
    `${displayUrl(url)}: ${what}: HTTP ${res.statusCode}${code ? ` ${code}` : ''}`,
    { url },
  );
}

/** How requests of `c` travel: authorised, failures read from Azure's reply, naming `url`. */
export function via(c: Container, url: string, what: string, body?: Buffer): Via {
  return { sign: c.sign, shown: url, body, fail: (res) => azureError(what, res, url) };
}

/** One authorised request to the container. */
export function azureSend(c: Container, r: S3Request): Promise<Response> {
  const headers = { ...r.headers, ...(r.body ? { 'content-length': String(r.body.length) } : {}) };
  return send(href(c, r.key, r.query), r.method, headers, c.store, r.signal, {
    ...via(c, r.url, r.what, r.body),
  });
}

/** Get Blob Properties: size, ETag and the stored Content-MD5; the reply's headers are kept. */
export async function azureHead(
  b: Blob,
): Promise<{ info: ObjectInfo; headers: Response['headers'] }> {
  const res = await send(href(b, b.key), 'HEAD', {}, b.store, undefined, {
    ...via(b, b.url, 'HEAD'),
    // A HEAD has no body: its status (and x-ms-error-code) say it.
    fail: async (r) => {
      discard(r.body);
      return new StorageError(
        codeFor(r.statusCode, azureCode(r, '')),
        `${displayUrl(b.url)}: HEAD: HTTP ${r.statusCode}`,
        { url: b.url },
      );
    },
  });
  await res.body.dump();
  return { info: azureInfo(res.headers, statedSize(res, 'HEAD', b.url)), headers: res.headers };
}

/** A blob's size, ETag, time and version from a reply's headers. */
export function azureInfo(h: Response['headers'], size: number): ObjectInfo {
  return { ...infoOf(h, size), version: one(h['x-ms-version-id']) };
}

/** A blob as read.ts reads it. */
export function located(b: Blob): Located {
  const { url, store } = b;
  return { url, store, href: href(b, b.key), via: (what) => via(b, url, what) };
}

export async function head(url: string, store: StoreOptions | undefined): Promise<ObjectInfo> {
  return (await azureHead(resolveBlob(url, store))).info;
}

// ---- listing, removal, copy ------------------------------------------------------------------

const listXml = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
  isArray: (name) => name === 'Blob',
});

type Name = string | { '#text'?: string; '@Encoded'?: string };

interface ListPage {
  EnumerationResults?: {
    Blobs?: {
      Blob?: {
        Name?: Name;
        Properties?: { 'Content-Length'?: string; Etag?: string; 'Last-Modified'?: string };
      }[];
    };
    NextMarker?: string;
  };
}

/** A listed blob name: as sent, or percent-decoded where Azure says it encoded it. */
function nameOf(n: Name | undefined): string {
  if (typeof n === 'string') return n;
  const text = n?.['#text'] ?? '';
  return n?.['@Encoded'] === 'true' ? decodeURIComponent(text) : text;
}

/** A List Blobs page's results; `Generic` for a body that is not one. */
function pageOf(text: string, url: string): NonNullable<ListPage['EnumerationResults']> {
  const parse = (): ListPage | undefined => {
    try {
      return listXml.parse(text) as ListPage;
    } catch {
      return undefined;
    }
  };
  const results = parse()?.EnumerationResults;
  if (results) return results;
  throw new StorageError(
    'Generic',
    `${displayUrl(url)}: List Blobs answered what objget cannot read`,
    {
      url,
    },
  );
}

/**
 * Every blob under `prefixUrl` (recursive, no delimiter), page by page (List Blobs with its
 * marker), names exactly as stored. As the native engine: the prefix is a directory.
 */
export async function* list(
  prefixUrl: string,
  store: StoreOptions | undefined,
): AsyncGenerator<ListedObject> {
  const { key, base } = parseAzure(prefixUrl);
  const c = resolveContainer(prefixUrl, store);
  const trimmed = key.replace(/^\/+|\/+$/g, '');
  const below = trimmed ? `${trimmed}/` : '';
  let marker = '';
  for (;;) {
    const q: [string, string][] = [
      ['restype', 'container'],
      ['comp', 'list'],
      ['prefix', below],
    ];
    if (marker) q.push(['marker', marker]);
    const res = await azureSend(c, { method: 'GET', what: 'List Blobs', url: prefixUrl, query: q });
    const r = pageOf(await bodyText(res, 64 << 20), prefixUrl);
    for (const blob of r.Blobs?.Blob ?? []) {
      const k = nameOf(blob.Name);
      const p = blob.Properties ?? {};
      yield {
        key: k,
        relative: k.startsWith(below) ? k.slice(below.length) : k,
        url: `${base}/${urlKey(k)}`,
        size: Number(p['Content-Length'] ?? 0),
        etag: p.Etag,
        lastModified: p['Last-Modified'] ? new Date(p['Last-Modified']) : undefined,
        version: undefined,
      };
    }
    marker = typeof r.NextMarker === 'string' ? r.NextMarker : '';
    if (!marker) return;
  }
}

/** Blobs removed at once. */
const REMOVING = 16;

/** Delete Blob for each URL (a missing blob is not an error), `REMOVING` at a time. */
export async function remove(urls: string[], store: StoreOptions | undefined): Promise<void> {
  const blobs = urls.map((u) => resolveBlob(u, store));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < blobs.length) {
      const b = blobs[next++]!;
      try {
        const res = await azureSend(b, {
          method: 'DELETE',
          what: 'Delete Blob',
          url: b.url,
          key: b.key,
        });
        await res.body.dump();
      } catch (e) {
        if (!(e instanceof StorageError && e.code === 'NotFound')) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(REMOVING, blobs.length) }, worker));
}

/** How long a pending copy is waited for, between polls. */
const COPY_POLL_MS = 200;

/**
 * Copy Blob within one container (a same-account copy Azure completes at once; a pending one is
 * waited for). With `ifNotExists`, If-None-Match: * makes it atomic: a blob already at `to` is
 * `AlreadyExists`.
 */
export const copy: NonNullable<Provider['copy']> = async (from, to, ifNotExists, store) => {
  if (parseAzure(from).base !== parseAzure(to).base) {
    const why = 'copy works within one store (same scheme and bucket/container/host)';
    throw new StorageError('InvalidArgument', `${why}; download and upload to move between stores`);
  }
  const [src, dst] = [resolveBlob(from, store), resolveBlob(to, store)];
  const res = await azureSend(dst, {
    method: 'PUT',
    what: 'Copy Blob',
    url: to,
    key: dst.key,
    headers: {
      'x-ms-copy-source': href(src, src.key),
      ...(ifNotExists ? { 'if-none-match': '*' } : {}),
    },
  }).catch((e: unknown) => {
    throw ifNotExists ? conditional(e, to) : e;
  });
  await res.body.dump();
  let status = one(res.headers['x-ms-copy-status']);
  while (status === 'pending') {
    await new Promise((r) => setTimeout(r, COPY_POLL_MS));
    status = one((await azureHead(dst)).headers['x-ms-copy-status']);
  }
  if (status !== undefined && status !== 'success') {
    throw new StorageError('Generic', `${displayUrl(to)}: Copy Blob ended ${status}`, { url: to });
  }
};
