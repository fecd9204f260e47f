// The JS engine's checksums: hash-wasm's CRCs give the check values of their catalogues, and a
// CRC combined from parts equals the CRC of the whole (what a JS multipart upload reports).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crcCombine, running } from '../src/engines/js/checksum.js';

const of = async (alg: 'crc64nvme' | 'crc32c' | 'crc32', data: Buffer): Promise<Buffer> => {
  const h = await running(alg);
  h.update(data);
  return h.digest();
};

describe('JS engine checksums', () => {
  it('give the catalogue check values of "123456789"', async () => {
    const check = Buffer.from('123456789');
    expect((await of('crc64nvme', check)).toString('hex')).toBe('ae8b14860a799888');
    expect((await of('crc32c', check)).toString('hex')).toBe('e3069283');
    expect((await of('crc32', check)).toString('hex')).toBe('cbf43926');
  });

  it('combine parts into the CRC of the whole, for every cut', async () => {
    const data = randomBytes(100_003);
    for (const alg of ['crc64nvme', 'crc32c', 'crc32'] as const) {
      const whole = await of(alg, data);
      for (const cuts of [[0], [0, 1], [0, 4096, 4097, 65536], [0, 99_999], [0, 100_003]]) {
        let acc: Buffer | undefined;
        for (const [i, at] of cuts.entries()) {
          const part = data.subarray(at, cuts[i + 1] ?? data.length);
          const crc = await of(alg, part);
          acc = acc ? crcCombine(alg, acc, crc, part.length) : crc;
        }
        expect(acc!.toString('hex'), `${alg} cut at ${cuts.join(',')}`).toBe(whole.toString('hex'));
      }
    }
  });
});
