// Where downloads write on the local filesystem (issue 9): links planted beside a resumable
// download or inside downloadPrefix's destination, destinations that are devices or FIFOs,
// names as long as the filesystem allows, and a disk that fills up. Real servers, real
// filesystems (a small tmpfs mounted for the test), both engines where they apply.
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants as fsc,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  download,
  DownloadManyError,
  downloadPrefix,
  registerScheme,
  unregisterScheme,
  type StorageError,
} from '../src/index.js';
import { rejection } from './helpers/expect.js';
import { clearFaults, seedHttp } from './helpers/fixture.js';
import { backends, bytes, tempDir, uniqueKey, useEngine } from './helpers/servers.js';

const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});
afterEach(async () => {
  unregisterScheme('hfs');
  await clearFaults();
});

const PART = 64 * 1024;
const s3 = () => backends().find((b) => b.name === 's3')!;

/** A directory outside the destination, with one file whose bytes must never change. */
function outside(): { dir: string; file: string; data: Buffer } {
  const dir = tempDir();
  const file = join(dir, 'precious.txt');
  const data = Buffer.from('precious, never to be written by objget\n');
  writeFileSync(file, data);
  return { dir, file, data };
}

function untouched(o: { dir: string; file: string; data: Buffer }): void {
  expect(readdirSync(o.dir)).toEqual(['precious.txt']);
  expect(lstatSync(o.file).isFile()).toBe(true);
  expect(readFileSync(o.file)).toEqual(o.data);
}

describe('native engine: resume never follows a planted link (item 1)', () => {
  const planted = [
    ['the part file', (n: string) => `.${n}.objget.part`],
    ["the journal's temporary", (n: string) => `.${n}.objget.json.tmp`],
    ['the journal', (n: string) => `.${n}.objget.json`],
  ] as const;
  for (const [what, nameOf] of planted) {
    it(`a link at ${what} is refused with UnsafeKey; nothing outside is touched`, async () => {
      useEngine('native');
      const o = seedHttp(5 * PART + 17, 'planted');
      const away = outside();
      const dir = tempDir();
      const dest = join(dir, 'obj.bin');
      symlinkSync(away.file, join(dir, nameOf('obj.bin')));
      const err = await rejection(
        download(o.url, dest, { resume: true, partSize: PART, durable: false }),
      );
      expect(err.code).toBe('UnsafeKey');
      untouched(away);
      expect(existsSync(dest)).toBe(false);
      expect(() => lstatSync(dest)).toThrow();
      // The planted link is left as it was found; objget made nothing else.
      expect(readdirSync(dir)).toEqual([nameOf('obj.bin')]);
    });
  }

  it('a part file owned by another user is refused; a clean directory still resumes', async () => {
    useEngine('native');
    const o = seedHttp(3 * PART, 'planted-owner');
    const dir = tempDir();
    const part = join(dir, '.obj.bin.objget.part');
    writeFileSync(part, 'not yours');
    execFileSync('chown', ['65534:65534', part]);
    const err = await rejection(download(o.url, join(dir, 'obj.bin'), { resume: true }));
    expect(err.code).toBe('UnsafeKey');
    expect(readFileSync(part, 'utf8')).toBe('not yours');
    rmSync(part);
    const r = await download(o.url, join(dir, 'obj.bin'), { resume: true, partSize: PART });
    expect(r.bytes).toBe(o.data.length);
    expect(readFileSync(join(dir, 'obj.bin'))).toEqual(o.data);
    expect(readdirSync(dir)).toEqual(['obj.bin']);
  });
});

