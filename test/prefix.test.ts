// Registered schemes, and keys that would escape the destination: unsafe keys never write
// outside it. (Trees on the real backends are test/suites/prefix.ts, run by behaviour.test.ts.)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  download,
  downloadMany,
  downloadPrefix,
  exists,
  get,
  head,
  registerScheme,
  unregisterScheme,
  upload,
} from '../src/index.js';
import { joinKey } from '../src/urls.js';
import { rejection } from './helpers/expect.js';
import { backends, bytes, servers, tempDir, uniqueKey } from './helpers/servers.js';
import { tree } from './suites/prefix.js';

afterEach(() => {
  unregisterScheme('grpc');
  unregisterScheme('evil');
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
