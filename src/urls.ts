import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageError } from './errors.js';

/** The schemes objget reads (the native engine); shown in `UnsupportedScheme` messages. */
export const SUPPORTED_SCHEMES =
  's3://, s3a://, gs://, az://, azure://, abfs://, abfss://, http://, https://, file:// and local paths';

/** The schemes of the cloud stores (read by the native engine only). */
export const CLOUD_SCHEMES = ['s3', 's3a', 'gs', 'az', 'azure', 'abfs', 'abfss'];
const CLOUD = new Set(CLOUD_SCHEMES);

export type Located =
  { kind: 'file'; path: string } | { kind: 'http'; url: URL } | { kind: 'cloud'; scheme: string };

/** Classify a URL the way crates/engine/src/locate.rs does. */
export function locate(input: string): Located {
  if (typeof input !== 'string' || input.length === 0) {
    throw new StorageError('InvalidUrl', 'the URL is empty', { url: String(input ?? '') });
  }
  if (!input.includes('://') || /^[a-zA-Z]:[\\/]/.test(input)) {
    return { kind: 'file', path: isAbsolute(input) ? input : resolve(input) };
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch (e) {
    throw new StorageError('InvalidUrl', `not a valid URL: ${(e as Error).message}`, {
      url: input,
    });
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    if (!url.hostname)
      throw new StorageError('InvalidUrl', 'the URL names no host', { url: input });
    if (url.pathname === '/' || url.pathname === '') {
      throw new StorageError('InvalidUrl', 'the URL names a bucket or host but no object', {
        url: input,
      });
    }
    return { kind: 'http', url };
  }
  if (scheme === 'file') {
    try {
      return { kind: 'file', path: fileURLToPath(url) };
    } catch {
      throw new StorageError('InvalidUrl', 'file URLs must name an absolute local path', {
        url: input,
      });
    }
  }
  if (CLOUD.has(scheme)) return { kind: 'cloud', scheme };
  throw new StorageError(
    'UnsupportedScheme',
    `the scheme ${scheme}:// is not supported; objget reads ${SUPPORTED_SCHEMES}`,
    { url: input },
  );
}

/**
 * `base` + `/` + a key, the key percent-encoded segment by segment when `base` is a URL (a key's
 * `?`, `#`, `%` or space would otherwise read as query, fragment or escape); joined as it is
 * to a plain local path.
 */
export function joinKey(base: string, key: string): string {
  const sep = base.endsWith('/') ? '' : '/';
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]+:\/\//.test(base)) return `${base}${sep}${key}`;
  return `${base}${sep}${key.split('/').map(encodeURIComponent).join('/')}`;
}
