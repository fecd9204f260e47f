// Proven by installing, not by building (`npm run test:package`, which builds the linux-x64-gnu
// binary with zig first: scripts/test-package.sh). The main package and its platform package are
// packed with `npm pack`, served by a local registry (scripts/lib/registry.mjs) and installed into
// empty projects with no Rust toolchain on PATH, the way a user's `npm install objget` gets them.
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without types
import { startRegistry } from '../scripts/lib/registry.mjs';
// @ts-expect-error plain ESM script without types
import { RUNTIMES, runtimeBin } from '../scripts/lib/runtimes.mjs';
// @ts-expect-error plain ESM script without types
import { CACHE_DIR, startServers } from '../scripts/lib/servers.mjs';
import { ROOT } from './helpers/child.js';
import type { ServersInfo } from './helpers/servers.js';

const PLATFORM_PKG = 'objget-linux-x64-gnu';
const BINARY = 'objget.linux-x64-gnu.node';
const BUILT = join(ROOT, 'npm', 'linux-x64-gnu', BINARY);
// The runtimes the smoke test also runs under: npm packages that carry their binaries.
interface Registry {
  url: string;
  requests: string[];
  stop: () => Promise<void>;
}

let work: string;
let s3: ServersInfo['s3'];
let stopServers: () => Promise<void>;
const registries: Registry[] = [];
let mainTgz: string;
let platformTgz: string;
let packed: string[];

/** The environment of a user's shell without Rust: no cargo/rustc dir on PATH, no npm_* vars. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter(
      (d) =>
        d &&
        !/[\\/]\.(cargo|rustup)([\\/]|$)/.test(d) &&
        !existsSync(join(d, 'cargo')) &&
        !existsSync(join(d, 'rustc')),
    );
  // node and npm themselves stay reachable.
  if (!path.includes(dirname(process.execPath))) path.unshift(dirname(process.execPath));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|CARGO|RUSTUP|RUSTC|OBJGET_)/i.test(k) || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return {
    ...env,
    PATH: path.join(delimiter),
    AWS_EC2_METADATA_DISABLED: 'true',
    OBJGET_METADATA: 'off',
    ...extra,
  };
}

interface Result {
  status: number | null;
  error?: NodeJS.ErrnoException;
  stdout: string;
  stderr: string;
}

/**
 * Run a command asynchronously (the local registry answers npm from this process's event loop),
 * killed after `timeoutMs`.
 */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  env = userEnv(),
  timeoutMs = 240_000,
): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ status: null, error, stdout, stderr });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function ok(pending: Promise<Result>, what: string): Promise<string> {
  const r = await pending;
  if (r.error || r.status !== 0) {
    throw new Error(
      `${what} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`,
    );
  }
  return r.stdout;
}

/** `npm pack` a directory into `work`; returns the tarball's path and its file list. */
async function pack(dir: string): Promise<{ tgz: string; files: string[] }> {
  const out = await ok(run('npm', ['pack', '--json', '--pack-destination', work], dir), 'npm pack');
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  return { tgz: join(work, info!.filename), files: info!.files.map((f) => f.path) };
}

/** An empty project with `objget` installed from a registry serving `tarballs`. */
async function install(name: string, tarballs: string[], more: string[] = []): Promise<string> {
  const registry = (await startRegistry({ tarballs, own: 'objget' })) as Registry;
  registries.push(registry);
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `objget-${name}-app`, version: '1.0.0', private: true }),
  );
  await ok(
    run(
      'npm',
      [
        'install',
        '--registry',
        registry.url,
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        'objget',
        ...more,
      ],
      dir,
    ),
    `npm install objget in ${name}`,
  );
  return dir;
}

// The smoke test every runtime runs: engineInfo, then upload → head → download → get → list →
// remove through MinIO. Prints one JSON line.
const SMOKE = `
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { download, engineInfo, exists, get, head, list, remove, upload } from 'objget';
const s = JSON.parse(process.env.OBJGET_S3);
const store = { config: { aws_endpoint: s.endpoint, aws_region: s.region,
  aws_access_key_id: s.accessKeyId, aws_secret_access_key: s.secretAccessKey } };
const info = engineInfo();
const prefix = \`s3://\${s.bucket}/package/\${process.argv[2]}/\`;
const url = prefix + 'object.bin';
const data = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
data.write(process.argv[2]);
const sha = (b) => createHash('sha256').update(b).digest('hex');
const up = await upload(data, url, { store });
const h = await head(url, { store });
const dest = process.argv[3];
const d = await download(url, dest, { store });
const g = await get(url, { store, range: { offset: 1, length: 4 } });
const keys = [];
for await (const o of list(prefix, { store })) keys.push(o.key);
await remove(url, { store });
console.log(JSON.stringify({
  engine: info.engine, loaded: info.native.loaded, reason: info.native.reason,
  uploadEngine: up.engine, size: h.size, downloadEngine: d.engine,
  same: sha(readFileSync(dest)) === sha(data), range: g.equals(data.subarray(1, 5)),
  keys, gone: !(await exists(url, { store })),
}));
`;

