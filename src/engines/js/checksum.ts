import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
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
 * RFC 9530 Repr-Digest; from S3, `s3`, also a 32-hex-digit ETag of an object not encrypted with
 * KMS or a customer key: its MD5).
 */
export function advertised(h: Headers, partial: boolean, s3 = false): VerifiedChecksum[] {
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
  const sse = all(h, 'x-amz-server-side-encryption')[0] ?? '';
  const kms = sse.startsWith('aws:kms') || h['x-amz-server-side-encryption-customer-algorithm'];
  const etag = (all(h, 'etag')[0] ?? '').replace(/^"|"$/g, '');
  if (s3 && !kms && /^[0-9a-fA-F]{32}$/.test(etag)) {
    add(out, 'md5', Buffer.from(etag, 'hex').toString('base64'));
  }
  out.sort((a, b) => PREFERENCE.indexOf(a.algorithm) - PREFERENCE.indexOf(b.algorithm));
  return out.filter((c, i) => out.findIndex((d) => d.algorithm === c.algorithm) === i);
}

function verifiable(alg: ChecksumAlgorithm): boolean {
  return alg !== 'crc32' || crc32 !== undefined;
}

/** A running checksum of bytes fed in order. */
export interface Running {
  update(chunk: Uint8Array): void;
  /** The checksum, big-endian, as S3 and GCS send it (base64 of these bytes). */
  digest(): Promise<Buffer>;
}

/**
 * A running `algorithm`: MD5 and SHA-256 by node:crypto, CRC32 by zlib, CRC32C by
 * @aws-crypto/crc32c, CRC64NVME by @aws-sdk/crc64-nvme (what S3's own SDKs use).
 */
export function running(algorithm: ChecksumAlgorithm): Running {
  switch (algorithm) {
    case 'md5':
    case 'sha256': {
      const h = createHash(algorithm);
      return { update: (c) => void h.update(c), digest: async () => h.digest() };
    }
    case 'crc32': {
      let crc = 0;
      return {
        update: (c) => void (crc = crc32!(c, crc)),
        digest: async () => be32(crc),
      };
    }
    case 'crc32c': {
      const h = new Crc32c();
      return { update: (c) => void h.update(c), digest: async () => be32(h.digest()) };
    }
    case 'crc64nvme': {
      const h = new Crc64Nvme();
      return { update: (c) => h.update(c), digest: async () => Buffer.from(await h.digest()) };
    }
  }
}

function be32(v: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(v >>> 0);
  return out;
}

/** A running hash of the bytes, in order, and its comparison with what the store said. */
export class Verifier {
  private readonly hash: Running;
  private constructor(
    readonly expected: VerifiedChecksum,
    private readonly url: string,
  ) {
    this.hash = running(expected.algorithm);
  }

  /**
   * The verifier for a reply, or undefined when there is nothing to verify under `mode`: the
   * best checksum offered (CRC64NVME, CRC32C, CRC32, SHA-256, MD5), as the native engine picks.
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
    this.hash.update(chunk);
  }

  /** Rejects with `ChecksumMismatch` if the bytes do not match. */
  async finish(): Promise<VerifiedChecksum> {
    const value = await this.hash.digest();
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
