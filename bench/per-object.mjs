// `npm run bench:per-object -- [--rounds 3] [--objects 1000] [--size 262144] [root …]`:
// the per-object budget of downloadMany on many small objects from MinIO, for each objget
// checkout given (default: this one), at defaults: HTTP requests per object (counted by a
// pass-through proxy in one extra run), syscalls per object (`strace -c -f`, when strace is on
// PATH), and CPU seconds (user + sys of the client process) and objects/s over alternating rounds
// (medians). Compare a change with `node bench/per-object.mjs . ../baseline-checkout`. The counts
// include the client process's start-up: use 1,000 objects or more.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { startServers } from '../scripts/lib/servers.mjs';
import { seedObjects } from './seed.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    objects: { type: 'string', default: '1000' },
    size: { type: 'string', default: String(256 * 1024) },
    durable: { type: 'string' },
    checksum: { type: 'string' },
    // 'false': CPU and objects/s only (no counting run, no strace run).
    budget: { type: 'string', default: 'true' },
  },
});
const roots = (positionals.length ? positionals : [ROOT]).map((r) => resolve(r));
const work = join(ROOT, '.objget', 'per-object');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const has = (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { info, stop } = await startServers({ workDir: join(work, 'servers'), which: ['s3'] });
const counts = new Map();
const upstream = new URL(info.s3.endpoint);
const proxy = http.createServer((req, res) => {
  const kind = `${req.method}${req.headers.range ? ' ranged' : ''}`;
  counts.set(kind, (counts.get(kind) ?? 0) + 1);
  const up = http.request(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    },
    (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    },
  );
  up.on('error', () => res.destroy());
  req.pipe(up);
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
try {
  const n = Number(values.objects);
  const keys = Array.from({ length: n }, (_, i) => `p/obj-${i}.bin`);
  await seedObjects(info.s3, keys, Number(values.size));
  const settings = {
    ...(values.durable ? { durable: values.durable === 'true' } : {}),
    ...(values.checksum ? { checksum: values.checksum } : {}),
  };
  const job = (root, out, extra = {}) =>
    JSON.stringify({
      root,
      kind: 'many',
      keys,
      out,
      concurrency: 32,
      s3: info.s3,
      ...settings,
      ...extra,
    });
  const client = join(ROOT, 'bench', 'clients', 'objget.mjs');
  const env = { ...process.env, OBJGET_ENGINE: 'native' };
  const fresh = (name) => {
    const out = join(work, name);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    return out;
  };
  for (const root of values.budget === 'false' ? [] : roots) {
    console.log(`\n${root}`);
    counts.clear();
    const via = { via: 'gateway', gateway: `http://127.0.0.1:${proxy.address().port}` };
    // Asynchronously: the proxy answers from this process's event loop.
    await promisify(execFile)(process.execPath, [client, job(root, fresh('count'), via)], { env });
    const requests = [...counts].map(([k, v]) => `${k} ${(v / n).toFixed(2)}`).join(', ');
    console.log(`  requests per object: ${requests}`);
    if (has('strace')) {
      const summary = join(work, 'strace.txt');
      execFileSync(
        'strace',
        ['-c', '-f', '-o', summary, process.execPath, client, job(root, fresh('strace'))],
        {
          env,
        },
      );
      const rows = execFileSync('cat', [summary], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((c) => c.length >= 5 && /^\d/.test(c[3] ?? ''));
      const total = rows.find((c) => c.at(-1) === 'total');
      const top = rows
        .filter((c) => c.at(-1) !== 'total')
        .map((c) => [c.at(-1), Number(c[3])])
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([name, calls]) => `${name} ${(calls / n).toFixed(1)}`)
        .join(', ');
      console.log(
        `  syscalls per object: ${total ? (Number(total[3]) / n).toFixed(1) : '?'} (${top})`,
      );
    }
    if (has('perf')) {
      const stat = join(work, 'perf-stat.txt');
      execFileSync(
        'perf',
        [
          'stat',
          '-x,',
          '-e',
          'context-switches,task-clock',
          '-o',
          stat,
          process.execPath,
          client,
          job(root, fresh('perf')),
        ],
        { env },
      );
      const per = execFileSync('cat', [stat], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.split(','))
        .filter((c) => c.length > 3 && /^[\d.]+$/.test(c[0]))
        .map(
          (c) =>
            `${c[2]} ${(Number(c[0]) / n).toFixed(c[2] === 'task-clock' ? 2 : 1)}${c[2] === 'task-clock' ? ' ms' : ''}`,
        );
      console.log(`  per object (perf stat): ${per.join(', ')}`);
    }
  }
  const rounds = Number(values.rounds);
  const cpu = new Map(roots.map((r) => [r, []]));
  const rate = new Map(roots.map((r) => [r, []]));
  for (let round = 0; round < rounds; round++) {
    for (const root of roots) {
      const out = fresh('run');
      const started = process.hrtime.bigint();
      const r = spawnSync(
        '/usr/bin/time',
        ['-f', '%U %S', process.execPath, client, job(root, out)],
        {
          env,
          encoding: 'utf8',
        },
      );
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      if (r.status !== 0) throw new Error(`${root}: ${r.stderr}`);
      const [user, sys] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
      cpu.get(root).push(user + sys);
      rate.get(root).push(n / secs);
    }
  }
  console.log(`\n${n} × ${values.size} B, ${rounds} alternating rounds, medians`);
  for (const root of roots) {
    const c = cpu.get(root);
    console.log(
      `  ${root}: CPU s ${median(c).toFixed(2)} (${c.map((x) => x.toFixed(2)).join(' ')}), ` +
        `${((median(c) * 1000) / n).toFixed(2)} ms/object, objects/s ${median(rate.get(root)).toFixed(1)}, ` +
        `MB/s ${((median(rate.get(root)) * Number(values.size)) / 1e6).toFixed(0)}`,
    );
  }
} finally {
  proxy.close();
  await stop();
}
