// GCS credentials for the JS engine, in the native engine's order (object_store's chain, README
// "Credentials"): skipSignature; store.credentials; a bearer token; a service-account key (file
// or JSON; an emulator's key with `disable_oauth` signs nothing); application default
// credentials (google_application_credentials, then where gcloud writes them); the GCE metadata
// server, only when it is enabled and answers. OAuth2 is google-auth-library's, imported only
// when a token must be made: an unsigned, emulator or bearer-token store never loads it.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { StorageError } from '../../errors.js';
import { displayUrl, registerSecret } from '../../redact.js';
import type { StoreOptions } from '../../types.js';
import { bearerToken } from '../credentials.js';

/** The scope object_store asks for. */
const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

/** The settings of a GCS store that say where its credentials come from. */
export interface GcsAuth {
  skip: boolean;
  /** A service-account key file (`google_service_account`). */
  keyFile?: string;
  /** A service-account key's JSON (`google_service_account_key`). */
  keyJson?: string;
  /** `google_application_credentials`. */
  applicationCredentials?: string;
  /** `google_bearer_token`. */
  bearer?: string;
}

/** A service-account key (or an emulator's stand-in for one). */
export interface ServiceAccount {
  type?: string;
  client_email?: string;
  private_key?: string;
  private_key_id?: string;
  gcs_base_url?: string;
  disable_oauth?: boolean;
  client_id?: string;
  client_secret?: string;
  refresh_token?: string;
}

/** The token for one request, or none (the request goes unsigned). */
export type Token = () => Promise<string | undefined>;

function parsed(text: string, what: string, url: string): ServiceAccount {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    // The text is a secret: its content is never shown.
    throw new StorageError('InvalidArgument', `${what} is not valid JSON`, { url });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new StorageError('InvalidArgument', `${what} is not a JSON object`, { url });
  }
  const key = v as ServiceAccount;
  registerSecret(key.private_key);
  registerSecret(key.client_secret);
  registerSecret(key.refresh_token);
  return key;
}

async function keyFile(path: string, what: string, url: string): Promise<ServiceAccount> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new StorageError('InvalidArgument', `${what} ${path} cannot be read (${e.code})`, {
      url,
    });
  });
  return parsed(text, `${what} ${path}`, url);
}

/** The service-account key the settings give, if any (its `gcs_base_url` is an endpoint). */
export async function serviceAccount(a: GcsAuth, url: string): Promise<ServiceAccount | undefined> {
  if (a.keyFile && a.keyJson) {
    throw new StorageError(
      'InvalidArgument',
      'a GCS store takes a service account key file or its JSON, not both',
      { url },
    );
  }
  if (a.keyJson) return parsed(a.keyJson, 'google_service_account_key', url);
  if (a.keyFile) return keyFile(a.keyFile, 'the service account file', url);
  return undefined;
}

type Library = typeof import('google-auth-library');
let library: Promise<Library> | undefined;

/** google-auth-library, imported on first need; its absence is said plainly. */
function auth(url: string): Promise<Library> {
  return (library ??= import('google-auth-library').catch(() => {
    library = undefined;
    throw new StorageError(
      'NotSupported',
      `${displayUrl(url)}: Google OAuth2 on the JS engine needs the optional package google-auth-library (npm install google-auth-library); or use the native engine, store.credentials (a bearer token) or skipSignature`,
      { url },
    );
  }));
}

/** A token source's failure: Unauthenticated, naming the source and the error's kind only. */
function failed(e: unknown, source: string, url: string): StorageError {
  if (e instanceof StorageError) return e;
  const err = e as { name?: unknown; code?: unknown } | null;
  const name = typeof err?.name === 'string' ? err.name : 'an error';
  const code = typeof err?.code === 'string' || typeof err?.code === 'number' ? ` ${err.code}` : '';
  return new StorageError(
    'Unauthenticated',
    `${displayUrl(url)}: no token from ${source} (${name}${code}; its message is not shown)`,
    { url },
  );
}

interface Client {
  getAccessToken(): Promise<{ token?: string | null }>;
}

/** One google-auth-library client per credential (it keeps its token until it expires). */
const clients = new Map<string, Client>();

/** A google-auth-library client's bearer token, as a Token; `id` names the credential. */
function fromClient(
  id: string,
  make: (lib: Library) => Client,
  source: string,
  url: string,
): Token {
  return async () => {
    try {
      let client = clients.get(id);
      if (!client) clients.set(id, (client = make(await auth(url))));
      const { token } = await client.getAccessToken();
      if (!token) throw new Error('no token');
      registerSecret(token);
      return token;
    } catch (e) {
      throw failed(e, source, url);
    }
  };
}

/**
 * A token from a key file's JSON: a service account's self-signed JWT (made here, as
 * object_store makes it: no token endpoint is asked), an authorized user's refreshed token.
 */
