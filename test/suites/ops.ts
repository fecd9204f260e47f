// Object operations on real servers: upload (single and multipart, ifNotExists), exists,
// remove, list, copy.
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { expect, it } from 'vitest';
import { copy, download, exists, get, list, remove, upload } from '../../src/index.js';
import { rejection } from '../helpers/expect.js';
import { faultProxy } from '../helpers/fault-proxy.js';
import { startGateway } from '../helpers/gateway.js';
import type { EngineName } from '../helpers/matrix.js';
import {
  bytes,
  s3Client,
  servers,
  tempDir,
  uniqueKey,
  uploadsInProgress,
  serves,
  type Backend,
} from '../helpers/servers.js';

const MiB = 1024 * 1024;

// fake-gcs-server does not accept the XML-API PUT object_store's GCS client writes with
// ("invalid uploadType"): GCS writes are untested here (README, "Emulator gaps"); its reads,
// exists, list and remove are.
const WRITABLE = ['s3', 'azure', 'file'];

async function keys(prefixUrl: string, store: object): Promise<string[]> {
  const out: string[] = [];
  for await (const o of list(prefixUrl, { store })) out.push(o.key);
  return out.sort();
}

export function ops(engine: EngineName, b: Backend): void {
  if (engine === 'js' && !serves(engine, b, 'upload')) {
    if (b.name === 'http') {
      it('exists works; writes answer NotSupported', async () => {
        const key = `${uniqueKey('ops-js')}/o.bin`;
        await b.put(key, bytes(10, 1));
        expect(await exists(b.url(key))).toBe(true);
        expect(await exists(b.url(`${key}.none`))).toBe(false);
        for (const p of [
          upload(Buffer.from('x'), b.url(key)),
          remove(b.url(key)),
          copy(b.url(key), b.url(`${key}.2`)),
          keys(b.url(''), {}),
        ]) {
          expect((await rejection(p)).code).toBe('NotSupported');
        }
      });
    }
    return;
  }

  if (WRITABLE.includes(b.name)) {
    it(`upload, exists, list, copy, remove`, async () => {
      const prefix = uniqueKey(`ops-${b.name}`);
      const data = bytes(1000, 3);
      const r = await upload(data, b.url(`${prefix}/a.bin`), {
        store: b.store,
        ...(b.name === 'file' ? {} : { contentType: 'application/x-test' }),
      });
      expect(r).toMatchObject({ bytes: 1000, parts: 1, engine });
      expect(await exists(b.url(`${prefix}/a.bin`), { store: b.store })).toBe(true);
      expect(await exists(b.url(`${prefix}/none.bin`), { store: b.store })).toBe(false);
      expect((await get(b.url(`${prefix}/a.bin`), { store: b.store })).equals(data)).toBe(true);
      await copy(b.url(`${prefix}/a.bin`), b.url(`${prefix}/sub/b.bin`), { store: b.store });
      expect((await get(b.url(`${prefix}/sub/b.bin`), { store: b.store })).equals(data)).toBe(true);
      const listed = [];
      for await (const o of list(b.url(`${prefix}/`), { store: b.store })) listed.push(o);
      expect(listed.map((o) => o.key.slice(o.key.indexOf(prefix))).sort()).toEqual([
        `${prefix}/a.bin`,
        `${prefix}/sub/b.bin`,
      ]);
      expect(listed.every((o) => o.size === 1000)).toBe(true);
      // Listed URLs work with every other call.
      expect((await get(listed[0]!.url, { store: b.store })).equals(data)).toBe(true);
      await remove([b.url(`${prefix}/a.bin`), b.url(`${prefix}/sub/b.bin`)], { store: b.store });
      expect(await keys(b.url(`${prefix}/`), b.store)).toEqual([]);
      // Removing what is not there is not an error.
      await remove(b.url(`${prefix}/a.bin`), { store: b.store });
      const err = await rejection(
        copy(b.url(`${prefix}/missing`), b.url(`${prefix}/x`), { store: b.store }),
      );
      expect(err.code).toBe('NotFound');
    });

    it(`ifNotExists refuses to overwrite (single PUT and multipart)`, async () => {
      const sizes = [1000, 12 * MiB + 5];
      for (const size of sizes) {
        const prefix = uniqueKey(`once-${b.name}`);
        const url = b.url(`${prefix}/o.bin`);
        const first = bytes(size, 1);
        const opts = { store: b.store, ifNotExists: true, partSize: 5 * MiB };
        const r = await upload(first, url, opts);
        expect(r.parts).toBe(Math.max(1, Math.ceil(size / (5 * MiB))));
        const err = await rejection(upload(bytes(size, 2), url, opts));
        expect(err.code, `size ${size}`).toBe('AlreadyExists');
        expect((await get(url, { store: b.store })).equals(first)).toBe(true);
        // Nothing staged is left beside it.
        expect((await keys(b.url(`${prefix}/`), b.store)).length).toBe(1);
      }
    });

    it(`two racing ifNotExists uploads: one wins, the other gets AlreadyExists`, async () => {
      for (const size of [1000, 12 * MiB + 5]) {
        const url = b.url(`${uniqueKey(`race-${b.name}`)}/o.bin`);
        const bodies = [bytes(size, 10), bytes(size, 20)];
        const outcomes = await Promise.allSettled(
          bodies.map((d) =>
            upload(d, url, { store: b.store, ifNotExists: true, partSize: 5 * MiB }),
          ),
        );
        const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
        expect(won.length, `size ${size}`).toBe(1);
        const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        expect(lost.reason.code).toBe('AlreadyExists');
        expect((await get(url, { store: b.store })).equals(bodies[won[0]!]!)).toBe(true);
      }
    });

    it(`a multipart upload from a file round-trips byte-identical`, async () => {
      const dir = tempDir();
      const data = bytes(21 * MiB + 3, 9);
      writeFileSync(join(dir, 'src.bin'), data);
      const url = b.url(`${uniqueKey(`mp-${b.name}`)}/big.bin`);
      const seen: number[] = [];
      const r = await upload(join(dir, 'src.bin'), url, {
        store: b.store,
        partSize: 5 * MiB,
        concurrency: 3,
        onProgress: (p) => seen.push(p.bytes),
      });
      expect(r).toMatchObject({ bytes: data.length, parts: 5 });
      expect(seen.at(-1)).toBe(data.length);
      expect((await get(url, { store: b.store })).equals(data)).toBe(true);
      expect(r.checksum?.algorithm).toBe('crc64nvme');
      if (b.name === 's3') {
        // Every part went with a CRC64NVME the server checked; the object keeps the
        // full-object value, the one the upload reported, and a download verifies it.
        const d = await download(url, join(dir, 'back.bin'), { store: b.store });
        expect(d.checksum).toEqual(r.checksum);
      }
    });
  }

  if (b.name === 's3') {
    it('s3 on loopback signs UNSIGNED-PAYLOAD by default, the SHA-256 when asked (seen by a gateway)', async () => {
      const gw = await startGateway();
      try {
        const through = (extra: Record<string, string>) => ({
          ...b.store,
          config: { ...b.store.config, aws_endpoint: gw.url, ...extra },
        });
        const key = uniqueKey('payload');
        await upload(bytes(1000, 1), b.url(`${key}/a`), { store: through({}) });
        await upload(bytes(1000, 1), b.url(`${key}/b`), {
          store: through({ aws_unsigned_payload: 'false' }),
        });
        const puts = (await gw.log()).filter((e) => e.method === 'PUT');
        expect(puts.find((e) => e.path.endsWith('/a'))?.contentSha256).toBe('UNSIGNED-PAYLOAD');
        expect(puts.find((e) => e.path.endsWith('/b'))?.contentSha256).toMatch(/^[0-9a-f]{64}$/);
      } finally {
        await gw.stop();
      }
    });

    it('ifNotExists multipart is completed with a signed If-None-Match: attributes kept, nothing staged', async () => {
      const prefix = uniqueKey('cond-mp');
      const url = b.url(`${prefix}/o.bin`);
      const data = bytes(11 * MiB + 1, 3);
      const r = await upload(data, url, {
        store: b.store,
        ifNotExists: true,
        partSize: 5 * MiB,
        contentType: 'application/x-objget',
        metadata: { origin: 'test' },
      });
      expect(r).toMatchObject({ parts: 3, bytes: data.length, path: 'http' });
      const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
      const c = await s3Client();
      try {
        const h = await c.send(
          new HeadObjectCommand({ Bucket: servers().s3.bucket, Key: `${prefix}/o.bin` }),
        );
        expect(h.ContentType).toBe('application/x-objget');
        expect(h.Metadata).toEqual({ origin: 'test' });
      } finally {
        c.destroy();
      }
      // One object, no staging key, no upload left open.
      expect((await keys(b.url(`${prefix}/`), b.store)).length).toBe(1);
      expect(await uploadsInProgress(prefix)).toEqual([]);
      expect((await get(url, { store: b.store })).equals(data)).toBe(true);
    });

    it('a 1 GiB multipart upload round-trips byte-identical', { timeout: 180_000 }, async () => {
      const dir = tempDir();
      const src = join(dir, 'gib.bin');
      // 1 GiB of random bytes, hashed as written, never held whole.
      const fd = openSync(src, 'w');
      const want = createHash('sha256');
      const chunk = Buffer.allocUnsafe(64 * MiB);
      for (let i = 0; i < 16; i++) {
        randomFillSync(chunk);
        want.update(chunk);
        writeSync(fd, chunk);
      }
      closeSync(fd);
      const url = b.url(`${uniqueKey('gib')}/gib.bin`);
      const r = await upload(src, url, { store: b.store });
      expect(r).toMatchObject({ bytes: 1024 * MiB, parts: 64 });
      const back = join(dir, 'back.bin');
      const d = await download(url, back, { store: b.store, durable: false });
      expect(d.checksum?.algorithm).toBe('crc64nvme');
      const got = createHash('sha256');
      for await (const c of createReadStream(back)) got.update(c as Buffer);
      expect(got.digest('hex')).toBe(want.digest('hex'));
      await remove(url, { store: b.store });
    });

    it('a Readable is streamed in parts; one that fails mid-way leaves no upload behind', async () => {
      const data = bytes(21 * MiB + 3, 12);
      // Chunks of 64 KiB, as a file or socket stream delivers them.
      const chunked = (buf: Buffer, failAt?: number): Readable =>
        Readable.from(
          (async function* () {
            for (let at = 0; at < buf.length; at += 64 * 1024) {
              if (failAt !== undefined && at >= failAt) throw new Error('source broke');
              yield buf.subarray(at, at + 64 * 1024);
            }
          })(),
        );
      const url = b.url(`${uniqueKey('stream')}/s.bin`);
      const r = await upload(chunked(data), url, { store: b.store, partSize: 5 * MiB });
      expect(r).toMatchObject({ bytes: data.length, parts: 5 });
      expect((await get(url, { store: b.store })).equals(data)).toBe(true);
      const small = await upload(chunked(bytes(1000, 1)), `${url}.small`, { store: b.store });
      expect(small).toMatchObject({ bytes: 1000, parts: 1 });
      const again = await rejection(
        upload(chunked(data), url, { store: b.store, partSize: 5 * MiB, ifNotExists: true }),
      );
      expect(again.code).toBe('AlreadyExists');
      const broken = `${url}.broken`;
      const err = await rejection(
        upload(chunked(data, 12 * MiB), broken, { store: b.store, partSize: 5 * MiB }),
      );
      expect(err.message).toMatch(/source broke/);
      expect(await exists(broken, { store: b.store })).toBe(false);
      expect(await uploadsInProgress(broken.slice(`s3://${servers().s3.bucket}/`.length))).toEqual(
        [],
      );
    });

    it('a failure at part 3 aborts the multipart upload: no upload in progress, no object', async () => {
      const s = servers();
      const key = `${uniqueKey('mp-fail')}/o.bin`;
      // MinIO behind a proxy that answers the upload of part 3 with a 500.
      const proxy = await faultProxy(s.s3.endpoint, (req) =>
        Boolean(req.method === 'PUT' && req.url?.includes('partNumber=3')),
      );
      try {
        const store = {
          ...b.store,
          config: { ...b.store.config, aws_endpoint: proxy.url },
          maxRetries: 0,
        };
        const err = await rejection(
          upload(bytes(20 * MiB, 4), b.url(key), { store, partSize: 5 * MiB, concurrency: 2 }),
        );
        expect(err.code).toBe('Generic');
        expect(proxy.failed).toBe(1);
      } finally {
        await proxy.close();
      }
      expect(await uploadsInProgress(key)).toEqual([]);
      expect(await exists(b.url(key), { store: b.store })).toBe(false);
    });
  }

  if (b.name === 'gcs') {
    it('(emulator gaps aside) exists, list and remove', async () => {
      const prefix = uniqueKey('ops-gcs');
      await b.put(`${prefix}/a.bin`, bytes(10, 1));
      await b.put(`${prefix}/b/c.bin`, bytes(20, 2));
      expect(await exists(b.url(`${prefix}/a.bin`), { store: b.store })).toBe(true);
      expect(await exists(b.url(`${prefix}/none`), { store: b.store })).toBe(false);
      const listed = await keys(b.url(`${prefix}/`), b.store);
      expect(listed).toEqual([`${prefix}/a.bin`, `${prefix}/b/c.bin`]);
      await remove([b.url(`${prefix}/a.bin`), b.url(`${prefix}/b/c.bin`)], { store: b.store });
      expect(await keys(b.url(`${prefix}/`), b.store)).toEqual([]);
    });
  }

  if (b.name === 'file') {
    it('contentType and metadata cannot be stored on a local file: NotSupported', async () => {
      const url = b.url(`${uniqueKey('ops-attr')}/o.bin`);
      const err = await rejection(upload(Buffer.from('x'), url, { contentType: 'text/plain' }));
      expect(err.code).toBe('NotSupported');
      expect(await exists(url)).toBe(false);
    });
  }

  if (b.name === 'http') {
    it('exists answers; writes are NotSupported on a read-only server', async () => {
      const key = `${uniqueKey('ops-http')}/o.bin`;
      await b.put(key, bytes(10, 1));
      expect(await exists(b.url(key), { store: b.store })).toBe(true);
      expect(await exists(b.url(`${key}.none`), { store: b.store })).toBe(false);
    });
  }
}
