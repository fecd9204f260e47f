// How the JS engine's Azure requests are authorised, from the same sources as the native engine
// (object_store's MicrosoftAzureBuilder): Shared Key (the account key), a SAS token, a bearer
// token (static, from `store.credentials`, or from Entra ID through @azure/identity, an optional
// package imported only when a store is configured for it), or nothing (skipSignature).
//
// Shared Key is canonicalised here (about forty lines, checked by Azurite, which verifies every
// signature): the well-kept implementations (@azure/storage-blob's StorageSharedKeyCredential,
// @azure/storage-common's policy) sign only their own core-rest-pipeline request objects and
// bring ~30 MB of packages with them, which an optional fallback engine should not install.
import { createHmac } from 'node:crypto';
import { StorageError } from '../../errors.js';
import { registerSecret, scrub } from '../../redact.js';
import type { CredentialsFunction } from '../../types.js';
import { callUser } from '../credentials.js';
import type { Method, Sign } from './http.js';

/** The service version the requests speak (object_store's). */
export const AZURE_VERSION = '2023-11-03';

/** The settings of an Azure store that say how it authorises (azure.ts reads them). */
export type AzureSettings = Map<string, string>;

const isTrue = (v: string | undefined): boolean =>
  ['1', 'true', 'yes', 'on'].includes(v?.trim().toLowerCase() ?? '');

/** A SAS token (`sv=…&sig=…`, a leading `?` allowed) as its query pairs, decoded. */
export function sasPairs(sas: string, url: string): [string, string][] {
  try {
    return [...new URLSearchParams(sas.trim().replace(/^\?/, ''))].filter(([k]) => k !== '');
  } catch {
    throw new StorageError('InvalidArgument', 'the Azure SAS token cannot be read', { url });
  }
}

/** The headers Shared Key signs in order (the standard headers of its string-to-sign). */
const SIGNED = [
  'content-encoding',
  'content-language',
  'content-length',
  'content-md5',
  'content-type',
  'date',
  'if-modified-since',
  'if-match',
  'if-none-match',
  'if-unmodified-since',
  'range',
];

/**
 * The Shared Key string-to-sign of a request (learn.microsoft.com/rest/api/storageservices/
 * authorize-with-shared-key), as object_store builds it: the standard headers (Content-Length
 * empty when 0), the `x-ms-` headers sorted, then `/account/path` and the query parameters
 * sorted, their values decoded.
 */
