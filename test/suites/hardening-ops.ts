// Hardening of uploads, listings, keys and arguments (issue 9): a completion whose reply was
// lost, an abort while a stream is idle, folder markers, keys object_store's Path refuses,
// ranges that select nothing, and wrong-typed arguments.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  allocRdmaBuffer,
  copy,
  download,
  downloadMany,
  downloadPrefix,
  exists,
  get,
  getDetailed,
  head,
  list,
  remove,
  Store,
  StorageError,
  upload,
  uploadDir,
} from '../../src/index.js';
import { rejection } from '../helpers/expect.js';
import { faultProxy } from '../helpers/fault-proxy.js';
import type { EngineName } from '../helpers/matrix.js';
import {
  type Backend,
  bytes,
  putS3Raw,
  servers,
  serves,
  tempDir,
  uniqueKey,
  uploadsInProgress,
} from '../helpers/servers.js';

const MiB = 1024 * 1024;

async function listAll(prefixUrl: string, store: object) {
  const out = [];
  for await (const o of list(prefixUrl, { store })) out.push(o);
  return out;
}

export function hardeningOps(engine: EngineName, b: Backend): void {
  if (serves(engine, b, 'upload') && b.name === 's3') {
    describe('a CompleteMultipartUpload whose reply is lost', () => {
      // The proxy lets the first completion through to MinIO and resets the connection once MinIO
      // has answered: the object is stored, the client never hears so, its retry finds the upload
      // gone. object_store's own completion (plain upload) and objget's (ifNotExists) alike.
      for (const ifNotExists of [false, true]) {
        it(`${ifNotExists ? 'ifNotExists: ' : ''}the upload succeeds when the object is in place`, async () => {
          const key = `${uniqueKey('lost-complete')}/o.bin`;
          let completes = 0;
          const proxy = await faultProxy(servers().s3.endpoint, () => false, {
            dropReply: (req) =>
              req.method === 'POST' && /[?&]uploadId=/.test(req.url ?? '') && completes++ === 0,
          });
          const data = bytes(11 * MiB, 12);
          try {
            const store = { ...b.store, config: { ...b.store.config, aws_endpoint: proxy.url } };
            const r = await upload(data, b.url(key), {
              store,
              partSize: 5 * MiB,
              ifNotExists,
            });
            expect(proxy.dropped).toBe(1);
            expect(r).toMatchObject({ bytes: data.length, parts: 3 });
            const info = await head(b.url(key), { store: b.store });
            expect(r.etag).toBe(info.etag);
          } finally {
            await proxy.close();
          }
          expect((await get(b.url(key), { store: b.store })).equals(data)).toBe(true);
          expect(await uploadsInProgress(key)).toEqual([]);
        });
      }
    });

    describe('listings list every key exactly as stored', () => {
      it('folder markers keep their slash; downloadPrefix skips them', async () => {
        const prefix = uniqueKey('markers');
        const data = bytes(100, 15);
        await putS3Raw({
          [`${prefix}/data/`]: Buffer.alloc(0),
          [`${prefix}/data/folder/`]: Buffer.alloc(0),
          [`${prefix}/data/folder/a.bin`]: data,
        });
        const listed = await listAll(b.url(`${prefix}/data/`), b.store);
        expect(listed.map((o) => o.key).sort()).toEqual([
          `${prefix}/data/`,
          `${prefix}/data/folder/`,
          `${prefix}/data/folder/a.bin`,
        ]);
        const marker = listed.find((o) => o.key === `${prefix}/data/folder/`)!;
        expect(marker).toMatchObject({ size: 0, relative: 'folder/' });
        expect(marker.url.endsWith('/data/folder/')).toBe(true);
        const dest = tempDir();
        const r = await downloadPrefix(b.url(`${prefix}/data/`), dest, { store: b.store });
        expect(r.results).toHaveLength(1);
        expect(r.skipped).toEqual([]);
        expect(readFileSync(join(dest, 'folder', 'a.bin')).equals(data)).toBe(true);
      });

      it('keys with \\n, \\t, \\x01, a backslash or a drive letter are listed; downloadPrefix skips only those it cannot place', async () => {
        const prefix = uniqueKey('oddkeys');
        const good = bytes(64, 16);
        // (MinIO refuses keys with a `.`, `..` or empty segment; the engine's unit test reads them
        // from a listing, and test/prefix.test.ts has downloadPrefix refuse them.)
        const odd = ['new\nline', 'tab\tbed', 'ctl\x01x', 'back\\slash', 'C:x', 'a/C:x'];
        const safe = ['ok.bin', 'sp ace+plus%25.bin', 'dir/ü.bin'];
        const objects: Record<string, Buffer> = {};
        for (const k of [...safe, ...odd]) objects[`${prefix}/${k}`] = good;
        await putS3Raw(objects);
        const listed = await listAll(b.url(`${prefix}/`), b.store);
        expect(listed.map((o) => o.relative).sort()).toEqual([...safe, ...odd].sort());
        expect(listed.map((o) => o.key).sort()).toEqual(Object.keys(objects).sort());
        const dest = tempDir();
        const r = await downloadPrefix(b.url(`${prefix}/`), dest, { store: b.store });
        expect(r.results.map((x) => x.dest.slice(dest.length + 1)).sort()).toEqual(
          safe.map((k) => join(...k.split('/'))).sort(),
        );
        for (const k of safe)
          expect(readFileSync(join(dest, ...k.split('/'))).equals(good)).toBe(true);
        expect(r.skipped).toHaveLength(odd.length);
        expect(r.skippedDetails.map((d) => d.key.slice(prefix.length + 1)).sort()).toEqual(
          [...odd].sort(),
        );
        for (const d of r.skippedDetails) {
          expect(d.reason).toBe('unsafeKey');
          expect(d.error?.code).toBe('UnsafeKey');
        }
        expect(readdirSync(dest).sort()).toEqual(['dir', 'ok.bin', 'sp ace+plus%25.bin']);
      });
    });
  }

  if (serves(engine, b, 'upload') && (b.name === 's3' || b.name === 'file')) {
    describe('upload(Readable) and an AbortSignal while the stream is idle', () => {
      const cases = [
        { name: 's3', ifNotExists: false },
        { name: 's3', ifNotExists: true },
        { name: 'file', ifNotExists: false },
      ];
      for (const c of cases.filter((x) => x.name === b.name)) {
        it(`${c.ifNotExists ? 'ifNotExists: ' : ''}abort settles at once and leaves nothing`, async () => {
          const key = `${uniqueKey('idle-abort')}/o.bin`;
          // One part's worth and more, then silence: the multipart upload is open on the server.
          const source = new Readable({ read() {} });
          source.push(bytes(6 * MiB, 13));
          const ac = new AbortController();
          const p = upload(source, b.url(key), {
            store: b.store,
            partSize: 5 * MiB,
            ifNotExists: c.ifNotExists,
            signal: ac.signal,
          });
          const settled = p.then(
            () => 'resolved',
            (e: unknown) => e,
          );
          await new Promise((r) => setTimeout(r, 1500));
          const at = performance.now();
          ac.abort();
          const outcome = await Promise.race([
            settled,
            new Promise((r) => setTimeout(() => r('still pending'), 3000)),
          ]);
          const took = performance.now() - at;
          expect(outcome).toBeInstanceOf(StorageError);
          expect((outcome as StorageError).code).toBe('Aborted');
          // Quiet, this settles in about 10 ms: the multipart upload's abort request (the
          // stream itself never ends). The issue asks for 100 ms; the bound leaves room for
          // that request on a loaded CI machine (1.3 s was seen there once, with a second
          // request since removed from the ifNotExists path).
          expect(took).toBeLessThan(2000);
          expect(source.destroyed).toBe(true);
          expect(await exists(b.url(key), { store: b.store })).toBe(false);
          if (c.name === 's3') {
            expect(await uploadsInProgress(dirname(key))).toEqual([]);
          } else {
            const dir = dirname(b.url(key));
            expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
          }
        });
      }
    });
  }

  if (engine === 'native' || b.js) {
    describe('ranges that select nothing', () => {
      it(`an empty range and a suffix of an empty object are an empty Buffer`, async () => {
        const key = `${uniqueKey('empty-range')}/e.bin`;
        await b.put(key, Buffer.alloc(0));
        for (const range of [{ suffix: 5 }, { suffix: 0 }, { offset: 0, length: 0 }]) {
          const got = await get(b.url(key), { store: b.store, range });
          expect(got.length, JSON.stringify(range)).toBe(0);
        }
        const small = `${uniqueKey('empty-range')}/s.bin`;
        await b.put(small, bytes(10, 17));
        expect((await get(b.url(small), { store: b.store, range: { suffix: 0 } })).length).toBe(0);
        expect(
          (await get(b.url(small), { store: b.store, range: { suffix: 20 } })).equals(
            bytes(10, 17),
          ),
        ).toBe(true);
        // A range that starts past the end is still refused, as HTTP's 416.
        const err = await rejection(
          get(b.url(small), { store: b.store, range: { offset: 11, length: 1 } }),
        );
        expect(err.code).toBe('InvalidArgument');
      });
    });
  }
}

