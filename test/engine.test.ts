// Loading never throws; engine choice is visible and can be forced.
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineInfo } from '../src/index.js';
import { distEntry, ROOT, runModule } from './helpers/child.js';
import { s3Store, servers, tempDir } from './helpers/servers.js';

const previous = process.env.OBJGET_ENGINE;
afterAll(() => {
  process.env.OBJGET_ENGINE = previous;
});

describe('engineInfo', () => {
  it('reports the loaded addon and its versions', () => {
    delete process.env.OBJGET_ENGINE;
    const info = engineInfo();
    expect(info.engine).toBe('native');
    expect(info.native.loaded).toBe(true);
    expect(info.native.objectStoreVersion).toMatch(/^0\.14\./);
    expect(info.native.tls).toBe('rustls+ring');
    expect(info.js.schemes).toEqual([
      'http',
      'https',
      'file',
      's3',
      's3a',
      'gs',
      'az',
      'azure',
      'abfs',
      'abfss',
    ]);
    // What the JS engine does (per scheme in JS_SCHEME_CAPABILITIES: writes and listings on S3,
    // GCS and Azure); everything else answers NotSupported there (test/suites/ops.ts).
    expect(info.js.capabilities).toEqual([
      'head',
      'get',
      'download',
      'downloadMany',
      'exists',
      'list',
      'remove',
      'copy',
      'upload',
    ]);
  });

  it('OBJGET_ENGINE=js forces the JS engine', () => {
    process.env.OBJGET_ENGINE = 'js';
    expect(engineInfo().engine).toBe('js');
  });
});

describe('without the addon', () => {
  // A copy of the built package with no .node file: what a user on an unbuilt platform has.
  function packageWithoutAddon(): string {
    distEntry();
    const dir = tempDir();
    cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    cpSync(join(ROOT, 'index.cjs'), join(dir, 'index.cjs'));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    return dir;
  }

  it('loads, says why, and serves http through the JS engine', async () => {
    const dir = packageWithoutAddon();
    mkdirSync(join(servers().http.root, 'noaddon'), { recursive: true });
    writeFileSync(join(servers().http.root, 'noaddon', 'a.txt'), 'hello');
    const { done } = runModule(
      `import * as o from ${JSON.stringify(join(dir, 'dist', 'index.js'))};
       const info = o.engineInfo();
       const r = await o.download(${JSON.stringify(`${servers().http.url}/noaddon/a.txt`)}, ${JSON.stringify(join(dir, 'out.txt'))});
       const write = await o.upload(Buffer.from('x'), ${JSON.stringify(join(dir, 'w.bin'))}).catch((e) => ({ code: e.code, message: e.message }));
       console.log(JSON.stringify({ info, engine: r.engine, bytes: r.bytes, write }));`,
      { OBJGET_ENGINE: undefined },
      dir,
    );
    const r = await done;
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.info.engine).toBe('js');
    expect(out.info.native.loaded).toBe(false);
    // The platform package this machine needs, and how to get it (test/package.test.ts checks
    // the same on an installed package).
    const pkg = `objget-${process.platform}-${process.arch}-gnu`;
    expect(out.info.native.reason).toContain(`the package ${pkg}, which is not installed`);
    expect(out.info.native.reason).toContain('npm install --include=optional');
    expect(out.engine).toBe('js');
    expect(out.bytes).toBe(5);
    // A call the JS engine cannot serve (a write to a local file) says the same, not a bare
    // NotSupported.
    expect(out.write.code).toBe('NotSupported');
    expect(out.write.message).toContain(out.info.native.reason);
  });

  it('serves S3 through the JS engine: upload, download, list, downloadPrefix', async () => {
    const dir = packageWithoutAddon();
    const store = s3Store(servers());
    const prefix = `s3://${servers().s3.bucket}/noaddon-${Date.now()}`;
    const { done } = runModule(
      `import * as o from ${JSON.stringify(join(dir, 'dist', 'index.js'))};
       import { readFileSync } from 'node:fs';
       const store = ${JSON.stringify(store)};
       const data = Buffer.alloc(16 * 1024 * 1024 + 5, 7); // one byte past the default part
       const up = await o.upload(data, ${JSON.stringify(`${prefix}/a/big.bin`)}, { store });
       await o.upload(Buffer.from('hi'), ${JSON.stringify(`${prefix}/b.txt`)}, { store });
       const down = await o.download(${JSON.stringify(`${prefix}/a/big.bin`)}, ${JSON.stringify(join(dir, 'big.bin'))}, { store });
       const same = readFileSync(${JSON.stringify(join(dir, 'big.bin'))}).equals(data);
       const listed = [];
       for await (const x of o.list(${JSON.stringify(`${prefix}/`)}, { store })) listed.push(x.key);
       const pre = await o.downloadPrefix(${JSON.stringify(`${prefix}/`)}, ${JSON.stringify(join(dir, 'tree'))}, { store });
       console.log(JSON.stringify({ up: up.engine, parts: up.parts, down: down.engine, same,
         listed: listed.length, pre: pre.results.map((x) => x.engine) }));`,
      { OBJGET_ENGINE: undefined },
      dir,
    );
    const r = await done;
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out).toEqual({
      up: 'js',
      parts: 2,
      down: 'js',
      same: true,
      listed: 2,
      pre: ['js', 'js'],
    });
  });

  it('OBJGET_ENGINE=native without the addon rejects calls with NotSupported, never throws on import', async () => {
    const dir = packageWithoutAddon();
    const { done } = runModule(
      `import * as o from ${JSON.stringify(join(dir, 'dist', 'index.js'))};
       const e = await o.get('/etc/hostname').catch((e) => e);
       console.log(e.code);`,
      { OBJGET_ENGINE: 'native' },
      dir,
    );
    const r = await done;
    expect(r.stdout.trim()).toBe('NotSupported');
  });
});
