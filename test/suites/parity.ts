// The two engines must return identical bytes and metadata for the schemes both serve (run
// once per backend, under the native engine's entry: each test switches between both).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { download, get, head, type ByteRange } from '../../src/index.js';
import type { EngineName } from '../helpers/matrix.js';
import { bytes, tempDir, uniqueKey, useEngine, type Backend } from '../helpers/servers.js';

const SIZES = [0, 1, 2, 255, 4096, 65_535, 65_536, 65_537, 1_000_003, 8 * 1024 * 1024 + 1];

function ranges(size: number): ByteRange[] {
  const out: ByteRange[] = [{ suffix: 1 }, { suffix: size + 10 }, { offset: size, length: 1 }];
  if (size > 0) {
    out.push({ offset: 0, length: size }, { offset: size - 1 }, { offset: 0 });
    out.push({ offset: Math.floor(size / 3), length: Math.max(1, Math.floor(size / 2)) });
    out.push({ offset: size - 1, length: 1000 });
  }
  return out;
}

async function both<T>(fn: () => Promise<T>): Promise<[T, T]> {
  useEngine('native');
  const a = await fn();
  useEngine('js');
  const b = await fn();
  return [a, b];
}

/** The outcome of a call as something cheap to compare: a digest of the bytes, or the error code. */
async function outcome(fn: () => Promise<Buffer>): Promise<string> {
  return fn().then(
    (b) => `${b.length}:${createHash('sha256').update(b).digest('hex')}`,
    (e: { code: string }) => `error:${e.code}`,
  );
}

export function parity(engine: EngineName, backend: Backend): void {
  if (engine !== 'native' || !backend.js) return;
  describe('parity of the two engines', () => {
    const prefix = uniqueKey(`parity-${backend.name}`);
    beforeAll(async () => {
      for (const size of SIZES) await backend.put(`${prefix}/${size}`, bytes(size, size * 13));
    });

    it('identical bytes for every size and range', async () => {
      for (const size of SIZES) {
        const url = backend.url(`${prefix}/${size}`);
        const want = bytes(size, size * 13);
        const [full, fullJs] = await both(() => get(url, { store: backend.store }));
        expect(full.equals(want)).toBe(true);
        expect(fullJs.equals(want)).toBe(true);
        for (const range of ranges(size)) {
          const [a, b] = await both(() => outcome(() => get(url, { store: backend.store, range })));
          expect(a, `${size} ${JSON.stringify(range)}`).toEqual(b);
        }
      }
    });

    it('identical files and metadata', async () => {
      const dir = tempDir();
      for (const size of SIZES) {
        const url = backend.url(`${prefix}/${size}`);
        const [ra, rb] = await both(() =>
          download(url, join(dir, `${size}-${process.env.OBJGET_ENGINE}`), {
            store: backend.store,
          }),
        );
        const [fa, fb] = [
          readFileSync(join(dir, `${size}-native`)),
          readFileSync(join(dir, `${size}-js`)),
        ];
        expect(fa.equals(fb)).toBe(true);
        expect([ra.bytes, ra.etag]).toEqual([rb.bytes, rb.etag]);
        const [ha, hb] = await both(() => head(url, { store: backend.store }));
        expect(ha.size).toBe(hb.size);
        expect(ha.etag).toBe(hb.etag);
        expect(ha.lastModified?.getTime()).toBe(hb.lastModified?.getTime());
      }
    });
  });
}