describe('downloadPrefix never writes through a link inside destDir (item 2)', () => {
  it('native, S3: destDir/sub -> elsewhere; p/sub/x.txt is UnsafeKey, the rest lands', async () => {
    useEngine('native');
    const b = s3();
    const prefix = uniqueKey('linked');
    await b.put(`${prefix}/ok.txt`, bytes(100, 1));
    await b.put(`${prefix}/sub/x.txt`, bytes(200, 2));
    await b.put(`${prefix}/deep/sub/y.txt`, bytes(300, 3));
    const away = outside();
    const root = tempDir();
    symlinkSync(away.dir, join(root, 'sub'));
    mkdirSync(join(root, 'deep'));
    symlinkSync(away.dir, join(root, 'deep', 'sub'));
    const err = (await rejection(
      downloadPrefix(b.url(`${prefix}/`), root, { store: b.store }),
    )) as DownloadManyError<unknown>;
    expect(err).toBeInstanceOf(DownloadManyError);
    const refused = err.outcomes.filter((x) => x.status === 'rejected') as {
      reason: StorageError;
    }[];
    expect(refused.map((r) => r.reason.code)).toEqual(['UnsafeKey', 'UnsafeKey']);
    untouched(away);
    expect(readFileSync(join(root, 'ok.txt'))).toEqual(bytes(100, 1));
    expect(readdirSync(root).sort()).toEqual(['deep', 'ok.txt', 'sub']);
  });

  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: a registered scheme's downloadPrefix refuses a linked directory too`, async () => {
      useEngine(engine);
      registerScheme('hfs', {
        get: async (url) => Buffer.from(url),
        async *list(prefixUrl) {
          for (const k of ['ok.txt', 'sub/x.txt', 'new/dir/z.txt']) {
            yield { key: `p/${k}`, url: `${prefixUrl}${k}`, size: `${prefixUrl}${k}`.length };
          }
        },
      });
      const away = outside();
      const root = tempDir();
      symlinkSync(away.dir, join(root, 'sub'));
      const err = (await rejection(
        downloadPrefix('hfs://host/p/', root),
      )) as DownloadManyError<unknown>;
      expect(err.code).toBe('UnsafeKey');
      expect(err.failed).toBe(1);
      untouched(away);
      expect(readFileSync(join(root, 'ok.txt'), 'utf8')).toBe('hfs://host/p/ok.txt');
      expect(readFileSync(join(root, 'new/dir/z.txt'), 'utf8')).toBe('hfs://host/p/new/dir/z.txt');
    });
  }
});

/** Read a FIFO to its end while `write` runs; returns what came through. */
async function drain(fifo: string, write: () => Promise<unknown>): Promise<Buffer> {
  const fd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
  const got: Buffer[] = [];
  const buf = Buffer.alloc(1 << 16);
  let settled = false;
  const done = write().finally(() => {
    settled = true;
  });
  done.catch(() => undefined);
  try {
    for (;;) {
      let n = 0;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        n = -1;
      }
      if (n > 0) got.push(Buffer.from(buf.subarray(0, n)));
      else if (n === 0 && settled) break;
      else await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    closeSync(fd);
  }
  await done;
  return Buffer.concat(got);
}

describe('a destination that is a device or a FIFO is written in order, never replaced (item 9)', () => {
  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: a character device (a node like /dev/null) stays a device`, async () => {
      useEngine(engine);
      const o = seedHttp(5 * PART + 3, 'devnull');
      const dir = tempDir();
      const dev = join(dir, 'null');
      execFileSync('mknod', [dev, 'c', '1', '3']);
      const r = await download(o.url, dev, { partSize: PART });
      expect(r.bytes).toBe(o.data.length);
      expect(lstatSync(dev).isCharacterDevice()).toBe(true);
      expect(readdirSync(dir)).toEqual(['null']);
      // A second time, and through a link to it (followed for a plain download).
      symlinkSync(dev, join(dir, 'link'));
      await download(o.url, join(dir, 'link'), { partSize: PART });
      expect(lstatSync(join(dir, 'link')).isSymbolicLink()).toBe(true);
      expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    });

    it(`${engine}: a FIFO receives the object in order and stays a FIFO`, async () => {
      useEngine(engine);
      const o = seedHttp(7 * PART + 11, 'fifo');
      const dir = tempDir();
      const fifo = join(dir, 'pipe');
      execFileSync('mkfifo', [fifo]);
      const got = await drain(fifo, () => download(o.url, fifo, { partSize: PART }));
      expect(got.equals(o.data)).toBe(true);
      expect(lstatSync(fifo).isFIFO()).toBe(true);
      expect(readdirSync(dir)).toEqual(['pipe']);
      // No reader: an error at once, not a wait, and the FIFO is still there.
      const err = await rejection(download(o.url, fifo));
      expect(err.code).toBe('Io');
      expect(lstatSync(fifo).isFIFO()).toBe(true);
    });

    it(`${engine}: a destination that is a link to a regular file: the link is replaced, its target untouched`, async () => {
      useEngine(engine);
      const o = seedHttp(2 * PART + 1, 'dest-link');
      const away = outside();
      const dir = tempDir();
      const dest = join(dir, 'obj.bin');
      symlinkSync(away.file, dest);
      await download(o.url, dest, { partSize: PART });
      expect(lstatSync(dest).isFile()).toBe(true);
      expect(readFileSync(dest)).toEqual(o.data);
      untouched(away);
    });
  }
});

describe('every legal file name works (item 10)', () => {
  const names = [
    'n'.repeat(255),
    'é'.repeat(127), // 254 bytes
    `${'x'.repeat(226)}`,
  ];
  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: names of 226 to 255 bytes download`, async () => {
      useEngine(engine);
      const o = seedHttp(3 * PART + 5, 'longname');
      const dir = tempDir();
      for (const name of names) {
        const r = await download(o.url, join(dir, name), { partSize: PART });
        expect(r.bytes).toBe(o.data.length);
        expect(readFileSync(join(dir, name))).toEqual(o.data);
      }
      expect(readdirSync(dir).sort()).toEqual([...names].sort());
    });
  }

  it('native: with resume, names of 238 to 255 bytes download and leave nothing beside', async () => {
    useEngine('native');
    const o = seedHttp(3 * PART + 5, 'longname-resume');
    const dir = tempDir();
    for (const name of [...names, 'r'.repeat(238)]) {
      const r = await download(o.url, join(dir, name), { resume: true, partSize: PART });
      expect(r.bytes).toBe(o.data.length);
      expect(readFileSync(join(dir, name))).toEqual(o.data);
    }
    expect(readdirSync(dir).length).toBe(names.length + 1);
  });
});