export function stringToSign(
  method: Method,
  target: URL,
  headers: Record<string, string>,
  account: string,
): string {
  const h = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const standard = SIGNED.map((k) => {
    const v = h.get(k) ?? '';
    return k === 'content-length' && v === '0' ? '' : v;
  });
  const ms = [...h.keys()]
    .filter((k) => k.startsWith('x-ms-'))
    .sort()
    .map((k) => `${k}:${h.get(k)!.trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const params = new Map<string, string[]>();
  for (const [k, v] of target.searchParams) {
    const name = k.toLowerCase();
    params.set(name, [...(params.get(name) ?? []), v]);
  }
  const query = [...params.keys()]
    .sort()
    .map((k) => `\n${k}:${params.get(k)!.sort().join(',')}`)
    .join('');
  return `${method}\n${standard.join('\n')}\n${ms}/${account}${target.pathname}${query}`;
}

/** A bearer token and when it stops working. */
interface Token {
  token: string;
  expiresAtMs?: number;
}

/** A token is asked for again when it is this close to its expiration (as the native engine). */
const RENEW_MS = 5 * 60_000;

/** A source of bearer tokens, cached until near their expiration. */
function renewing(fetch: () => Promise<Token>): () => Promise<string> {
  let held: Promise<Token> | undefined;
  return async () => {
    const now = Date.now();
    const h = held && (await held.catch(() => undefined));
    if (!h || (h.expiresAtMs !== undefined && h.expiresAtMs - now <= RENEW_MS)) {
      held = fetch();
      held.catch(() => (held = undefined));
    }
    return (await held!).token;
  };
}

const fromFunctions = new WeakMap<CredentialsFunction, () => Promise<string>>();

/** The caller's `store.credentials`, asked for an Azure bearer token. */
function fromFunction(fn: CredentialsFunction, url: string): () => Promise<string> {
  let got = fromFunctions.get(fn);
  if (!got) {
    got = renewing(async () => {
      const c = await callUser(fn, 'azure');
      if (c.error || !c.token) {
        throw new StorageError('Unauthenticated', scrub(c.error ?? 'no Azure token'), { url });
      }
      return { token: c.token, expiresAtMs: c.expiresAtMs };
    });
    fromFunctions.set(fn, got);
  }
  return got;
}

type Identity = typeof import('@azure/identity');
let identity: Promise<Identity> | undefined;

/** @azure/identity, imported the first time a store needs an Entra ID token. */
async function identityLib(url: string): Promise<Identity> {
  try {
    return await (identity ??= import('@azure/identity'));
  } catch {
    identity = undefined;
    throw new StorageError(
      'NotSupported',
      "this Azure store's credentials (a client secret, workload identity, the Azure CLI or a managed identity) come from Entra ID, which the JS engine asks through the optional package @azure/identity: install it (npm install @azure/identity), or give an account key, a SAS token or a bearer token",
      { url },
    );
  }
}

const SCOPE = 'https://storage.azure.com/.default';

/** Which Entra ID credential the settings name (object_store's `auto` order), if any. */
function entraKind(s: AzureSettings): string | undefined {
  const type = s.get('credential_type')?.trim().toLowerCase();
  if (type && type !== 'auto') return type;
  if (s.get('client_id') && s.get('tenant_id') && s.get('federated_token_file'))
    return 'workload_identity';
  if (s.get('client_id') && s.get('client_secret') && s.get('tenant_id')) return 'client_secret';
  if (isTrue(s.get('use_azure_cli'))) return 'azure_cli';
  return undefined;
}

/** An Entra ID token source through @azure/identity. */
function fromEntra(kind: string, s: AzureSettings, url: string): () => Promise<string> {
  return renewing(async () => {
    const id = await identityLib(url);
    const authorityHost = s.get('authority_host') || undefined;
    let got: { token: string; expiresOnTimestamp: number } | null;
    try {
      const credential =
        kind === 'client_secret'
          ? new id.ClientSecretCredential(
              s.get('tenant_id') ?? '',
              s.get('client_id') ?? '',
              s.get('client_secret') ?? '',
              { authorityHost },
            )
          : kind === 'workload_identity'
            ? new id.WorkloadIdentityCredential({
                tenantId: s.get('tenant_id'),
                clientId: s.get('client_id'),
                tokenFilePath: s.get('federated_token_file'),
                authorityHost,
              })
            : kind === 'azure_cli'
              ? new id.AzureCliCredential()
              : s.get('msi_resource_id')
                ? new id.ManagedIdentityCredential({ resourceId: s.get('msi_resource_id')! })
                : new id.ManagedIdentityCredential({ clientId: s.get('client_id') || undefined });
      got = await credential.getToken(SCOPE);
    } catch (e) {
      const name = (e as { name?: unknown })?.name;
      throw new StorageError(
        'Unauthenticated',
        scrub(
          `no Azure token from Entra ID (${kind}): ${typeof name === 'string' ? name : 'an error'}; its message is not shown`,
        ),
        { url },
      );
    }
    if (!got?.token) {
      throw new StorageError('Unauthenticated', `no Azure token from Entra ID (${kind})`, { url });
    }
    registerSecret(got.token);
    return { token: got.token, expiresAtMs: got.expiresOnTimestamp };
  });
}

/** How an Azure store's requests are authorised. */
export interface AzureAuth {
  /** Query pairs every request carries (a SAS token), none otherwise. */
  sas: [string, string][];
  sign: Sign;
}

/** The well-known account key of Azurite and the storage emulator (object_store's). */
export const EMULATOR_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * The authorisation of a store, first match wins as in object_store: `store.credentials`; then
 * (emulator) the key, a bearer token, a SAS or the emulator's key; otherwise the credential type
 * named, or a bearer token, the account key, workload identity, a client secret, a SAS, the
 * Azure CLI, and last a managed identity (the instance metadata service, unless
 * OBJGET_METADATA=off: then `Unauthenticated`, as the native engine).
 */
export function azureAuth(
  s: AzureSettings,
  account: string,
  emulator: boolean,
  fn: CredentialsFunction | undefined,
  skip: boolean,
  url: string,
): AzureAuth {
  const stamp = (headers: Record<string, string>): Record<string, string> => ({
    ...headers,
    'x-ms-date': new Date().toUTCString(),
    'x-ms-version': AZURE_VERSION,
  });
  const bearer = (token: () => Promise<string>): AzureAuth => ({
    sas: [],
    sign: async (_m, _t, headers) => ({
      ...stamp(headers),
      authorization: `Bearer ${await token()}`,
    }),
  });
  const sharedKey = (key: string): AzureAuth => {
    const secret = Buffer.from(key, 'base64');
    if (secret.length === 0) {
      throw new StorageError('InvalidArgument', 'the Azure account key is not base64', { url });
    }
    return {
      sas: [],
      sign: async (method, target, headers) => {
        const all = stamp(headers);
        const mac = createHmac('sha256', secret)
          .update(stringToSign(method, target, all, account), 'utf8')
          .digest('base64');
        return { ...all, authorization: `SharedKey ${account}:${mac}` };
      },
    };
  };
  const sas = (token: string): AzureAuth => ({
    sas: sasPairs(token, url),
    sign: async (_m, _t, headers) => stamp(headers),
  });
  if (skip) return { sas: [], sign: async (_m, _t, headers) => stamp(headers) };
  if (fn) return bearer(fromFunction(fn, url));
  const token = s.get('token');
  const key = s.get('access_key');
  const sasKey = s.get('sas_key');
  if (emulator) {
    if (key) return sharedKey(key);
    if (token) return bearer(async () => token);
    if (sasKey) return sas(sasKey);
    return sharedKey(EMULATOR_KEY);
  }
  const kind = entraKind(s);
  switch (kind) {
    case 'bearer_token':
    case 'access_key':
    case 'sas_token':
    case undefined:
      break;
    case 'client_secret':
    case 'workload_identity':
    case 'azure_cli':
    case 'managed_identity':
      return bearer(fromEntra(kind, s, url));
    default:
      throw new StorageError('InvalidArgument', `unknown Azure credential type '${kind}'`, { url });
  }
  if (token && (kind === undefined || kind === 'bearer_token')) return bearer(async () => token);
  if (key && (kind === undefined || kind === 'access_key')) return sharedKey(key);
  if (sasKey && (kind === undefined || kind === 'sas_token')) return sas(sasKey);
  if (kind !== undefined) {
    throw new StorageError(
      'InvalidArgument',
      `the Azure credential type '${kind}' is named but its setting is not given`,
      { url },
    );
  }
  if (process.env.OBJGET_METADATA?.toLowerCase() === 'off') {
    throw new StorageError(
      'Unauthenticated',
      'no Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY, a SAS token, a client secret or a federated token, or skipSignature for public data (the instance metadata service is disabled)',
      { url },
    );
  }
  return bearer(fromEntra('managed_identity', s, url));
}
