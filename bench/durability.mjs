// `node bench/durability.mjs [--rounds N] [--shapes many-small,mixed] [--modes inline,thread,group,syncfs,nosync]
//   [--network MBPS] [--quiet-only]`:
// what landing files durably costs under each strategy (crates/engine/examples/durability.rs),
// with no network in the way, quiet and beside the standard busy load (scripts/lib/load.mjs).
// Modes run in alternating rounds (A B C D A B C D …); after each run the disk is synced (not
// timed, so what one mode left dirty is not written during the next) and its files removed.
// Prints medians and writes bench/results/durability.json (durability-network-MBPS.json with
// --network).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLoad } from '../scripts/lib/load.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROUNDS = Number(arg('--rounds', '3'));
const SHAPES = arg('--shapes', 'many-small,mixed').split(',');
const MODES = arg('--modes', 'inline,thread,group,syncfs,nosync').split(',');
// The bytes arrive at this many MB/s in all (0: as fast as the page cache takes them).
const NETWORK = arg('--network', '0');
const CONCURRENCY = '16';
const LOADS = args.includes('--quiet-only') ? ['quiet'] : ['quiet', 'busy'];
const GiB = 1024 ** 3;

execFileSync(
  'cargo',
  ['build', '--release', '--locked', '-p', 'objget-engine', '--example', 'durability'],
  { cwd: ROOT, stdio: 'inherit' },
);
const target = process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target');
const BIN = join(target, 'release', 'examples', 'durability');
const work = join(ROOT, '.objget', 'durability');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const runs = [];
const loadBefore = loadavg();
for (const load of LOADS) {
  const busy = load === 'busy' ? startLoad(join(work, 'busy.bin')) : undefined;
  try {
    for (const shape of SHAPES) {
      for (let round = 0; round < ROUNDS; round++) {
        for (const mode of MODES) {
          const dir = join(work, `${shape}-${mode}-${round}`);
          const out = execFileSync(BIN, [mode, shape, dir, CONCURRENCY, NETWORK], {
            encoding: 'utf8',
          });
          const r = { load, shape, mode, round, ...JSON.parse(out) };
          runs.push(r);
          execFileSync('sync');
          rmSync(dir, { recursive: true, force: true });
          console.error(
            `${load} ${shape.padEnd(10)} ${mode.padEnd(6)} round ${round + 1}: ${r.wallS.toFixed(2)} s, ` +
              `${(r.userS + r.sysS).toFixed(2)} CPU s, machine ${r.machineBusyS.toFixed(2)} s, ${r.batches} batches`,
          );
        }
      }
    }
  } finally {
    await busy?.stop();
  }
}

const rows = [];
for (const load of LOADS) {
  for (const shape of SHAPES) {
    for (const mode of MODES) {
      const rs = runs.filter((r) => r.load === load && r.shape === shape && r.mode === mode);
      const gib = rs[0].bytes / GiB;
      rows.push({
        load,
        shape,
        mode,
        wallS: median(rs.map((r) => r.wallS)),
        mbps: median(rs.map((r) => r.bytes / 1e6 / r.wallS)),
        cpuSPerGiB: median(rs.map((r) => (r.userS + r.sysS) / gib)),
        machineSPerGiB: median(rs.map((r) => r.machineBusyS / gib)),
        batches: median(rs.map((r) => r.batches)),
      });
    }
  }
}
console.log(
  `network: ${NETWORK === '0' ? 'unpaced' : `${NETWORK} MB/s`}, ${CONCURRENCY} files in flight`,
);
console.log('| load | shape | mode | wall s | MB/s | client CPU s/GiB | machine CPU s/GiB |');
console.log('| --- | --- | --- | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.load} | ${r.shape} | ${r.mode} | ${r.wallS.toFixed(2)} | ${r.mbps.toFixed(0)} | ${r.cpuSPerGiB.toFixed(2)} | ${r.machineSPerGiB.toFixed(2)} |`,
  );
}
const machine = { cpus: cpus().length, kernel: release() };
writeFileSync(
  join(ROOT, 'bench', 'results', `durability${NETWORK === '0' ? '' : `-network-${NETWORK}`}.json`),
  `${JSON.stringify({ date: new Date().toISOString(), machine, rounds: ROUNDS, network: Number(NETWORK), load: { before: loadBefore, after: loadavg() }, rows, runs }, null, 2)}\n`,
);