async function smoke(
  cmd: string,
  args: string[],
  dir: string,
  tag: string,
): Promise<Record<string, unknown>> {
  const dest = join(dir, `${tag}.out`);
  const r = run(
    cmd,
    [...args, join(dir, 'smoke.mjs'), tag, dest],
    dir,
    userEnv({ OBJGET_S3: JSON.stringify(s3) }),
  );
  const out = await ok(r, `${tag} smoke test`);
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

function expectRoundTrip(r: Record<string, unknown>, tag: string): void {
  expect(r).toMatchObject({
    engine: 'native',
    loaded: true,
    uploadEngine: 'native',
    downloadEngine: 'native',
    size: 3 * 1024 * 1024 + 17,
    same: true,
    range: true,
    keys: [`package/${tag}/object.bin`],
    gone: true,
  });
}

beforeAll(async () => {
  if (!existsSync(BUILT)) {
    throw new Error(`${BUILT} is missing: run 'npm run test:package' (it builds it with zig)`);
  }
  work = mkdtempSync(join(tmpdir(), 'objget-package-'));
  const main = await pack(ROOT);
  mainTgz = main.tgz;
  packed = main.files;
  platformTgz = (await pack(join(ROOT, 'npm', 'linux-x64-gnu'))).tgz;
  const servers = (await startServers({
    workDir: join(work, 'servers'),
    which: ['s3'],
    quiet: true,
  })) as { info: ServersInfo; stop: () => Promise<void> };
  s3 = servers.info.s3;
  stopServers = servers.stop;
}, 300_000);

afterAll(async () => {
  await Promise.all(registries.map((r) => r.stop()));
  await stopServers?.();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed main package', () => {
  it('carries the loader, the typings, both builds and the RDMA sources, and nothing else', async () => {
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'index.cjs',
      'index.d.ts',
      'dist/index.js',
      'dist/index.cjs',
      'dist/index.d.ts',
      'dist/index.d.cts',
      'scripts/build-rdma.sh',
      'native/CMakeLists.txt',
      'native/include/objget_rdma.h',
      'native/shim/objget_rdma.cpp',
      'native/sim/cuobjclient.cpp',
      'native/test/shim_test.c',
    ]) {
      expect(packed, f).toContain(f);
    }
    const stray = packed.filter((f) =>
      /(\.node$|^(test|crates|src|bench|target|npm|native\/build|native\/vm)\/|\.tgz$)/.test(f),
    );
    expect(stray).toEqual([]);
  });
});

