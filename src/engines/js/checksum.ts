import { createHash, type Hash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { StorageError } from '../../errors.js';
import { displayUrl } from '../../redact.js';
import type { ChecksumAlgorithm, ChecksumMode, VerifiedChecksum } from '../../types.js';

type Headers = Record<string, string | string[] | undefined>;

/** zlib.crc32 arrived in Node 20.15 / 22.2; older Node cannot verify CRC32 in the JS engine. */
const crc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

const PREFERENCE: ChecksumAlgorithm[] = ['crc64nvme', 'crc32c', 'crc32', 'sha256', 'md5'];
const WIDTH: Record<ChecksumAlgorithm, number> = {
  crc64nvme: 8,
  crc32c: 4,
  crc32: 4,
  sha256: 32,
  md5: 16,
};

function all(h: Headers, name: string): string[] {
  const v = h[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function add(out: VerifiedChecksum[], algorithm: ChecksumAlgorithm, b64: string | undefined): void {
  if (!b64) return;
  const raw = Buffer.from(b64.trim(), 'base64');
  if (raw.length === WIDTH[algorithm]) out.push({ algorithm, value: raw.toString('base64') });
}

/**
 * Whole-object checksums the reply headers advertise, best first: the same headers the native
 * engine reads (x-amz-checksum-*, x-goog-hash, x-ms-blob-content-md5, Content-MD5 on a 200,
 * RFC 9530 Repr-Digest).
 */
export function advertised(h: Headers, partial: boolean): VerifiedChecksum[] {
  const out: VerifiedChecksum[] = [];
  if (all(h, 'x-amz-checksum-type')[0]?.toUpperCase() !== 'COMPOSITE') {
    for (const alg of ['crc64nvme', 'crc32c', 'crc32', 'sha256'] as const) {
      const v = all(h, `x-amz-checksum-${alg}`)[0];
      if (v && !v.includes('-')) add(out, alg, v);
    }
  }
  const stored = all(h, 'x-goog-stored-content-encoding')[0];
  if (!stored || stored.toLowerCase() === 'identity') {
    for (const item of all(h, 'x-goog-hash').flatMap((v) => v.split(','))) {
      const [k, ...rest] = item.split('=');
      const v = rest.join('=');
      if (k?.trim() === 'crc32c') add(out, 'crc32c', v);
      if (k?.trim() === 'md5') add(out, 'md5', v);
    }
  }
  add(out, 'md5', all(h, 'x-ms-blob-content-md5')[0]);
  if (!partial) add(out, 'md5', all(h, 'content-md5')[0]);
  for (const item of all(h, 'repr-digest').flatMap((v) => v.split(','))) {
    const [k, ...rest] = item.split('=');
    const v = rest.join('=').trim().replace(/^:|:$/g, '');
    if (k?.trim().toLowerCase() === 'sha-256') add(out, 'sha256', v);
    if (k?.trim().toLowerCase() === 'md5') add(out, 'md5', v);
  }
  out.sort((a, b) => PREFERENCE.indexOf(a.algorithm) - PREFERENCE.indexOf(b.algorithm));
  return out.filter((c, i) => out.findIndex((d) => d.algorithm === c.algorithm) === i);
}

function verifiable(alg: ChecksumAlgorithm): boolean {
  return alg === 'sha256' || alg === 'md5' || (alg === 'crc32' && crc32 !== undefined);
}

/** A running hash of the bytes, in order, and its comparison with what the store said. */
export class Verifier {
  private hash: Hash | undefined;
  private crc = 0;
  private constructor(
    readonly expected: VerifiedChecksum,
    private readonly url: string,
  ) {
    if (expected.algorithm !== 'crc32') this.hash = createHash(expected.algorithm);
  }

  /**
   * The verifier for a reply, or undefined when there is nothing to verify under `mode`. The JS
   * engine computes MD5, SHA-256 and (on Node ≥ 20.15) CRC32; under 'required', an object that
   * offers only CRC32C or CRC64NVME is `NotSupported` here (the native engine verifies them).
   */
  static for(
    mode: ChecksumMode | undefined,
    offered: VerifiedChecksum[],
    url: string,
  ): Verifier | undefined {
    if (mode === 'off') return undefined;
    const usable = offered.find((c) => verifiable(c.algorithm));
    if (usable) return new Verifier(usable, url);
    if (mode === 'required') {
      if (offered.length) {
        throw new StorageError(
          'NotSupported',
          `${displayUrl(url)}: the store offers ${offered.map((c) => c.algorithm).join(', ')}, which the JS engine cannot compute`,
          { url },
        );
      }
      throw unavailable(url);
    }
    return undefined;
  }

  update(chunk: Uint8Array): void {
    if (this.hash) this.hash.update(chunk);
    else this.crc = crc32!(chunk, this.crc);
  }

  /** Throws `ChecksumMismatch` if the bytes do not match. */
  finish(): VerifiedChecksum {
    let value: Buffer;
    if (this.hash) value = this.hash.digest();
    else {
      value = Buffer.alloc(4);
      value.writeUInt32BE(this.crc >>> 0);
    }
    const actual = { algorithm: this.expected.algorithm, value: value.toString('base64') };
    if (actual.value !== this.expected.value) {
      throw new StorageError(
        'ChecksumMismatch',
        `${displayUrl(this.url)}: ${actual.algorithm} mismatch: the store says ${this.expected.value}, the bytes received give ${actual.value}`,
        { url: this.url },
      );
    }
    return actual;
  }
}

/** `checksum: 'required'` where nothing can be verified (a local file, a range). */
export function unavailable(url: string): StorageError {
  return new StorageError(
    'ChecksumUnavailable',
    `${displayUrl(url)}: checksum 'required', but the store offers no whole-object checksum for this object`,
    { url },
  );
}
