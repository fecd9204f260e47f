// A smoke test of an installed or freshly built objget on any platform, with no server: the native
// engine must load, and a file round trip (upload, head, download, ranged get, list, remove) must
// go through it. The release workflow runs it on every target it can execute; test:package runs
// the full checks (MinIO, types, CJS) on Linux. Usage: node scripts/smoke.mjs [module specifier]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';

const spec = process.argv[2] ?? new URL('../dist/index.js', import.meta.url).href;
const objget = await import(spec);
const fail = (msg) => {
  console.error(`smoke: ${msg}`);
  process.exit(1);
};

const info = objget.engineInfo();
if (info.engine !== 'native') {
  fail(`the ${info.engine} engine is in use: ${info.native.reason ?? 'OBJGET_ENGINE forces it'}`);
}

const dir = mkdtempSync(join(tmpdir(), 'objget-smoke-'));
try {
  const src = join(dir, 'src.bin');
  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  writeFileSync(src, bytes);
  const base = pathToFileURL(join(dir, 'bucket')).href;
  await objget.upload(src, `${base}/a/obj.bin`);
  const head = await objget.head(`${base}/a/obj.bin`);
  if (head.size !== bytes.length) fail(`head size ${head.size} != ${bytes.length}`);
  const r = await objget.download(`${base}/a/obj.bin`, join(dir, 'out.bin'));
  if (r.engine !== 'native') fail(`download ran on the ${r.engine} engine`);
  if (!readFileSync(join(dir, 'out.bin')).equals(bytes)) fail('downloaded bytes differ');
  const part = await objget.get(`${base}/a/obj.bin`, { range: { offset: 1000, length: 100 } });
  if (!part.equals(bytes.subarray(1000, 1100))) fail('ranged get differs');
  const keys = [];
  for await (const o of objget.list(`${base}/a/`)) keys.push(o.key);
  if (keys.length !== 1) fail(`list gave ${JSON.stringify(keys)}`);
  await objget.remove(`${base}/a/obj.bin`);
  if (await objget.exists(`${base}/a/obj.bin`)) fail('object still exists after remove');
  console.log(
    `smoke: ok (${process.platform}-${process.arch}, native ${info.native.version}, ${info.native.tls})`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
