// `npm run bench:profile`: where objget's CPU goes on many-small (1,000 × 256 KiB from MinIO),
// at defaults and with durable: false + checksum: 'off', sampled by `perf record` and summed by
// shared object, with the hottest symbols in the addon and the kernel. Needs Linux perf (Debian: linux-perf); prints the two tables.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServers } from '../scripts/lib/servers.mjs';
import { seedObjects } from './seed.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const work = join(ROOT, '.objget', 'profile');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
try {
  execFileSync('perf', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('bench:profile needs Linux perf on PATH (Debian: apt-get install linux-perf)');
  process.exit(1);
}
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { info, stop } = await startServers({ workDir: join(work, 'servers'), which: ['s3'] });
try {
  const keys = Array.from({ length: 1000 }, (_, i) => `p/obj-${i}.bin`);
  await seedObjects(info.s3, keys, 256 * 1024);
  const variants = [
    ['defaults', {}],
    ['durable: false, checksum: off', { durable: false, checksum: 'off' }],
  ];
  for (const [i, [name, settings]] of variants.entries()) {
    const out = join(work, `out-${i}`);
    mkdirSync(out, { recursive: true });
    const data = join(work, `${i}.perf`);
    const job = { root: ROOT, kind: 'many', keys, out, concurrency: 32, s3: info.s3, ...settings };
    execFileSync(
      'perf',
      [
        'record',
        '-q',
        '-F',
        '2000',
        '-g',
        '-o',
        data,
        '--',
        process.execPath,
        join(ROOT, 'bench', 'clients', 'objget.mjs'),
        JSON.stringify(job),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, OBJGET_ENGINE: 'native' } },
    );
    const report = execFileSync(
      'perf',
      ['report', '-q', '-g', 'none', '-i', data, '--no-children', '--sort', 'dso'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    console.log(`\n${name}: share of client CPU samples by shared object`);
    console.log(
      report
        .split('\n')
        .filter((l) => l.trim())
        .slice(0, 6)
        .join('\n'),
    );
    // Deeper: the hottest symbols inside the addon and inside the kernel.
    for (const dso of ['objget.linux-x64-gnu.node', '[kernel.kallsyms]']) {
      const symbols = execFileSync(
        'perf',
        ['report', '-q', '-g', 'none', '-i', data, '--no-children', '--dsos', dso, '--sort', 'sym'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 },
      );
      console.log(`  top symbols in ${dso} (share of all samples):`);
      console.log(
        symbols
          .split('\n')
          .filter((l) => l.trim())
          .slice(0, 10)
          .map((l) => `  ${l.trim().slice(0, 110)}`)
          .join('\n'),
      );
    }
  }
} finally {
  await stop();
}