describe('a disk that fills up: Io, nothing left behind, and the process goes on', () => {
  let mnt: string;
  beforeAll(() => {
    mnt = join(tempDir(), 'small');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  });
  afterAll(() => {
    execFileSync('umount', [mnt]);
  });
  afterEach(() => {
    for (const f of readdirSync(mnt)) rmSync(join(mnt, f), { recursive: true, force: true });
  });

  const full = (err: StorageError): void => {
    expect(err.code).toBe('Io');
    expect(err.message).toMatch(/no space left/i);
  };

  for (const engine of ['native', 'js'] as const) {
    it(`${engine}: download of 2 MiB into 1 MiB`, async () => {
      useEngine(engine);
      const o = seedHttp(2 << 20, 'enospc');
      full(await rejection(download(o.url, join(mnt, 'big.bin'), { partSize: 256 << 10 })));
      expect(readdirSync(mnt)).toEqual([]);
      const small = seedHttp(50_000, 'enospc-after');
      await download(small.url, join(mnt, 'small.bin'));
      expect(readFileSync(join(mnt, 'small.bin'))).toEqual(small.data);
    });
  }

  it('native: resume leaves no part file or journal on a full disk', async () => {
    useEngine('native');
    const o = seedHttp(2 << 20, 'enospc-resume');
    full(
      await rejection(
        download(o.url, join(mnt, 'big.bin'), {
          resume: true,
          partSize: 256 << 10,
          durable: false,
        }),
      ),
    );
    expect(readdirSync(mnt)).toEqual([]);
  });

  it('native, S3: downloadPrefix fails the objects that do not fit and leaves no partial', async () => {
    useEngine('native');
    const b = s3();
    const prefix = uniqueKey('enospc-tree');
    const files = [0, 1, 2].map((i) => bytes(400 * 1024, 40 + i));
    for (const [i, data] of files.entries()) await b.put(`${prefix}/d/${i}.bin`, data);
    const err = (await rejection(
      downloadPrefix(b.url(`${prefix}/`), mnt, { store: b.store, concurrency: 3 }),
    )) as DownloadManyError<unknown>;
    expect(err).toBeInstanceOf(DownloadManyError);
    expect(err.failed).toBeGreaterThan(0);
    for (const x of err.outcomes) {
      if (x.status === 'rejected') full(x.reason);
    }
    const left = readdirSync(join(mnt, 'd'));
    for (const name of left) {
      expect(name).toMatch(/^\d\.bin$/);
      expect(readFileSync(join(mnt, 'd', name))).toEqual(files[Number(name[0])]);
    }
    expect(left.length).toBe(3 - err.failed);
    rmSync(join(mnt, 'd'), { recursive: true });
    const r = await downloadPrefix(b.url(`${prefix}/`), mnt, {
      store: b.store,
      filter: (x) => x.key.endsWith('0.bin'),
    });
    expect(r.results.length).toBe(1);
  });
});
