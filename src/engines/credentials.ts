/**
 * Credentials the way users have them, for the native engine and the JS engine alike.
 *
 * - `store.credentials`: the caller's function, registered with the addon once (one id per
 *   function), validated here on every call; the engine caches what it returns and asks again
 *   when it is within 5 minutes of its expiration.
 * - The AWS SDKs' default chain (`@aws-sdk/credential-provider-node`): environment, shared
 *   `~/.aws/config` and `~/.aws/credentials` with `AWS_PROFILE` (role chains, SSO,
 *   `credential_process`), web identity, container credentials, IMDS. The engine asks it only for
 *   S3 stores without static credentials, so the SDK is imported only then.
 * - The profile's `region` and `endpoint_url`, read with the SDK's own shared-config loader, which
 *   the engine uses where neither the store's `config` nor an `AWS_*` variable gives one.
 *
 * Nothing here ever puts a secret in a message: values are described by their kind, secrets are
 * registered for scrubbing as soon as they are seen.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as Binding from '../../index.js';
import { StorageError } from '../errors.js';
import { registerSecret, scrub } from '../redact.js';
import type { AwsCredentials, CredentialsFunction, CredentialsProvider } from '../types.js';

type NativeBinding = typeof Binding;

const ids = new WeakMap<CredentialsFunction, number>();

/** The addon's id for `fn`, registering it on first use (so stores stay cached per function). */
export function credentialsId(binding: NativeBinding, fn: CredentialsFunction): number {
  let id = ids.get(fn);
  if (id === undefined) {
    id = binding.registerCredentials((req) => callUser(fn, req.provider as CredentialsProvider));
    ids.set(fn, id);
  }
  return id;
}

/** Tell the addon where S3 stores without static credentials get theirs: the SDKs' chain. */
export function installAwsDefaultChain(binding: NativeBinding): void {
  binding.setAwsDefaultChain(() => awsDefaultChain());
}

const STORES: Record<CredentialsProvider, string> = {
  s3: 'an S3',
  gcs: 'a GCS',
  azure: 'an Azure',
};

const SHAPES: Record<CredentialsProvider, string> = {
  s3: '{ accessKeyId, secretAccessKey, sessionToken?, expiration? }',
  gcs: '{ token, expiration? }',
  azure: '{ token, expiration? }',
};

/** What a value is, never what it holds. */
function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a Date';
  return typeof v === 'object'
    ? 'an object'
    : typeof v === 'undefined'
      ? 'undefined'
      : `a ${typeof v}`;
}

/**
 * Check a credential for `provider` and turn it into what the addon takes; `{ error }` when it is
 * not one. Every string field that may be secret is registered for scrubbing first.
 */
export function normalise(
  got: unknown,
  provider: CredentialsProvider,
  source: string,
): Binding.NativeCredential {
  const wrong = (why: string): Binding.NativeCredential => ({
    error: `${source} returned ${why} for ${STORES[provider]} store; it must return ${SHAPES[provider]}`,
  });
  if (typeof got !== 'object' || got === null || Array.isArray(got)) return wrong(kind(got));
  const c = got as Record<string, unknown>;
  for (const k of ['secretAccessKey', 'sessionToken', 'token']) {
    if (typeof c[k] === 'string') registerSecret(c[k]);
  }
  let expiresAtMs: number | undefined;
  if (c.expiration !== undefined) {
    if (!(c.expiration instanceof Date) || Number.isNaN(c.expiration.getTime())) {
      return wrong(`an expiration that is ${kind(c.expiration)}, not a valid Date,`);
    }
    expiresAtMs = c.expiration.getTime();
  }
  const text = (k: string): boolean => typeof c[k] === 'string' && c[k] !== '';
  if (provider === 's3') {
    for (const k of ['accessKeyId', 'secretAccessKey']) {
      if (!text(k)) return wrong(`an object whose ${k} is ${kind(c[k])}, not a non-empty string,`);
    }
    if (c.sessionToken !== undefined && typeof c.sessionToken !== 'string') {
      return wrong(`an object whose sessionToken is ${kind(c.sessionToken)}`);
    }
    return {
      accessKeyId: c.accessKeyId as string,
      secretAccessKey: c.secretAccessKey as string,
      sessionToken: c.sessionToken === '' ? undefined : (c.sessionToken as string | undefined),
      expiresAtMs,
    };
  }
  if (!text('token'))
    return wrong(`an object whose token is ${kind(c.token)}, not a non-empty string,`);
  return { token: c.token as string, expiresAtMs };
}