describe('installed with its platform package', () => {
  let app: string;
  beforeAll(async () => {
    const types = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies[
      '@types/node'
    ] as string;
    app = await install('full', [mainTgz, platformTgz], [`@types/node@${types}`]);
    writeFileSync(join(app, 'smoke.mjs'), SMOKE);
  }, 300_000);

  it('has no Rust toolchain to fall back on', async () => {
    for (const tool of ['cargo', 'rustc']) {
      const r = await run(tool, ['--version'], app);
      expect(r.error && (r.error as NodeJS.ErrnoException).code, tool).toBe('ENOENT');
    }
  });

  it('resolved the platform package as the optional dependency, the binary only there', async () => {
    const main = JSON.parse(readFileSync(join(app, 'node_modules/objget/package.json'), 'utf8'));
    expect(main.optionalDependencies[PLATFORM_PKG]).toBe(main.version);
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'));
    expect(lock.packages[`node_modules/${PLATFORM_PKG}`]).toMatchObject({ optional: true });
    expect(statSync(join(app, 'node_modules', PLATFORM_PKG, BINARY)).size).toBeGreaterThan(1e6);
    const nodes = readdirSync(join(app, 'node_modules/objget')).filter((f) => f.endsWith('.node'));
    expect(nodes).toEqual([]);
  });

  it('ESM import: the native engine, and a MinIO round trip', async () => {
    expectRoundTrip(await smoke(process.execPath, [], app, 'node-esm'), 'node-esm');
  });

  it('CJS require: the native engine from dist/index.cjs', async () => {
    const src = `const o = require('objget');
      console.log(JSON.stringify({ entry: require.resolve('objget'), engine: o.engineInfo().engine,
        fns: ['download', 'upload', 'list', 'Store'].map((k) => typeof o[k]) }));`;
    const out = JSON.parse(await ok(run(process.execPath, ['-e', src], app), 'require(objget)'));
    expect(out.entry).toBe(join(app, 'node_modules/objget/dist/index.cjs'));
    expect(out.engine).toBe('native');
    expect(out.fns).toEqual(['function', 'function', 'function', 'function']);
  });

  it('the public types compile for ESM and CJS consumers (tsc --noEmit)', async () => {
    const body = `
      const store: StoreOptions = { config: { aws_region: 'us-east-1' }, maxRetries: 2 };
      export const r: Promise<TransferResult> = download('s3://b/k', './k', { store });
      const info: EngineInfo = engineInfo();
      export const which: 'native' | 'js' = info.engine;
      export const why: string | undefined = info.native.reason;
      export const code = (e: unknown): ErrorCode | undefined =>
        e instanceof StorageError ? e.code : undefined;
      export const s = new Store('s3://b/', store);
      // @ts-expect-error concurrency is a number: the types are real, not any
      download('s3://b/k', './k', { concurrency: 'many' });
    `;
    const names = 'download, engineInfo, Store, StorageError';
    const typeNames = 'type EngineInfo, type ErrorCode, type StoreOptions, type TransferResult';
    writeFileSync(
      join(app, 'types.mts'),
      `import { ${names}, ${typeNames} } from 'objget';${body}`,
    );
    writeFileSync(
      join(app, 'types.cts'),
      `import { ${names}, ${typeNames} } from 'objget';${body}`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          types: ['node'],
        },
        files: ['types.mts', 'types.cts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await ok(run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], app), 'tsc --noEmit');
    // Where the types came from: the ESM and CJS conditions, types first.
    const trace = (
      await run(
        process.execPath,
        [tsc, '--noEmit', '-p', 'tsconfig.json', '--traceResolution'],
        app,
      )
    ).stdout;
    expect(trace).toMatch(
      /'objget' was successfully resolved to '.*node_modules\/objget\/dist\/index\.d\.ts'/,
    );
    expect(trace).toMatch(
      /'objget' was successfully resolved to '.*node_modules\/objget\/dist\/index\.d\.cts'/,
    );
  });

  it('the installed binary loads on glibc 2.17: its highest GLIBC_ version, its machine', async () => {
    const bin = join(app, 'node_modules', PLATFORM_PKG, BINARY);
    const out = await ok(
      run(process.execPath, [join(ROOT, 'scripts/check-glibc.mjs'), bin], app),
      'check-glibc',
    );
    expect(out).toMatch(/ok .*x64, glibc, highest GLIBC_2\.(1[0-7]|[0-9])\b/);
    // Every Linux binary built in npm/ (scripts/build-linux.sh writes them) passes too.
    await ok(
      run(process.execPath, [join(ROOT, 'scripts/check-glibc.mjs')], ROOT),
      'check-glibc npm/',
    );
    // The check can fail: a lower limit, and a binary under another target's name.
    const low = await run(
      process.execPath,
      [join(ROOT, 'scripts/check-glibc.mjs'), '--max', '2.16', bin],
      app,
    );
    expect(low.status).toBe(1);
    expect(low.stderr).toMatch(/needs GLIBC_2\.17 > 2\.16/);
    const renamed = join(work, 'objget.linux-arm64-gnu.node');
    copyFileSync(bin, renamed);
    const wrong = await run(
      process.execPath,
      [join(ROOT, 'scripts/check-glibc.mjs'), renamed],
      app,
    );
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/machine is Advanced Micro Devices X86-64, not AArch64/);
  });

  it('npx objget --help: the command line, from the packed package', async () => {
    expect(packed).toContain('dist/cli.js');
    const help = await ok(run('npx', ['--no-install', 'objget', '--help'], app), 'npx objget');
    expect(help).toContain('Usage: objget [options] [command]');
    for (const c of ['cp', 'ls', 'stat', 'cat', 'rm', 'info', 'bench']) {
      expect(help).toMatch(new RegExp(`^  ${c} `, 'm'));
    }
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    expect((await ok(run('npx', ['--no-install', 'objget', '--version'], app), 'v')).trim()).toBe(
      version,
    );
  });

  it('npx objget-build-rdma builds the shim where the installed package looks for it', async () => {
    const r = await run(
      'npx',
      ['--no-install', 'objget-build-rdma'],
      app,
      userEnv({ OBJGET_RDMA_SIM: '1' }),
    );
    const out = (await ok(Promise.resolve(r), 'npx objget-build-rdma')) + r.stderr;
    // No cmake-js in an installed package: the plain cmake path, the simulator's ABI test run.
    expect(out).toContain('using cmake directly');
    expect(out).toContain('built the simulator backend');
    const lib = join(app, 'node_modules/objget/native/build/lib');
    expect(existsSync(join(lib, 'libobjget_rdma.so'))).toBe(true);
    // The addon finds it there; the simulated client connects once a device is listed.
    const cufile = join(app, 'cufile.json');
    writeFileSync(cufile, JSON.stringify({ properties: { rdma_dev_addr_list: ['192.0.2.10'] } }));
    const src = `import { engineInfo } from 'objget'; console.log(JSON.stringify(engineInfo().rdma));`;
    const rdma = JSON.parse(
      await ok(
        run(
          process.execPath,
          ['--input-type=module', '-e', src],
          app,
          userEnv({ CUFILE_ENV_PATH_JSON: cufile }),
        ),
        'rdma info',
      ),
    );
    expect(rdma).toMatchObject({
      available: true,
      backend: 'simulator',
      shim: join(lib, 'libobjget_rdma.so'),
    });
  });

  for (const [runtime, version] of Object.entries(RUNTIMES)) {
    it(`${runtime} ${version}: import, the native engine, a MinIO round trip`, async () => {
      const bin = runtimeBin(runtime);
      const args = runtime === 'deno' ? ['run', '--allow-all', '--node-modules-dir=manual'] : [];
      expectRoundTrip(await smoke(bin, args, app, runtime), runtime);
    });
  }
});

