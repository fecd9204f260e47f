// Whole trees (downloadPrefix, uploadDir) and the Store object, on every backend that holds them.
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { downloadPrefix, get, list, Store, uploadDir, type Progress } from '../../src/index.js';
import { joinKey } from '../../src/urls.js';
import type { EngineName } from '../helpers/matrix.js';
import { bytes, tempDir, uniqueKey, serves, type Backend } from '../helpers/servers.js';

export const tree: Record<string, Buffer> = {
  'a.bin': bytes(1000, 1),
  'sub/b.bin': bytes(70_000, 2),
  'sub/deeper/c.bin': bytes(0, 3),
  // Characters a URL would read as query, fragment or escape must stay part of the key.
  'odd/q?v=1 #%41.bin': bytes(10, 4),
};

/** Progress across the set: running totals only grow, and the last event covers everything. */
export function expectSetProgress(events: Progress[], files: Record<string, Buffer>): void {
  const total = Object.values(files).reduce((a, v) => a + v.length, 0);
  expect(events.length).toBeGreaterThan(0);
  for (let i = 1; i < events.length; i++) {
    expect(events[i]!.setBytes!).toBeGreaterThanOrEqual(events[i - 1]!.setBytes!);
    expect(events[i]!.objectsDone!).toBeGreaterThanOrEqual(events[i - 1]!.objectsDone!);
  }
  expect(events.at(-1)).toMatchObject({
    setBytes: total,
    setTotal: total,
    objectsDone: Object.keys(files).length,
    objectsTotal: Object.keys(files).length,
  });
}

export function prefix(engine: EngineName, b: Backend): void {
  if (!serves(engine, b, 'list')) return;

  if (['s3', 'gcs', 'azure', 'file'].includes(b.name)) {
    it(`downloadPrefix keeps the tree below the prefix; overwrite: false skips`, async () => {
      const prefix = uniqueKey(`tree-${b.name}`);
      for (const [k, v] of Object.entries(tree)) await b.put(`${prefix}/${k}`, v);
      await b.put(`${prefix}-sibling/x.bin`, bytes(5, 5));
      const dir = tempDir();
      const seen = new Set<number>();
      const events: Progress[] = [];
      const r = await downloadPrefix(b.url(`${prefix}/`), dir, {
        store: b.store,
        concurrency: 2,
        onProgress: (p) => {
          seen.add(p.index!);
          events.push(p);
        },
      });
      expect(r.results.length).toBe(4);
      expect(seen.size).toBe(4);
      expectSetProgress(events, tree);
      for (const [k, v] of Object.entries(tree)) {
        expect(readFileSync(join(dir, ...k.split('/'))).equals(v), k).toBe(true);
      }
      expect(existsSync(join(dir, 'x.bin'))).toBe(false);
      const again = await downloadPrefix(b.url(prefix), dir, { store: b.store, overwrite: false });
      expect(again.results).toEqual([]);
      expect(again.skipped.length).toBe(4);
      const some = await downloadPrefix(b.url(`${prefix}/`), tempDir(), {
        store: b.store,
        filter: (o) => o.key.endsWith('b.bin'),
      });
      expect(some.results.map((x) => x.url.slice(-9))).toEqual(['sub/b.bin']);
    });
  }

  if (['s3', 'azure', 'file'].includes(b.name)) {
    it(`uploadDir uploads every regular file, skipping symlinks`, async () => {
      const src = tempDir();
      for (const [k, v] of Object.entries(tree)) {
        mkdirSync(join(src, ...k.split('/').slice(0, -1)), { recursive: true });
        writeFileSync(join(src, ...k.split('/')), v);
      }
      symlinkSync('/etc/hostname', join(src, 'link'));
      const prefix = uniqueKey(`up-${b.name}`);
      const events: Progress[] = [];
      const r = await uploadDir(src, b.url(`${prefix}/`), {
        store: b.store,
        onProgress: (p) => events.push(p),
      });
      expectSetProgress(events, tree);
      const rel = (u: string): string => u.slice(u.indexOf(prefix) + prefix.length + 1);
      expect(
        r
          .map((x) =>
            b.name === 'file'
              ? rel(x.url)
              : rel(x.url).split('/').map(decodeURIComponent).join('/'),
          )
          .sort(),
      ).toEqual(Object.keys(tree).sort());
      const keys: string[] = [];
      for await (const o of list(b.url(`${prefix}/`), { store: b.store })) keys.push(o.key);
      expect(keys.length).toBe(4);
      for (const [k, v] of Object.entries(tree)) {
        const url = joinKey(b.url(prefix), k);
        expect((await get(url, { store: b.store })).equals(v), k).toBe(true);
      }
    });
  }

  if (b.name === 's3') {
    describe('Store', () => {
      it('binds a base URL and options; every operation takes relative keys', async () => {
        const base = b.url(uniqueKey('store'));
        const st = new Store(base, b.store);
        await st.upload(Buffer.from('one'), 'a/1.txt');
        await st.copy('a/1.txt', 'a/2.txt');
        expect(await st.exists('a/2.txt')).toBe(true);
        expect((await st.get('a/2.txt')).toString()).toBe('one');
        expect((await st.head('a/1.txt')).size).toBe(3);
        const keys: string[] = [];
        for await (const o of st.list('a/')) keys.push(o.key.split('/').slice(-2).join('/'));
        expect(keys.sort()).toEqual(['a/1.txt', 'a/2.txt']);
        const dir = tempDir();
        await st.download('a/1.txt', join(dir, '1.txt'));
        expect(readFileSync(join(dir, '1.txt'), 'utf8')).toBe('one');
        const p = await st.downloadPrefix('a', join(dir, 'tree'));
        expect(p.results.length).toBe(2);
        await st.remove(['a/1.txt', 'a/2.txt']);
        expect(await st.exists('a/1.txt')).toBe(false);
        expect(() => st.url('../escape')).toThrow(/not relative/);
      });
    });
  }
}