/** The caller's function, called and checked. Its own error's text is not shown: it may hold
 * anything; its name and code are. */
export async function callUser(
  fn: CredentialsFunction,
  provider: CredentialsProvider,
): Promise<Binding.NativeCredential> {
  let got: unknown;
  try {
    got = await fn({ provider });
  } catch (e) {
    const err = e as { name?: unknown; code?: unknown } | null;
    const name = typeof err?.name === 'string' ? err.name : kind(e);
    const code = typeof err?.code === 'string' ? ` ${err.code}` : '';
    return { error: scrub(`store.credentials threw (${name}${code}; its message is not shown)`) };
  }
  return normalise(got, provider, 'store.credentials');
}

type AwsProvider = () => Promise<unknown>;
let chain: Promise<AwsProvider> | undefined;

/** The shared config and credentials files the SDK reads. */
async function sharedFiles(): Promise<string[]> {
  const { getHomeDir } = await import('@smithy/core/config');
  const home = getHomeDir();
  return [
    process.env.AWS_CONFIG_FILE || join(home, '.aws', 'config'),
    process.env.AWS_SHARED_CREDENTIALS_FILE || join(home, '.aws', 'credentials'),
  ];
}

const CHAIN =
  "the AWS SDK's default credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE with ~/.aws/config and ~/.aws/credentials, SSO, credential_process, web identity, container credentials, instance metadata)";

/** Credentials from the AWS SDKs' default chain, imported on first use. */
async function awsDefaultChain(): Promise<Binding.NativeCredential> {
  const env = process.env;
  // OBJGET_METADATA=off: no metadata service is asked, and where nothing else could answer
  // the chain is not run at all (an unconfigured machine fails at once).
  if (env.OBJGET_METADATA?.toLowerCase() === 'off') {
    const local =
      !!env.AWS_PROFILE ||
      !!env.AWS_WEB_IDENTITY_TOKEN_FILE ||
      !!env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ||
      !!env.AWS_CONTAINER_CREDENTIALS_FULL_URI ||
      (await sharedFiles().catch(() => [])).some((f) => existsSync(f));
    if (!local) {
      return {
        error: `no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE (with ~/.aws/config), a web identity or store.credentials, or skipSignature for public data (the instance metadata service is disabled)`,
      };
    }
  }
  try {
    chain ??= import('@aws-sdk/credential-provider-node').then((m) => m.defaultProvider());
    const got = await (await chain)();
    return normalise(got, 's3', CHAIN);
  } catch (e) {
    // A failed chain is built afresh next time (after `aws sso login`, say).
    chain = undefined;
    const message = e instanceof Error ? e.message : kind(e);
    const profile = env.AWS_PROFILE ? ` (AWS_PROFILE=${env.AWS_PROFILE})` : '';
    return {
      error: scrub(`no AWS credentials from ${CHAIN}${profile}: ${message}`.slice(0, 1000)),
    };
  }
}

interface ProfileSettings {
  profileRegion?: string;
  profileEndpoint?: string;
}

const settings = new Map<string, Promise<ProfileSettings>>();

/**
 * The AWS profile's `region` and S3 `endpoint_url` (a `services` section's `s3` one first, then
 * the profile's own; none when `ignore_configured_endpoint_urls` is set), as the SDKs read them.
 * Read once per profile and set of files.
 */
export function awsProfileSettings(): Promise<ProfileSettings> {
  const env = process.env;
  const key = [
    env.AWS_PROFILE,
    env.AWS_CONFIG_FILE,
    env.AWS_SHARED_CREDENTIALS_FILE,
    env.HOME,
    env.USERPROFILE,
    env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS,
  ].join('\0');
  let found = settings.get(key);
  if (!found) {
    found = loadProfileSettings();
    settings.set(key, found);
  }
  return found;
}

async function loadProfileSettings(): Promise<ProfileSettings> {
  try {
    return await readProfileSettings();
  } catch {
    // An unreadable profile (or a missing loader) gives no region or endpoint; the credential
    // chain, which reads the same files, reports what is wrong with them.
    return {};
  }
}