describe('installed without its platform package', () => {
  let app: string;
  beforeAll(async () => {
    app = await install('bare', [mainTgz]);
  }, 300_000);

  it('the registry had none to give, and none is installed', async () => {
    expect(registries.at(-1)!.requests).toContain(`GET /${PLATFORM_PKG}`);
    expect(existsSync(join(app, 'node_modules', PLATFORM_PKG))).toBe(false);
  });

  it('imports, serves files through the JS engine, and says which package is missing', async () => {
    writeFileSync(join(app, 'a.txt'), 'hello');
    const src = `import { engineInfo, get, list, upload } from 'objget';
      const info = engineInfo();
      const file = (await get(${JSON.stringify(join(app, 'a.txt'))})).toString();
      const err = (e) => ({ code: e.code, message: e.message });
      const listing = await (async () => { for await (const x of list(${JSON.stringify(app)})) void x; })().catch(err);
      const write = await upload(Buffer.from('x'), ${JSON.stringify(join(app, 'w.bin'))}).catch(err);
      console.log(JSON.stringify({ engine: info.engine, native: info.native, file, listing, write }));`;
    const out = JSON.parse(
      await ok(run(process.execPath, ['--input-type=module', '-e', src], app), 'bare import'),
    );
    expect(out.engine).toBe('js');
    expect(out.file).toBe('hello');
    expect(out.native.loaded).toBe(false);
    const reason = out.native.reason as string;
    expect(reason).toContain(`the package ${PLATFORM_PKG}, which is not installed`);
    expect(reason).toContain('npm install --include=optional');
    expect(reason).toContain(`npm install ${PLATFORM_PKG}@`);
    // Calls the JS engine does not serve (it reads local files but neither lists nor writes
    // them) say the same: not a bare NotSupported.
    for (const e of [out.listing, out.write]) {
      expect(e.code).toBe('NotSupported');
      expect(e.message).toContain(reason);
    }
    // And the CommonJS entry does too.
    const cjs = `console.log(require('objget').engineInfo().native.reason)`;
    expect((await ok(run(process.execPath, ['-e', cjs], app), 'bare require')).trim()).toBe(reason);
  });

  it('a platform package whose binary cannot load (a too-old glibc, a bad file) is named with the error', async () => {
    const pkg = join(app, 'node_modules', PLATFORM_PKG);
    mkdirSync(pkg);
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: PLATFORM_PKG, version: '0.1.0', main: BINARY }),
    );
    writeFileSync(join(pkg, BINARY), 'not an ELF file');
    const src = `import { engineInfo, upload } from 'objget';
      const e = await upload(Buffer.from('x'), ${JSON.stringify(join(app, 'w.bin'))}).catch((e) => e);
      console.log(JSON.stringify({ reason: engineInfo().native.reason, code: e.code, message: e.message }));`;
    const out = JSON.parse(
      await ok(run(process.execPath, ['--input-type=module', '-e', src], app), 'broken binary'),
    );
    expect(out.reason).toMatch(
      new RegExp(`^the native addon in ${PLATFORM_PKG} did not load: .*${BINARY}`),
    );
    expect(out.code).toBe('NotSupported');
    expect(out.message).toContain(out.reason);
    rmSync(pkg, { recursive: true });
  });
});