/** Wrong-typed arguments to every public call, refused before any request. */
export function wrongTypedArguments(): void {
  describe('wrong-typed arguments', () => {
    const url = 's3://bucket/key';
    const bad: [string, () => Promise<unknown>, string][] = [
      ['get(123)', () => get(123 as never), 'url'],
      ['download(url, 123)', () => download(url, 123 as never), 'dest'],
      ['get signal', () => get(url, { signal: {} as never }), 'options.signal'],
      ['get onProgress', () => get(url, { onProgress: 5 as never }), 'options.onProgress'],
      ['get range', () => get(url, { range: { suffix: 'x' } as never }), 'options.range.suffix'],
      [
        'get range both',
        () => get(url, { range: { suffix: 1, offset: 2 } as never }),
        'options.range',
      ],
      ['get checksum', () => get(url, { checksum: 'always' as never }), 'options.checksum'],
      ['getDetailed into', () => getDetailed(url, { into: 'x' as never }), 'options.into'],
      ['head store', () => head(url, { store: 5 as never }), 'options.store'],
      [
        'exists config',
        () => exists(url, { store: { config: { a: 1 } as never } }),
        'options.store.config',
      ],
      [
        'upload partSize',
        () => upload(Buffer.alloc(1), url, { partSize: '8' as never }),
        'options.partSize',
      ],
      ['upload source', () => upload(42 as never, url), 'source'],
      [
        'upload metadata',
        () => upload(Buffer.alloc(1), url, { metadata: { a: 1 } as never }),
        'options.metadata',
      ],
      [
        'upload maxRetries',
        () => upload(Buffer.alloc(1), url, { store: { maxRetries: '3' as never } }),
        'options.store.maxRetries',
      ],
      [
        'upload rdma',
        () => upload(Buffer.alloc(1), url, { store: { rdma: 'yes' as never } }),
        'options.store.rdma',
      ],
      ['copy to', () => copy(url, 5 as never), 'to'],
      [
        'copy ifNotExists',
        () => copy(url, url, { ifNotExists: 'yes' as never }),
        'options.ifNotExists',
      ],
      ['remove', () => remove([1] as never), 'urls'],
      ['list', () => list(7 as never).next(), 'prefixUrl'],
      ['downloadMany items', () => downloadMany('x' as never), 'items'],
      [
        'downloadMany concurrency',
        () => downloadMany([], { concurrency: 1.5 }),
        'options.concurrency',
      ],
      [
        'downloadPrefix concurrency',
        () => downloadPrefix(url, '/tmp/x', { concurrency: 0 }),
        'options.concurrency',
      ],
      [
        'downloadPrefix filter',
        () => downloadPrefix(url, '/tmp/x', { filter: true as never }),
        'options.filter',
      ],
      [
        'uploadDir fileConcurrency',
        () => uploadDir('/tmp', url, { fileConcurrency: -1 }),
        'options.fileConcurrency',
      ],
      [
        'download durable',
        () => download(url, '/tmp/x', { durable: 'no' as never }),
        'options.durable',
      ],
      [
        'Store',
        async () => new Store('s3://b', { allowHttp: 'yes' as never }),
        'options.allowHttp',
      ],
      ['allocRdmaBuffer', async () => allocRdmaBuffer('x' as never), 'size'],
    ];
    it(`InvalidArgument naming the argument, for every public call`, async () => {
      for (const [what, call, name] of bad) {
        const err = await rejection(call());
        expect(err.code, what).toBe('InvalidArgument');
        expect(err.message, what).toContain(name);
      }
    });
  });
}
