/**
 * Keeping credentials out of messages: registered secret values are replaced, and every URL
 * loses its user-info and query string (presigned signatures, SAS tokens). The native engine
 * does the same in Rust (crates/engine/src/redact.rs).
 */
const secrets = new Set<string>();
const REDACTED = '<redacted>';

/** Remember a secret so that it is removed from any error text. */
export function registerSecret(value: string | undefined): void {
  const v = value?.trim();
  if (v && v.length >= 6) secrets.add(v);
}

/** Whether a configuration key names a credential. */
export function isSecretKey(key: string): boolean {
  const k = key.toLowerCase();
  return (
    ['secret', 'token', 'password', 'sas', 'signature', 'credential', 'private_key'].some((w) =>
      k.includes(w),
    ) ||
    k.endsWith('access_key') ||
    k.endsWith('account_key') ||
    k === 'key'
  );
}

/**
 * Elements of S3's XML error bodies whose values are secrets or let one check a guessed secret
 * (SignatureDoesNotMatch echoes the signature, the string it signed and the canonical request).
 */
const SECRET_ELEMENTS = [
  'SignatureProvided',
  'StringToSign',
  'StringToSignBytes',
  'CanonicalRequest',
  'CanonicalRequestBytes',
  'AWSAccessKeyId',
];
const ELEMENTS = new RegExp(`<(${SECRET_ELEMENTS.join('|')})>[\\s\\S]*?(?:</\\1>|$)`, 'g');

/**
 * Remove registered secrets, secret XML element values, URL user-info and URL query strings from
 * `text`. The marker appears once where several removals meet.
 */
export function scrub(text: string): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.split(s).join(REDACTED);
  }
  out = out
    .replace(ELEMENTS, (m: string, name: string) =>
      m.endsWith(`</${name}>`) ? `<${name}>${REDACTED}</${name}>` : `<${name}>${REDACTED}`,
    )
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s"'<>)`/?#@]*@/gi, '$1')
    .replace(/(https?:\/\/[^\s"'<>)`?]*)\?[^\s"'<>)`]*/gi, `$1?${REDACTED}`);
  return out.replace(/(?:<redacted>){2,}/g, REDACTED);
}

/** A URL as it may be shown: no user-info, no query string. */
export function displayUrl(url: string): string {
  let shown = url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1');
  const q = shown.indexOf('?');
  if (q >= 0) shown = `${shown.slice(0, q)}?${REDACTED}`;
  return scrub(shown);
}