function fromKey(key: ServiceAccount, source: string, url: string): Token {
  const id = createHash('sha256')
    .update(JSON.stringify([key.type, key.client_email, key.private_key, key.refresh_token]))
    .digest('hex');
  if (key.type === 'authorized_user') {
    return fromClient(
      id,
      (lib) =>
        new lib.UserRefreshClient({
          clientId: key.client_id,
          clientSecret: key.client_secret,
          refreshToken: key.refresh_token,
        }),
      source,
      url,
    );
  }
  if (key.type !== undefined && key.type !== 'service_account') {
    throw new StorageError(
      'InvalidArgument',
      `${source} is a '${String(key.type).slice(0, 40)}' credential, which objget does not take (service_account and authorized_user only); use store.credentials`,
      { url },
    );
  }
  return fromClient(
    id,
    (lib) => {
      const jwt = new lib.JWT({
        email: key.client_email,
        key: key.private_key,
        keyId: key.private_key_id,
        scopes: [SCOPE],
      });
      jwt.useJWTAccessWithScope = true;
      return {
        async getAccessToken() {
          const headers = (await jwt.getRequestHeaders()) as unknown as
            { get(name: string): string | null } | Record<string, string>;
          const value =
            typeof headers.get === 'function'
              ? (headers as { get(name: string): string | null }).get('authorization')
              : (headers as Record<string, string>).Authorization;
          return { token: value?.replace(/^Bearer /i, '') };
        },
      };
    },
    source,
    url,
  );
}

/** Where gcloud writes application default credentials (CLOUDSDK_CONFIG, then home). */
function gcloudAdc(): string | undefined {
  const FILE = 'application_default_credentials.json';
  const env = process.env;
  if (env.CLOUDSDK_CONFIG && existsSync(join(env.CLOUDSDK_CONFIG, FILE))) {
    return join(env.CLOUDSDK_CONFIG, FILE);
  }
  const home = process.platform === 'win32' ? env.APPDATA : env.HOME;
  const dir = process.platform === 'win32' ? 'gcloud' : join('.config', 'gcloud');
  const path = home ? join(home, dir, FILE) : undefined;
  return path && existsSync(path) ? path : undefined;
}

const isTrue = (v: string | undefined): boolean => v?.trim().toLowerCase() === 'true';

/** Whether something accepts a connection at the metadata server within a second. */
const probes = new Map<string, Promise<boolean>>();
function metadataAnswers(host: string): Promise<boolean> {
  let p = probes.get(host);
  if (!p) {
    const u = new URL(`http://${host}`);
    p = new Promise<boolean>((resolve) => {
      const socket = connect({ host: u.hostname, port: Number(u.port || 80) });
      const done = (ok: boolean): void => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1000, () => done(false));
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
    });
    probes.set(host, p);
  }
  return p;
}

/** The GCE metadata server, as the native engine decides it: off, or not there, is at once
 * `Unauthenticated`. */
async function fromMetadata(url: string, bucket: string): Promise<Token> {
  const env = process.env;
  const host =
    [env.GCE_METADATA_HOST, env.GCE_METADATA_ROOT, env.GCE_METADATA_IP].find((h) => h) ??
    '169.254.169.254';
  const disabled = isTrue(env.NO_GCE_CHECK) || env.OBJGET_METADATA?.toLowerCase() === 'off';
  if (disabled || !(await metadataAnswers(host))) {
    const why = disabled
      ? 'the instance metadata service is disabled'
      : 'no instance metadata service answers';
    throw new StorageError(
      'Unauthenticated',
      `no credentials for gs://${bucket}: set Google credentials (GOOGLE_APPLICATION_CREDENTIALS, \`gcloud auth application-default login\`, GOOGLE_SERVICE_ACCOUNT or GOOGLE_SERVICE_ACCOUNT_KEY), or skipSignature for public data (${why})`,
      { url },
    );
  }
  return fromClient(
    `metadata ${host}`,
    (lib) => new lib.Compute({ scopes: [SCOPE] }),
    'the GCE metadata server',
    url,
  );
}

const none: Token = async () => undefined;

/** The token source of a GCS store, first match wins (see the top of this file). */
export async function gcsToken(
  a: GcsAuth,
  key: ServiceAccount | undefined,
  store: StoreOptions | undefined,
  url: string,
  bucket: string,
): Promise<Token> {
  if (a.skip) return none;
  const fn = store?.credentials;
  if (fn) return () => bearerToken(fn, 'gcs', url);
  if (a.bearer) {
    const bearer = a.bearer;
    registerSecret(bearer);
    return async () => bearer;
  }
  if (key) return key.disable_oauth === true ? none : fromKey(key, 'the service account key', url);
  const adc = a.applicationCredentials || gcloudAdc();
  if (adc) return fromKey(await keyFile(adc, 'the credentials file', url), adc, url);
  return fromMetadata(url, bucket);
}
