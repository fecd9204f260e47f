// The `objget` command line (src/cli/), spawned as users run it (node dist/cli.js) against MinIO
// and the HTTP fixture: every command, each exit code class, --json, non-TTY output, a
// pseudo-terminal's bars (script(1)) and Ctrl-C mid-transfer.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/child.js';
import { fault, seedHttp } from './helpers/fixture.js';
import {
  bytes,
  putS3Raw,
  s3Client,
  SENTINEL_SECRET,
  servers,
  tempDir,
  uniqueKey,
  uploadsInProgress,
} from './helpers/servers.js';

const CLI = join(ROOT, 'dist', 'cli.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout's bytes, as written. */
  raw: Buffer;
  stderr: string;
}

/** The CLI's environment: MinIO's credentials as the library reads them, no terminal. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const s = servers();
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: s.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s.s3.secretAccessKey,
    AWS_REGION: s.s3.region,
    ...extra,
  };
}

/** Spawn the built CLI; `onStdout` sees its output as it comes (to act mid-transfer). */
function start(
  args: string[],
  o: { input?: Buffer | string; env?: Record<string, string>; cwd?: string } = {},
) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build:ts'`);
  const child = spawn(process.execPath, [CLI, ...args], {
    env: env(o.env),
    cwd: o.cwd ?? ROOT,
    stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const r: Run = { code: null, signal: null, stdout: '', raw: Buffer.alloc(0), stderr: '' };
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    chunks.push(d);
    r.stdout += d;
  });
  child.stderr!.on('data', (d) => (r.stderr += d));
  if (o.input !== undefined) child.stdin!.end(o.input);
  const done = new Promise<Run>((res) =>
    child.on('close', (code, signal) =>
      res(Object.assign(r, { code, signal, raw: Buffer.concat(chunks) })),
    ),
  );
  return { child, r, done };
}

const cli = (args: string[], o: Parameters<typeof start>[1] = {}): Promise<Run> =>
  start(args, o).done;

/** NDJSON lines, each parsed. */
const events = (text: string): Record<string, unknown>[] =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const s3 = () => {
  const s = servers();
  return { url: (k: string) => `s3://${s.s3.bucket}/${k}`, flags: ['--endpoint', s.s3.endpoint] };
};

/** A fresh directory holding `in.bin` of `size` deterministic bytes. */
function localFile(size: number, seed: number): { dir: string; data: Buffer } {
  const dir = tempDir();
  const data = bytes(size, seed);
  writeFileSync(join(dir, 'in.bin'), data);
  return { dir, data };
}

