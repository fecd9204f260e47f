// downloadMany's durability, seen from outside: a destination name only ever points at bytes
// already on disk. The kernel says which pages of a file are not yet written (cachestat(2),
// Linux 6.5+, through python3's ctypes): a file renamed before its sync would show dirty pages.
// Real HTTP fixture, real kill -9.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { downloadMany } from '../src/index.js';
import { distEntry, runModule } from './helpers/child.js';
import { bytes, servers, tempDir, uniqueKey, useEngine } from './helpers/servers.js';

/** Pages of each file not yet on disk: [dirty, under writeback]. */
function unwritten(paths: string[]): Record<string, [number, number]> {
  const py = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
class Stat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recent")]
out = {}
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    st = Stat()
    if libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(st), 0) != 0:
        raise OSError(ctypes.get_errno(), "cachestat " + p)
    os.close(fd)
    out[p] = [st.dirty, st.writeback]
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('python3', ['-c', py, ...paths], { encoding: 'utf8' }));
}

function seed(name: string, size: number, n: number): { url: string; path: string; data: Buffer } {
  const key = `${uniqueKey('durability-batch')}/${name}`;
  const data = bytes(size, n);
  const path = join(servers().http.root, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return { url: `${servers().http.url}/${key}`, path: `/${key}`, data };
}

async function waitFor(cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});
afterEach(async () => {
  await fetch(`${servers().http.url}/__fault`, { method: 'DELETE' });
});

describe('downloadMany: no destination name before its bytes are durable', () => {
  it('when it resolves, every file is in place with nothing left to write', async () => {
    useEngine('native');
    const objects = Array.from({ length: 40 }, (_, i) =>
      seed(`o${i}.bin`, 64 * 1024 + i * 4099, i + 1),
    );
    const dir = tempDir();
    const items = objects.map((o, i) => ({
      url: o.url,
      dest: join(dir, `d${i % 3}`, `o${i}.bin`),
    }));
    const results = await downloadMany(items, { concurrency: 8 });
    expect(results.map((r) => r.bytes)).toEqual(objects.map((o) => o.data.length));
    for (const [i, it] of items.entries()) {
      expect(readFileSync(it.dest).equals(objects[i]!.data)).toBe(true);
    }
    const pending = Object.entries(unwritten(items.map((it) => it.dest))).filter(
      ([, [dirty, wb]]) => dirty + wb > 0,
    );
    expect(pending).toEqual([]);
    for (const d of ['d0', 'd1', 'd2']) {
      expect(readdirSync(join(dir, d)).filter((f) => f.endsWith('.part'))).toEqual([]);
    }
  });

  it('killed mid-batch: each destination there is whole and on disk, the rest only temporaries', async () => {
    const small = Array.from({ length: 12 }, (_, i) => seed(`s${i}.bin`, 300 * 1024, 50 + i));
    const slow = seed('slow.bin', 16 * 1024 * 1024, 99);
    await fetch(`${servers().http.url}/__fault`, {
      method: 'POST',
      body: JSON.stringify({ path: slow.path, kind: 'throttle', bytesPerSec: 1024 * 1024 }),
    });
    const dir = tempDir();
    const items = [
      { url: slow.url, dest: join(dir, 'slow.bin') },
      ...small.map((o, i) => ({ url: o.url, dest: join(dir, `s${i}.bin`) })),
    ];
    const { child, done } = runModule(
      `import { downloadMany } from ${JSON.stringify(distEntry())};
       await downloadMany(${JSON.stringify(items)}, { concurrency: 4 });
       console.log('finished');`,
      { OBJGET_ENGINE: 'native' },
    );
    // The small files are through and the slow one is landing: kill without warning.
    await waitFor(() => small.every((_, i) => existsSync(join(dir, `s${i}.bin`))));
    await waitFor(() => readdirSync(dir).some((f) => f.startsWith('.slow.bin.objget-')));
    child.kill('SIGKILL');
    const r = await done;
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout).not.toContain('finished');
    expect(existsSync(join(dir, 'slow.bin'))).toBe(false);
    const there = readdirSync(dir);
    const dests = there.filter((f) => !f.endsWith('.part'));
    expect(
      there
        .filter((f) => f.endsWith('.part'))
        .every((f) => /^\.(slow|s\d+)\.bin\.objget-[0-9a-f]{16}\.part$/.test(f)),
    ).toBe(true);
    for (const f of dests) {
      const i = Number(/^s(\d+)\.bin$/.exec(f)![1]);
      expect(readFileSync(join(dir, f)).equals(small[i]!.data), f).toBe(true);
    }
    const pending = Object.entries(unwritten(dests.map((f) => join(dir, f)))).filter(
      ([, [dirty, wb]]) => dirty + wb > 0,
    );
    expect(pending).toEqual([]);
  });
});
