// Whole trees (downloadPrefix, uploadDir), registered schemes and the Store object, on real
// servers; unsafe keys never write outside the destination.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  download,
  downloadMany,
  downloadPrefix,
  exists,
  get,
  head,
  list,
  registerScheme,
  Store,
  unregisterScheme,
  upload,
  uploadDir,
  type Progress,
} from '../src/index.js';
import { joinKey } from '../src/urls.js';
import { rejection } from './helpers/expect.js';
import { backends, bytes, servers, tempDir, uniqueKey, useEngine } from './helpers/servers.js';

const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});
afterEach(() => {
  unregisterScheme('grpc');
  unregisterScheme('evil');
});

const tree: Record<string, Buffer> = {
  'a.bin': bytes(1000, 1),
  'sub/b.bin': bytes(70_000, 2),
  'sub/deeper/c.bin': bytes(0, 3),
  // Characters a URL would read as query, fragment or escape must stay part of the key.
  'odd/q?v=1 #%41.bin': bytes(10, 4),
};

/** Progress across the set: running totals only grow, and the last event covers everything. */
function expectSetProgress(events: Progress[], files: Record<string, Buffer>): void {
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

describe('native engine: downloadPrefix and uploadDir', () => {
  for (const b of backends().filter((x) => ['s3', 'gcs', 'azure', 'file'].includes(x.name))) {
    it(`${b.name}: downloadPrefix keeps the tree below the prefix; overwrite: false skips`, async () => {
      useEngine('native');
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

  for (const b of backends().filter((x) => ['s3', 'azure', 'file'].includes(x.name))) {
    it(`${b.name}: uploadDir uploads every regular file, skipping symlinks`, async () => {
      useEngine('native');
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
});

describe('keys that would escape the destination', () => {
  it('../x, /etc/x, a/../../x and a\\..\\x are refused with UnsafeKey; nothing lands outside', async () => {
    const good = bytes(100, 7);
    const evil = ['../x', '/etc/x', 'a/../../x', 'a\\..\\x', 'C:/x', 'a//x', 'n\0ul'];
    registerScheme('evil', {
      get: async () => good,
      async *list(prefixUrl) {
        for (const k of ['ok/good.bin', ...evil]) {
          yield { key: `p/${k}`, url: `${prefixUrl}${k}`, size: 100 };
        }
      },
    });
    const parent = tempDir();
    const dest = join(parent, 'dest');
    const before = existsSync('/etc/x');
    // Refused keys are skipped, each with its UnsafeKey; the rest are fetched.
    const r = await downloadPrefix('evil://host/p/', dest);
    expect(r.results).toHaveLength(1);
    expect(r.skipped).toEqual(evil.map((k) => `evil://host/p/${k}`));
    expect(r.skippedDetails.map((d) => [d.reason, d.error?.code])).toEqual(
      evil.map(() => ['unsafeKey', 'UnsafeKey']),
    );
    // The safe key was downloaded; nothing else exists anywhere near.
    expect(readFileSync(join(dest, 'ok', 'good.bin')).equals(good)).toBe(true);
    expect(readdirSync(parent)).toEqual(['dest']);
    expect(readdirSync(dest)).toEqual(['ok']);
    expect(existsSync('/etc/x')).toBe(before);
  });
});

describe('registered schemes', () => {
  it('a grpc:// handler serves download, downloadMany, downloadPrefix, get, head, exists, upload', async () => {
    // A handler backed by the HTTP fixture, as an application would wrap its own client.
    const s = servers();
    const prefix = uniqueKey('grpc');
    const http = backends().find((b) => b.name === 'http')!;
    for (const [k, v] of Object.entries(tree)) await http.put(`${prefix}/${k}`, v);
    const toHttp = (url: string): string => url.replace(/^grpc:\/\/[^/]+/, s.http.url);
    const stored = new Map<string, Buffer>();
    registerScheme('grpc', {
      async get(url, { signal }) {
        const r = await fetch(toHttp(url), { signal });
        if (!r.ok) throw Object.assign(new Error(`HTTP ${r.status}`), { code: 'ENOENT' });
        return new Uint8Array(await r.arrayBuffer());
      },
      async head(url) {
        const r = await fetch(toHttp(url), { method: 'HEAD' });
        if (r.status === 404) {
          const { StorageError } = await import('../src/index.js');
          throw new StorageError('NotFound', `${url}: not found`);
        }
        return { size: Number(r.headers.get('content-length')), etag: r.headers.get('etag')! };
      },
      async *list(prefixUrl) {
        for (const k of Object.keys(tree)) {
          yield { key: `${prefix}/${k}`, url: joinKey(prefixUrl, k) };
        }
      },
      async put(url, body) {
        stored.set(url, body);
        return { etag: 'stored' };
      },
    });
    const dir = tempDir();
    const url = `grpc://cache:9090/${prefix}/sub/b.bin`;
    const r = await download(url, join(dir, 'one.bin'));
    expect(r.bytes).toBe(70_000);
    expect(readFileSync(join(dir, 'one.bin')).equals(tree['sub/b.bin']!)).toBe(true);
    const many = await downloadMany([
      { url, dest: join(dir, 'm1.bin') },
      { url: `${http.url(`${prefix}/a.bin`)}`, dest: join(dir, 'm2.bin') },
    ]);
    expect(many.map((m) => m.bytes)).toEqual([70_000, 1000]);
    const p = await downloadPrefix(`grpc://cache:9090/${prefix}/`, join(dir, 'tree'));
    expect(p.results.length).toBe(4);
    expect(readFileSync(join(dir, 'tree', 'a.bin')).equals(tree['a.bin']!)).toBe(true);
    expect((await get(url)).equals(tree['sub/b.bin']!)).toBe(true);
    expect((await head(url)).size).toBe(70_000);
    expect(await exists(url)).toBe(true);
    expect(await exists(`${url}.none`)).toBe(false);
    const up = await upload(Buffer.from('hello'), 'grpc://cache:9090/up/h.txt');
    expect(up).toMatchObject({ bytes: 5, etag: 'stored' });
    expect(stored.get('grpc://cache:9090/up/h.txt')!.toString()).toBe('hello');
    // A failing read leaves nothing behind.
    const err = await rejection(download(`${url}.none`, join(dir, 'none.bin')));
    expect(err.code).toBe('NotFound');
    expect(existsSync(join(dir, 'none.bin'))).toBe(false);
  });

  it('built-in schemes cannot be replaced', async () => {
    const { registerScheme: reg } = await import('../src/index.js');
    expect(() => reg('s3', { get: async () => Buffer.alloc(0) })).toThrow(/built in/);
    expect(() => reg('9x', { get: async () => Buffer.alloc(0) })).toThrow(/not a URL scheme/);
  });
});

describe('Store', () => {
  it('binds a base URL and options; every operation takes relative keys', async () => {
    useEngine('native');
    const b = backends().find((x) => x.name === 's3')!;
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