async function s3Get(key: string): Promise<Buffer> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  try {
    const r = await c.send(new GetObjectCommand({ Bucket: servers().s3.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } finally {
    c.destroy();
  }
}

async function s3Keys(prefix: string): Promise<string[]> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  try {
    const r = await c.send(
      new ListObjectsV2Command({ Bucket: servers().s3.bucket, Prefix: prefix }),
    );
    return (r.Contents ?? []).map((o) => o.Key!);
  } finally {
    c.destroy();
  }
}

describe('objget: help, version, usage', () => {
  it('--version prints the package version; --help lists every command, the exit codes and keys', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
      bin: Record<string, string>;
    };
    expect(pkg.bin.objget).toBe('dist/cli.js');
    // The CLI uses the built library (dist/index.js), not a copy of it.
    const built = readFileSync(CLI, 'utf8');
    expect(built).toContain('from "./index.js"');
    expect(built).not.toContain('class StorageError');
    const v = await cli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    for (const c of ['cp', 'ls', 'stat', 'cat', 'rm', 'info', 'bench']) {
      expect(h.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    }
    // Not built yet (issue 14): nothing promises them.
    expect(h.stdout).not.toMatch(/sync|presign/);
    expect(h.stdout).toContain('130  interrupted');
    expect(h.stdout).toContain('s3://b/a%20b names the\nkey "a%20b"');
  });

  it('each command has --help with examples', async () => {
    for (const c of ['cp', 'ls', 'stat', 'cat', 'rm', 'info', 'bench']) {
      const r = await cli([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toContain('Examples:\n  $ objget ');
    }
  });

  it('a usage error exits 2: unknown command, unknown option, bad values, missing paths', async () => {
    for (const args of [
      ['frob'],
      ['cp', '--frob', 'a', 'b'],
      ['cp', '--concurrency', '0', 's3://b/k', 'x'],
      ['cp', '--part-size', '8 parsecs', 's3://b/k', 'x'],
      ['cat', '--range', '9-3', 's3://b/k'],
      ['cp', 's3://b/k'],
      ['cp', './a', './b'],
      ['cp', '--content-type', 'text/plain', 's3://b/k', './x'],
      // The library lists below a prefix, never a whole bucket: said so.
      ['ls', 's3://b/'],
      ['rm', '-r', '--yes', 's3://b'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr.length, args.join(' ')).toBeGreaterThan(0);
    }
    // The library's own usage errors (InvalidUrl, UnsupportedScheme, InvalidArgument) too.
    const scheme = await cli(['cp', 'bogus://b/k', './x']);
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toContain('UnsupportedScheme');
  });
});

describe('objget cp', () => {
  it('file → object → file, with a line per object and a summary when not on a terminal', async () => {
    const { url, flags } = s3();
    const { dir, data } = localFile(3 << 20, 11);
    const key = `${uniqueKey('cli-cp')}/in.bin`;
    const up = await cli(['cp', join(dir, 'in.bin'), url(key), ...flags]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`${join(dir, 'in.bin')} -> ${url(key)} (3.00 MiB)`);
    expect(up.stdout).toMatch(/^1 object, 3\.00 MiB in [\d.]+ s/m);
    expect((await s3Get(key)).equals(data)).toBe(true);
    // Into an existing directory: the object's own name.
    const out = join(dir, 'out');
    mkdirSync(out);
    const down = await cli(['cp', url(key), out, ...flags]);
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(join(out, 'in.bin')).equals(data)).toBe(true);
    expect(down.stdout).toContain(`${url(key)} -> ${join(out, 'in.bin')}`);
    // No bar, no escape sequence, off a terminal.
    expect(down.stderr).not.toMatch(/\x1b\[/);
  });

  it('the options reach the library: --part-size, --concurrency, --no-verify, --no-sync, --content-type, --metadata', async () => {
    const { url, flags } = s3();
    const { dir, data } = localFile(6 << 20, 12);
    const key = `${uniqueKey('cli-opts')}/in.bin`;
    const up = await cli([
      'cp',
      '--part-size',
      '5M',
      '--concurrency',
      '2',
      '--content-type',
      'application/x-test',
      '--metadata',
      'team=ml',
      '--json',
      join(dir, 'in.bin'),
      url(key),
      ...flags,
    ]);
    expect(up.code, up.stderr).toBe(0);
    const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
    const c = await s3Client();
    const h = await c.send(new HeadObjectCommand({ Bucket: servers().s3.bucket, Key: key }));
    c.destroy();
    expect(h.ContentType).toBe('application/x-test');
    expect(h.Metadata).toEqual({ team: 'ml' });
    // Two 5 MiB-or-less parts: a multipart ETag ("…-2").
    expect(h.ETag).toMatch(/-2"$/);
    const down = await cli([
      'cp',
      '--part-size',
      '1MiB',
      '--no-verify',
      '--no-sync',
      '--json',
      url(key),
      join(dir, 'out.bin'),
      ...flags,
    ]);
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(join(dir, 'out.bin')).equals(data)).toBe(true);
    // 6 parts of 1 MiB: the last progress event says so.
    const progress = events(down.stdout).filter((e) => e.event === 'progress');
    expect(progress.at(-1)).toMatchObject({ partsTotal: 6, bytes: data.length });
  });

  it('--recursive: a prefix into a directory and a directory to a prefix, --json events parsed', async () => {
    const { url, flags } = s3();
    const dir = tempDir();
    mkdirSync(join(dir, 'src', 'sub'), { recursive: true });
    writeFileSync(join(dir, 'src', 'a.txt'), 'alpha');
    writeFileSync(join(dir, 'src', 'sub', 'b.txt'), 'beta');
    const prefix = `${uniqueKey('cli-rec')}/`;
    const up = await cli(['cp', '-r', '--json', join(dir, 'src'), url(prefix), ...flags]);
    expect(up.code, up.stderr).toBe(0);
    const ups = events(up.stdout);
    expect(ups.filter((e) => e.event === 'done').map((e) => e.dst)).toEqual([
      url(`${prefix}a.txt`),
      url(`${prefix}sub/b.txt`),
    ]);
    expect(ups.at(-1)).toMatchObject({
      event: 'summary',
      objects: 2,
      bytes: 9,
      failed: 0,
      exitCode: 0,
    });
    expect((await s3Keys(prefix)).sort()).toEqual([`${prefix}a.txt`, `${prefix}sub/b.txt`]);

    const down = await cli([
      'cp',
      '--recursive',
      '--json',
      url(prefix),
      join(dir, 'dst'),
      ...flags,
    ]);
    expect(down.code, down.stderr).toBe(0);
    const downs = events(down.stdout);
    expect(downs.some((e) => e.event === 'progress' && e.objectsTotal === 2)).toBe(true);
    expect(downs.filter((e) => e.event === 'done')).toHaveLength(2);
    expect(readFileSync(join(dir, 'dst', 'sub', 'b.txt'), 'utf8')).toBe('beta');

    // --if-not-exists on a download set: existing files are skipped, and said so.
    const again = await cli([
      'cp',
      '-r',
      '--if-not-exists',
      url(prefix),
      join(dir, 'dst'),
      ...flags,
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`skipped ${url(`${prefix}a.txt`)}: its file exists`);
  });

  it('object → object in one store (server-side copy); --if-not-exists refuses an existing target (exit 5)', async () => {
    const { url, flags } = s3();
    const key = uniqueKey('cli-copy');
    await putS3Raw({ [`${key}/a`]: Buffer.from('copy me') });
    const r = await cli(['cp', url(`${key}/a`), url(`${key}/b`), ...flags]);
    expect(r.code, r.stderr).toBe(0);
    expect((await s3Get(`${key}/b`)).toString()).toBe('copy me');
    const again = await cli(['cp', '--if-not-exists', url(`${key}/a`), url(`${key}/b`), ...flags]);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain('AlreadyExists');
    // Between two stores: said to be unsupported, a usage error.
    const other = await cli(['cp', url(`${key}/a`), `s3://another-bucket/${key}`, ...flags]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('within one store');
  });

  it('- is stdin and stdout; keys are as stored: %20, ? and # are key characters, ls prints them back', async () => {
    const { url, flags } = s3();
    const prefix = uniqueKey('cli-keys');
    const key = `${prefix}/a%20b?c#d`;
    const up = await cli(['cp', '-', url(key), ...flags], { input: 'from stdin' });
    expect(up.code, up.stderr).toBe(0);
    expect(await s3Keys(prefix)).toEqual([key]);
    expect((await s3Get(key)).toString()).toBe('from stdin');
    const ls = await cli(['ls', url(`${prefix}/`), ...flags]);
    expect(ls.code, ls.stderr).toBe(0);
    const printed = ls.stdout.trim().split(/\s+/).at(-1)!;
    expect(printed).toBe(key);
    // Pasted back.
    const out = await cli(['cp', url(printed), '-', ...flags]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe('from stdin');
    // The record went to stderr, since stdout carried the object.
    expect(out.stderr).toContain(`${url(key)} -> -`);
  });

  it('from the HTTP fixture into a file', async () => {
    const obj = seedHttp(300_000, 'cli-http');
    const dir = tempDir();
    const r = await cli(['cp', obj.url, join(dir, 'x.bin')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'x.bin')).equals(obj.data)).toBe(true);
  });
});

describe('objget exit codes', () => {
  it('NotFound exits 3, with the code printed beside the message', async () => {
    const { url, flags } = s3();
    for (const args of [
      ['stat', url(uniqueKey('cli-missing'))],
      ['cp', url(uniqueKey('cli-missing')), join(tempDir(), 'x')],
      ['cat', `${servers().http.url}/no/such/object`],
    ]) {
      const r = await cli([...args, ...flags.filter(() => args[1]!.startsWith('s3'))]);
      expect(r.code, args.join(' ')).toBe(3);
      expect(r.stderr, args.join(' ')).toContain('NotFound');
    }
  });

  it('a wrong secret exits 4 and never shows the secret', async () => {
    const { url, flags } = s3();
    const r = await cli(['stat', url('anything'), ...flags], {
      env: { AWS_SECRET_ACCESS_KEY: SENTINEL_SECRET },
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/PermissionDenied|Unauthenticated/);
    expect(r.stdout + r.stderr).not.toContain(SENTINEL_SECRET);
  });

  it('--if-not-exists on an existing object exits 5', async () => {
    const { url, flags } = s3();
    const key = uniqueKey('cli-exists');
    await putS3Raw({ [key]: Buffer.from('there') });
    const r = await cli(['cp', '--if-not-exists', '-', url(key), ...flags], { input: 'new' });
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('AlreadyExists');
    expect((await s3Get(key)).toString()).toBe('there');
  });

  it('a corrupted body exits 6 (ChecksumMismatch) and leaves no file; --no-verify takes it', async () => {
    const obj = seedHttp(200_000, 'cli-corrupt');
    await fault({ path: obj.path, kind: 'corrupt', at: 1000 });
    const dir = tempDir();
    const r = await cli(['cp', obj.url, join(dir, 'x.bin')]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('ChecksumMismatch');
    expect(readdirSync(dir)).toEqual([]);
    const off = await cli(['cp', '--no-verify', obj.url, join(dir, 'x.bin')]);
    expect(off.code, off.stderr).toBe(0);
  });

  it('a set with one failed object exits 1, with a summary naming it and why; the rest arrive', async () => {
    const { url, flags } = s3();
    const prefix = uniqueKey('cli-partial');
    await putS3Raw({
      [`${prefix}/a.txt`]: Buffer.from('a'),
      [`${prefix}/b.txt`]: Buffer.from('b'),
    });
    const dir = tempDir();
    // a.txt cannot land: a non-empty directory holds its name.
    mkdirSync(join(dir, 'a.txt', 'inside'), { recursive: true });
    const r = await cli(['cp', '-r', url(`${prefix}/`), dir, ...flags]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^1 object, 1 B in [\d.]+ s .*, 1 failed$/m);
    expect(r.stdout).toMatch(
      new RegExp(`failed ${url(`${prefix}/a.txt`).replace(/[/.]/g, '\\$&')}: \\w+: `),
    );
    expect(readFileSync(join(dir, 'b.txt'), 'utf8')).toBe('b');
  });

  it('Ctrl-C mid-download aborts: exit 130, no file, no temporary', async () => {
    const obj = seedHttp(8 << 20, 'cli-sigint');
    await fault({ path: obj.path, kind: 'throttle', bytesPerSec: 1 << 20 });
    const dir = tempDir();
    const run = start(['cp', '--json', obj.url, join(dir, 'x.bin')]);
    await until(() => run.r.stdout.includes('"event":"progress"'));
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(events(r.stdout).at(-1)).toMatchObject({ event: 'summary', exitCode: 130 });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('Ctrl-C mid-upload from stdin aborts the multipart upload: exit 130, no object', async () => {
    const { url, flags } = s3();
    const key = uniqueKey('cli-sigint-up');
    // stdin stays open: 12 MiB written (two parts go up), then nothing more.
    const child = spawn(
      process.execPath,
      [CLI, 'cp', '--json', '--part-size', '5M', '-', url(key), ...flags],
      { env: env(), stdio: ['pipe', 'pipe', 'pipe'] },
    );
    child.stdin.on('error', () => {}); // EPIPE once it has exited
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const closed = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    child.stdin.write(bytes(12 << 20, 5));
    await until(async () => (await uploadsInProgress(key)).length > 0);
    child.kill('SIGINT');
    expect(await closed).toBe(130);
    expect(events(stdout).at(-1)).toMatchObject({ event: 'summary', exitCode: 130 });
    expect(await uploadsInProgress(key)).toEqual([]);
    expect(await s3Keys(key)).toEqual([]);
  });
});

describe('objget ls, stat, cat, rm', () => {
  it('ls: folder-style DIR lines by default; --recursive --long --human; --json', async () => {
    const { url, flags } = s3();
    const p = uniqueKey('cli-ls');
    await putS3Raw({
      [`${p}/top.bin`]: bytes(2048, 1),
      [`${p}/d1/x`]: Buffer.from('x'),
      [`${p}/d1/deeper/y`]: Buffer.from('y'),
      [`${p}/d2/z`]: Buffer.from('z'),
    });
    const plain = await cli(['ls', url(`${p}/`), ...flags]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(
      plain.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.trim().split(/\s+/)),
    ).toEqual([
      ['DIR', `${p}/d1/`],
      ['DIR', `${p}/d2/`],
      ['2048', `${p}/top.bin`],
    ]);
    const long = await cli(['ls', '-r', '-l', '-H', url(`${p}/`), ...flags]);
    expect(long.code, long.stderr).toBe(0);
    const lines = long.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.at(-1)).toMatch(
      new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\s+2\\.00 KiB  ${p}/top\\.bin  "[0-9a-f]+"$`),
    );
    const json = events((await cli(['ls', '--json', url(`${p}/d1/`), ...flags])).stdout);
    expect(json).toEqual([
      { type: 'dir', key: `${p}/d1/deeper/`, url: url(`${p}/d1/deeper/`) },
      expect.objectContaining({ type: 'object', key: `${p}/d1/x`, size: 1 }),
    ]);
    // An object named without a trailing slash is shown itself; nothing there is NotFound.
    const one = await cli(['ls', url(`${p}/top.bin`), ...flags]);
    expect(one.stdout.trim()).toBe(`2048  ${p}/top.bin`);
    expect((await cli(['ls', url(`${p}/none`), ...flags])).code).toBe(3);
  });

  it('stat and cat, on MinIO and the HTTP fixture; cat --range', async () => {
    const { url, flags } = s3();
    const key = uniqueKey('cli-stat');
    await putS3Raw({ [key]: Buffer.from('0123456789') });
    const st = await cli(['stat', '--json', url(key), ...flags]);
    expect(st.code, st.stderr).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({
      url: url(key),
      size: 10,
      etag: expect.any(String),
    });
    const text = await cli(['stat', url(key), ...flags]);
    expect(text.stdout).toMatch(/^size:\s+10$/m);
    expect((await cli(['cat', url(key), ...flags])).stdout).toBe('0123456789');
    expect((await cli(['cat', '--range', '2-4', url(key), ...flags])).stdout).toBe('234');
    expect((await cli(['cat', '--range', '7-', url(key), ...flags])).stdout).toBe('789');
    expect((await cli(['cat', '--range', '-2', url(key), ...flags])).stdout).toBe('89');
    const obj = seedHttp(5000, 'cli-cat');
    const cat = await cli(['cat', obj.url]);
    expect(cat.raw.equals(obj.data)).toBe(true);
    expect(JSON.parse((await cli(['stat', '--json', obj.url])).stdout).size).toBe(5000);
  });

  it('rm: one object; more than one needs --yes off a terminal (exit 2, nothing removed)', async () => {
    const { url, flags } = s3();
    const p = uniqueKey('cli-rm');
    await putS3Raw({
      [`${p}/a`]: Buffer.from('a'),
      [`${p}/b`]: Buffer.from('b'),
      [`${p}/c`]: Buffer.from('c'),
    });
    const one = await cli(['rm', url(`${p}/c`), ...flags]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe(`removed ${url(`${p}/c`)}\n`);
    const refused = await cli(['rm', '-r', url(`${p}/`), ...flags]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refusing to remove 2 objects');
    expect((await s3Keys(`${p}/`)).sort()).toEqual([`${p}/a`, `${p}/b`]);
    const yes = await cli(['rm', '-r', '--yes', '--json', url(`${p}/`), ...flags]);
    expect(yes.code, yes.stderr).toBe(0);
    expect(events(yes.stdout).at(-1)).toEqual({ event: 'summary', removed: 2, exitCode: 0 });
    expect(await s3Keys(`${p}/`)).toEqual([]);
  });
});

describe('objget info and bench', () => {
  it('info: the engine and the credential variables set, never their values', async () => {
    const r = await cli(['info'], { env: { AWS_SECRET_ACCESS_KEY: SENTINEL_SECRET } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^engine\s+native$/m);
    expect(r.stdout).toMatch(/^native addon\s+loaded: objget [\d.]+, object_store 0\.14\./m);
    expect(r.stdout).toMatch(/^s3 credentials\s+set: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY$/m);
    expect(r.stdout).not.toContain(SENTINEL_SECRET);
    const j = await cli(['info', '--json'], { env: { AWS_SECRET_ACCESS_KEY: SENTINEL_SECRET } });
    const info = JSON.parse(j.stdout) as { engine: string; credentialVariables: { s3: string[] } };
    expect(info.engine).toBe('native');
    expect(info.credentialVariables.s3).toContain('AWS_SECRET_ACCESS_KEY');
    expect(j.stdout).not.toContain(SENTINEL_SECRET);
  });

  it('bench: N rounds, MB/s, objects/s and CPU seconds; its temporary directory is removed', async () => {
    const { url, flags } = s3();
    const p = uniqueKey('cli-bench');
    await putS3Raw({ [`${p}/a`]: bytes(100_000, 1), [`${p}/b`]: bytes(50_000, 2) });
    const dir = tempDir();
    const r = await cli(['bench', '--json', '-n', '2', '-r', '--dir', dir, url(`${p}/`), ...flags]);
    expect(r.code, r.stderr).toBe(0);
    const ev = events(r.stdout);
    expect(ev.filter((e) => e.event === 'round')).toHaveLength(2);
    expect(ev.at(-1)).toMatchObject({
      event: 'summary',
      rounds: 2,
      objects: 2,
      bytes: 150_000,
      medianMBps: expect.any(Number),
      medianObjectsPerS: expect.any(Number),
      cpuSeconds: expect.any(Number),
    });
    expect(readdirSync(dir)).toEqual([]);
    const one = await cli(['bench', '-n', '1', '--dir', dir, url(`${p}/a`), ...flags]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/^median of 1: [\d.]+ MB\/s, [\d.]+ objects\/s; CPU [\d.]+ s/m);
  });
});

describe('objget on a terminal', () => {
  it('draws cli-progress bars under script(1): the transfer and the total of a set', async () => {
    const { url, flags } = s3();
    const p = uniqueKey('cli-tty');
    await putS3Raw({ [`${p}/a.bin`]: bytes(1 << 20, 3), [`${p}/b.bin`]: bytes(1 << 20, 4) });
    const dir = tempDir();
    const { child, output } = underScript(['cp', '-r', url(`${p}/`), dir, ...flags]);
    const code = await new Promise<number | null>((res) => child.on('close', res));
    expect(code, output()).toBe(0);
    // The bar's blocks, the total across the set and the summary; no per-object lines.
    expect(output()).toMatch(/total 2\/2 \u2588+ 100%/);
    expect(output()).toMatch(/\x1b\[\?25l/);
    expect(output()).toMatch(/2 objects, 2\.00 MiB in/);
    expect(output()).not.toContain(' -> ');
    expect(readdirSync(dir).sort()).toEqual(['a.bin', 'b.bin']);
  });

  it('rm asks before removing more than one object, and removes them on a yes', async () => {
    const { url, flags } = s3();
    const p = uniqueKey('cli-prompt');
    await putS3Raw({ [`${p}/a`]: Buffer.from('a'), [`${p}/b`]: Buffer.from('b') });
    const no = underScript(['rm', '-r', url(`${p}/`), ...flags]);
    await until(() => no.output().includes('[y/N]'));
    no.child.stdin.write('n\r');
    expect(await new Promise((res) => no.child.on('close', res))).toBe(0);
    expect(no.output()).toContain(`remove 2 objects (${url(`${p}/`)})? [y/N]`);
    expect(no.output()).toContain('nothing removed');
    expect(await s3Keys(`${p}/`)).toHaveLength(2);
    const yes = underScript(['rm', '-r', url(`${p}/`), ...flags]);
    await until(() => yes.output().includes('[y/N]'));
    yes.child.stdin.write('y\r');
    expect(await new Promise((res) => yes.child.on('close', res))).toBe(0);
    expect(yes.output()).toContain('2 objects removed');
    expect(await s3Keys(`${p}/`)).toEqual([]);
  });
});

/** The CLI on a pseudo-terminal (script(1)): its stdin is the terminal's keyboard. */
function underScript(args: string[]) {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    env: env({ COLUMNS: '120' }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  return { child, output: () => text };
}

async function until(ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('objget store flags reach the library', () => {
  it('--profile (as AWS_PROFILE), --no-sign-request, --rdma=require, --ca-cert', async () => {
    const { url, flags } = s3();
    const key = uniqueKey('cli-flags');
    await putS3Raw({ [key]: Buffer.from('x') });
    // No keys in the environment: the profile named is the one the credential chain reads.
    const profile = await cli(['stat', '--profile', 'objget-cli-none', url(key), ...flags], {
      env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
    });
    expect(profile.code, profile.stderr).toBe(4);
    expect(profile.stderr).toContain('AWS_PROFILE=objget-cli-none');
    // Anonymous, though keys are set: MinIO's private bucket refuses it.
    const anon = await cli(['stat', '--no-sign-request', url(key), ...flags]);
    expect(anon.code, anon.stderr).toBe(4);
    expect((await cli(['stat', url(key), ...flags])).code).toBe(0);
    const rdma = await cli(['cp', '--rdma=require', url(key), join(tempDir(), 'x'), ...flags]);
    expect(rdma.code).toBe(1);
    expect(rdma.stderr).toContain('RdmaUnavailable');
    // The HTTPS fixture's own CA: refused without it, trusted with it.
    const obj = seedHttp(1000, 'cli-tls');
    const https = obj.url.replace(servers().http.url, servers().http.httpsUrl);
    expect((await cli(['stat', https])).stderr).toContain('TlsCertificate');
    const ca = join(tempDir(), 'ca.pem');
    writeFileSync(ca, servers().http.ca);
    const trusted = await cli(['stat', '--json', '--ca-cert', ca, https]);
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(JSON.parse(trusted.stdout).size).toBe(1000);
  });

  it('the README lists the exit codes --help lists', async () => {
    const help = (await cli(['--help'])).stdout;
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const table = [...readme.matchAll(/^\| (\d+) +\| /gm)].map((m) => m[1]);
    const listed = [...help.matchAll(/^ {2}(\d+) +\S/gm)].map((m) => m[1]);
    expect(listed).toEqual(['0', '1', '2', '3', '4', '5', '6', '130']);
    expect(table).toEqual(listed);
  });
});