async function readProfileSettings(): Promise<ProfileSettings> {
  const config = await import('@smithy/core/config');
  const { loadConfig, booleanSelector, SelectorType, CONFIG_PREFIX_SEPARATOR } = config;
  type Section = Record<string, string | undefined>;
  // Only the files: the environment is read by the engine itself (AWS_REGION, AWS_ENDPOINT_URL…).
  const fromFiles = <T>(
    configFileSelector: (profile: Section, files?: Record<string, Section>) => T | undefined,
    preferredFile?: 'config' | 'credentials',
  ): Promise<T | undefined> =>
    loadConfig<T | undefined>(
      { environmentVariableSelector: () => undefined, configFileSelector, default: undefined },
      preferredFile ? { preferredFile } : {},
    )();
  const profileRegion = await fromFiles(
    (p) => p.region,
    config.NODE_REGION_CONFIG_FILE_OPTIONS.preferredFile as 'credentials',
  );
  const ignore =
    booleanSelector(process.env, 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', SelectorType.ENV) ??
    (await fromFiles((p) =>
      booleanSelector(p, 'ignore_configured_endpoint_urls', SelectorType.CONFIG),
    ));
  const profileEndpoint = ignore
    ? undefined
    : await fromFiles((p, files) => {
        const services = p.services
          ? files?.[['services', p.services].join(CONFIG_PREFIX_SEPARATOR)]
          : undefined;
        return services?.[['s3', 'endpoint_url'].join(CONFIG_PREFIX_SEPARATOR)] ?? p.endpoint_url;
      });
  return { profileRegion, profileEndpoint };
}

/** A credential is asked for again when it is this close to its expiration (as the engine). */
const RENEW_MS = 5 * 60_000;

interface Held {
  credential: Binding.NativeCredential;
  expiresAtMs?: number;
}
const held = new WeakMap<CredentialsFunction, Map<CredentialsProvider, Promise<Held>>>();

/** The caller's credential for `provider`, kept until it is within five minutes of its
 * expiration. */
async function fromFunction(
  fn: CredentialsFunction,
  provider: CredentialsProvider,
): Promise<Binding.NativeCredential> {
  let mine = held.get(fn);
  if (!mine) held.set(fn, (mine = new Map()));
  let got = mine.get(provider);
  const now = Date.now();
  const fresh = async (h: Promise<Held>): Promise<boolean> => {
    const { credential, expiresAtMs } = await h;
    return !credential.error && (expiresAtMs === undefined || expiresAtMs - now > RENEW_MS);
  };
  if (!got || !(await fresh(got))) {
    got = callUser(fn, provider).then((credential) => ({
      credential,
      expiresAtMs: credential.expiresAtMs,
    }));
    mine.set(provider, got);
  }
  return (await got).credential;
}

/** The JS engine's bearer token (GCS, Azure) from the store's `credentials` function. A throw
 * or a wrong shape: `Unauthenticated`, with a message that names no secret. */
export async function bearerToken(
  fn: CredentialsFunction,
  provider: Exclude<CredentialsProvider, 's3'>,
  url: string,
): Promise<string> {
  const got = await fromFunction(fn, provider);
  if (got.error || !got.token) {
    throw new StorageError('Unauthenticated', scrub(got.error ?? 'no token'), { url });
  }
  return got.token;
}

/**
 * The JS engine's S3 credential, from the native engine's sources, first match wins: the
 * store's `credentials` function; the static keys the store's `config` or the `AWS_*`
 * environment give (`keys`); the AWS SDKs' default chain. None: `Unauthenticated`, with a
 * message that names no secret.
 */
export async function awsCredentials(
  fn: CredentialsFunction | undefined,
  keys: AwsCredentials | undefined,
  url: string,
): Promise<AwsCredentials> {
  if (!fn && keys) return keys;
  const got = fn ? await fromFunction(fn, 's3') : await awsDefaultChain();
  if (got.error || !got.accessKeyId || !got.secretAccessKey) {
    throw new StorageError('Unauthenticated', scrub(got.error ?? 'no AWS credentials'), { url });
  }
  return {
    accessKeyId: got.accessKeyId,
    secretAccessKey: got.secretAccessKey,
    sessionToken: got.sessionToken,
    ...(got.expiresAtMs === undefined ? {} : { expiration: new Date(got.expiresAtMs) }),
  };
}
