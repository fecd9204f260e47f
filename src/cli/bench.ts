// `objget bench`: download an object (or a prefix, --recursive) N times into a temporary
// directory and print MB/s, objects/s and the CPU seconds of this process, to compare against
// other tools on your own data.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { download, downloadPrefix } from '../index.js';
import {
  libraryUrl,
  out,
  positiveInt,
  prefixUrl,
  rdmaFlags,
  size,
  storeFlags,
  storeOptions,
  type Context,
  type StoreFlags,
} from './common.js';
import { EXIT } from './exit.js';

interface BenchFlags extends StoreFlags {
  count: number;
  recursive?: boolean;
  concurrency?: number;
  partConcurrency?: number;
  partSize?: number;
  verify: boolean;
  sync: boolean;
  dir?: string;
  json?: boolean;
}

export function benchCommand(ctx: Context): Command {
  const cmd = new Command('bench')
    .summary('download an object or a prefix N times: MB/s, objects/s, CPU seconds')
    .argument('<url>', 'an object, or a prefix with --recursive')
    .option('-n, --count <n>', 'rounds', positiveInt, 3)
    .option('-r, --recursive', 'every object under the prefix, per round (downloadPrefix)')
    .option(
      '--concurrency <n>',
      'parts of the object in flight; with --recursive, objects',
      positiveInt,
    )
    .option(
      '--part-concurrency <n>',
      'with --recursive: parts of each object in flight',
      positiveInt,
    )
    .option('--part-size <size>', 'bytes per ranged GET, e.g. 8M', size)
    .option('--no-verify', 'verify no checksum (checksum off)')
    .option('--no-sync', 'no fdatasync before the rename (durable false)')
    .option('--dir <dir>', 'where the temporary directory goes (default: the system temp dir)')
    .option('--json', 'one JSON object per round, then the summary');
  rdmaFlags(cmd);
  storeFlags(cmd);
  cmd.addHelpText(
    'after',
    `
CPU is user + system seconds of this process over the rounds. Each round's files are removed
before the next; the directory is removed at the end.

Examples:
  $ objget bench s3://bucket/model.bin --count 5
  $ objget bench --recursive --concurrency 64 --no-sync s3://bucket/small-files/`,
  );
  return cmd.action(async (url: string, flags: BenchFlags) => {
    ctx.abortable = true;
    ctx.exit = await bench(url, flags, ctx);
  });
}

async function bench(arg: string, flags: BenchFlags, ctx: Context): Promise<number> {
  const o = out(flags);
  const common = {
    store: storeOptions(flags),
    signal: ctx.signal,
    partSize: flags.partSize,
    checksum: flags.verify ? undefined : ('off' as const),
    durable: flags.sync ? undefined : false,
  };
  const work = mkdtempSync(join(flags.dir ?? tmpdir(), 'objget-bench-'));
  const rounds: { ms: number; bytes: number; objects: number }[] = [];
  const cpu0 = process.cpuUsage();
  try {
    for (let i = 0; i < flags.count; i++) {
      const dest = join(work, `round-${i}`);
      const t0 = performance.now();
      let bytes = 0;
      let objects = 0;
      if (flags.recursive) {
        const r = await downloadPrefix(prefixUrl(arg), dest, {
          ...common,
          concurrency: flags.concurrency,
          partConcurrency: flags.partConcurrency,
        });
        objects = r.results.length;
        bytes = r.results.reduce((a, t) => a + t.bytes, 0);
      } else {
        const r = await download(libraryUrl(arg), join(dest, 'object'), {
          ...common,
          concurrency: flags.concurrency,
        });
        objects = 1;
        bytes = r.bytes;
      }
      const ms = performance.now() - t0;
      rounds.push({ ms, bytes, objects });
      rmSync(dest, { recursive: true, force: true });
      const line = { round: i + 1, bytes, objects, ms: Math.round(ms), mbps: bytes / 1e3 / ms };
      if (o.json) o.event({ event: 'round', ...line });
      else
        o.write(
          `round ${i + 1}: ${objects} objects, ${bytes} bytes in ${(ms / 1000).toFixed(3)} s: ${line.mbps.toFixed(1)} MB/s`,
        );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)]!;
  };
  const summary = {
    rounds: rounds.length,
    bytes: rounds[0]?.bytes ?? 0,
    objects: rounds[0]?.objects ?? 0,
    medianMs: Math.round(median(rounds.map((r) => r.ms))),
    medianMBps: median(rounds.map((r) => r.bytes / 1e3 / r.ms)),
    medianObjectsPerS: median(rounds.map((r) => (r.objects * 1000) / r.ms)),
    cpuSeconds: cpuS,
  };
  if (o.json) o.event({ event: 'summary', ...summary });
  else {
    o.write(
      `median of ${summary.rounds}: ${summary.medianMBps.toFixed(1)} MB/s, ${summary.medianObjectsPerS.toFixed(1)} objects/s; CPU ${cpuS.toFixed(2)} s (user+sys, all rounds)`,
    );
  }
  return EXIT.ok;
}
