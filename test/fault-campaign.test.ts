// A seeded, randomized fault campaign: hundreds of downloads and gets through a proxy that
// resets, stalls, throttles, truncates and corrupts, and replaces objects mid-download, on every
// read path (native S3 to MinIO, native HTTP, native HTTP with a presigned query, the JS engine
// over HTTP with and without a query). Per trial the invariant is:
//   - the bytes at `dest` (or the Buffer) are exactly the object's, or exactly one of its two
//     versions when it was replaced mid-way: never a mix, never short, never corrupt; or
//   - the call rejects with a StorageError whose code is a known code (`Generic` is counted
//     apart as untyped-ish), `dest` is as it was (absent, or the older file some trials put
//     there first) and no temporary is left beside it;
//   - corrupted bytes (injected only where checksum: 'required' makes the check mandatory) end
//     in a correct file, ChecksumMismatch or ChecksumUnavailable;
//   - no error text carries the store secret or the presigned signature;
//   - no trial outlives its watchdog.
// OBJGET_FAULT_SEED=<n> replays a campaign (the seed is printed first); OBJGET_FAULT_TRIALS sets
// how many trials run (default 300); OBJGET_FAULT_ONLY=t12,t40 runs only those trials of the
// seed; OBJGET_FAULT_LOG=<file> writes every trial's outcome there.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download, get, StorageError, type ChecksumMode, type StoreOptions } from '../src/index.js';
// @ts-expect-error plain ESM script without types
import { presign } from '../scripts/lib/http-fixture.mjs';
import { chaosProxy, hash32, mulberry32, type ChaosProxy, type Fault } from './helpers/chaos.js';
import { bytes, s3Client, servers, tempDir } from './helpers/servers.js';
import { ERROR_CODES } from '../src/errors.js';

const SEED = process.env.OBJGET_FAULT_SEED
  ? Number(process.env.OBJGET_FAULT_SEED) >>> 0
  : randomBytes(4).readUInt32LE(0);
const TRIALS = Number(process.env.OBJGET_FAULT_TRIALS ?? 300);
const WATCHDOG_MS = Number(process.env.OBJGET_FAULT_WATCHDOG_MS ?? 45_000);
const PARALLEL = 8;
/**
 * Longest silence a store waits. Short stalls stay well under it (they must be ridden out), long
 * ones go past it (they must end in a retry or a typed error); it is generous because a loaded
 * 2-core CI machine can itself be silent for a second.
 */
const READ_TIMEOUT_MS = 4_000;

const KNOWN = ERROR_CODES;

type Path = 's3' | 'http' | 'http-query' | 'js-http' | 'js-http-query';
type Profile = 'clean' | 'flaky' | 'hostile' | 'storm' | 'corrupt' | 'replace';

interface Trial {
  index: number;
  path: Path;
  op: 'download' | 'get';
  size: number;
  /** The replacement's size, for 'replace'. */
  size2: number;
  partSize: number;
  concurrency: number;
  checksum: ChecksumMode;
  profile: Profile;
  /** The HTTP fixture advertises Repr-Digest (sha-256) for this object. */
  digest: boolean;
  /** `dest` already holds an older file, which a failure must leave as it was. */
  existing: boolean;
  /** For 'get': a byte range (as fractions of the size), read instead of the whole object. */
  range?: { from: number; length: number };
}

const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const int = (rng: () => number, lo: number, hi: number): number =>
  lo + Math.floor(rng() * (hi - lo + 1));

function weighted<T>(rng: () => number, xs: [T, number][]): T {
  let r = rng() * xs.reduce((s, [, w]) => s + w, 0);
  for (const [x, w] of xs) if ((r -= w) < 0) return x;
  return xs[xs.length - 1]![0];
}

const PART_SIZES = [64 * 1024, 100_003, 128 * 1024, 256 * 1024];

function sizeFor(rng: () => number, partSize: number): number {
  return weighted<() => number>(rng, [
    [() => 0, 6],
    [() => 1, 6],
    [() => int(rng, 2, 4096), 30],
    [() => int(rng, 4097, 3 * partSize), 18],
    [() => int(rng, 1, 3) * partSize + int(rng, -1, 1), 32],
    [() => int(rng, 1, 3) * 1024 * 1024 + int(rng, 0, 4096), 3],
  ])();
}

/** Trial `index` of campaign `seed`: the same seed gives the same trials. */
function trialOf(seed: number, index: number): Trial {
  const rng = mulberry32(hash32(`${seed}:trial:${index}`));
  const path = weighted<Path>(rng, [
    ['s3', 30],
    ['http', 20],
    ['http-query', 20],
    ['js-http', 15],
    ['js-http-query', 15],
  ]);
  const partSize = pick(rng, PART_SIZES);
  const size = sizeFor(rng, partSize);
  let profile = weighted<Profile>(rng, [
    ['clean', 10],
    ['flaky', 35],
    ['hostile', 15],
    ['storm', 15],
    ['corrupt', 12],
    ['replace', 13],
  ]);
  // Long stalls on many parts would make a correct engine slow, not wrong: keep them small.
  if (profile === 'hostile' && size > 3 * partSize) profile = 'flaky';
  const sameSize = rng() < 0.6;
  const size2 = sameSize ? size : sizeFor(rng, partSize);
  const checksum: ChecksumMode =
    profile === 'corrupt'
      ? 'required'
      : weighted(rng, [
          ['auto', 70],
          ['off', 15],
          ['required', 15],
        ]);
  return {
    index,
    path,
    op: rng() < 0.8 ? 'download' : 'get',
    size,
    size2,
    partSize,
    concurrency: int(rng, 1, 4),
    checksum,
    profile,
    digest: profile === 'corrupt' || rng() < 0.5,
    existing: rng() < 0.3,
    // A range cannot be verified ('required' refuses it), so corrupt trials read whole objects.
    range:
      rng() < 0.4 && profile !== 'corrupt' && checksum !== 'required'
        ? { from: rng(), length: rng() }
        : undefined,
  };
}

/** A fault from the usual mix: `long` allows stalls past the read timeout. */
function someFault(rng: () => number, long: boolean): Fault {
  const at = rng();
  return weighted<() => Fault>(rng, [
    [() => ({ kind: 'refuse' }), 10],
    [() => ({ kind: 'status', status: 503, retryAfter: rng() < 0.5 }), 12],
    [() => ({ kind: 'status', status: 429, retryAfter: rng() < 0.5 }), 8],
    [() => ({ kind: 'status', status: 500, retryAfter: false }), 4],
    [() => ({ kind: 'stall-headers', ms: int(rng, 50, 400) }), 6],
    [() => ({ kind: 'stall', at, ms: int(rng, 50, 500) }), 10],
    [() => ({ kind: 'reset', at }), 20],
    [() => ({ kind: 'truncate', at }), 20],
    [() => ({ kind: 'stall', at, ms: READ_TIMEOUT_MS + 1_000 }), long ? 3 : 0],
    [() => ({ kind: 'stall-headers', ms: READ_TIMEOUT_MS + 1_000 }), long ? 2 : 0],
  ])();
}

/** The fault plan of one trial: a pure function of the seed, the trial and the request. */
function planOf(
  seed: number,
  t: Trial,
): (r: { method: string; path: string; range?: string; n: number }) => Fault {
  const stormLength = 1 + (hash32(`${seed}:storm:${t.index}`) % 5);
  return (r) => {
    // Not the path: it carries this run's random prefix, and a seed must replay across runs.
    const rng = mulberry32(hash32(`${seed}:${t.index}:${r.method}:${r.range}:${r.n}`));
    switch (t.profile) {
      case 'clean':
        return { kind: 'pass' };
      case 'flaky':
        return rng() < 0.25 ? someFault(rng, false) : { kind: 'pass' };
      case 'hostile':
        return rng() < 0.6 ? someFault(rng, true) : { kind: 'pass' };
      case 'storm':
        return r.n < stormLength
          ? { kind: 'status', status: rng() < 0.5 ? 429 : 503, retryAfter: rng() < 0.5 }
          : { kind: 'pass' };
      case 'corrupt':
        // Every first body of every distinct request carries one flipped byte.
        return r.n === 0 && r.method === 'GET' ? { kind: 'corrupt', at: rng() } : { kind: 'pass' };
      case 'replace':
        return rng() < 0.25 ? someFault(rng, false) : { kind: 'pass' };
    }
  };
}

interface Outcome {
  trial: Trial;
  kind: 'ok' | 'typed' | 'generic' | 'violation';
  code?: string;
  detail?: string;
  ms: number;
  log: string[];
}

const s = servers();
const RUN = randomBytes(4).toString('hex');
const root = tempDir();
let s3Proxy: ChaosProxy;
let httpProxy: ChaosProxy;
let s3: Awaited<ReturnType<typeof s3Client>>;

const baseStore = (): StoreOptions => ({
  maxRetries: 2,
  initialBackoffMs: 5,
  readTimeoutMs: READ_TIMEOUT_MS,
  connectTimeoutMs: 2_000,
  retryTimeoutMs: 8_000,
});

function keyOf(t: Trial): string {
  return `fault-campaign/${RUN}/t${t.index}/obj-${t.size}.bin`;
}

/** The harness's own requests to the servers, retried: a keep-alive race is not objget's. */
async function retried(what: string, fn: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= 4) throw new Error(`harness: ${what} failed ${attempt} times`, { cause: e });
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

async function put(t: Trial, data: Buffer): Promise<void> {
  const key = keyOf(t);
  if (t.path === 's3') {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    await s3.send(new PutObjectCommand({ Bucket: s.s3.bucket, Key: key, Body: data }));
    return;
  }
  // A new inode each time, so the fixture's ETag changes even when size and mtime do not.
  const file = join(s.http.root, key);
  mkdirSync(join(file, '..'), { recursive: true });
  const tmp = `${file}.${randomBytes(4).toString('hex')}.new`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

async function advertiseDigest(t: Trial): Promise<void> {
  const r = await fetch(`${s.http.url}/__fault`, {
    method: 'POST',
    body: JSON.stringify({ path: `/${keyOf(t)}`, kind: 'digest' }),
  });
  if (!r.ok) throw new Error(`fixture /__fault: HTTP ${r.status}`);
}

function urlOf(t: Trial): { url: string; store: StoreOptions } {
  const key = keyOf(t);
  switch (t.path) {
    case 's3':
      return {
        url: `s3://${s.s3.bucket}/${key}`,
        store: {
          ...baseStore(),
          config: {
            aws_access_key_id: s.s3.accessKeyId,
            aws_secret_access_key: s.s3.secretAccessKey,
            aws_endpoint: s3Proxy.url,
            aws_region: s.s3.region,
          },
        },
      };
    case 'http':
    case 'js-http':
      return { url: `${httpProxy.url}/${key}`, store: baseStore() };
    case 'http-query':
    case 'js-http-query':
      return {
        url: presign(httpProxy.url, `/${key}`, s.http.signingKey, 600_000) as string,
        store: baseStore(),
      };
  }
}

/** The range a 'get' trial reads: bytes inside the object, at least one (so never empty). */
function rangeOf(t: Trial): { offset: number; length: number } | undefined {
  if (t.op !== 'get' || !t.range || t.size === 0) return undefined;
  const offset = Math.floor(t.range.from * t.size);
  return { offset, length: 1 + Math.floor(t.range.length * (t.size - offset)) };
}

/** What a trial must read of one version of its object (a replacement may be shorter). */
function sliceOf(t: Trial, v: Buffer): Buffer {
  const r = rangeOf(t);
  return r ? v.subarray(r.offset, r.offset + r.length) : v;
}

function describeTrial(t: Trial): string {
  return `t${t.index} ${t.path} ${t.op} size=${t.size}${t.profile === 'replace' ? `->${t.size2}` : ''} part=${t.partSize} conc=${t.concurrency} checksum=${t.checksum} profile=${t.profile}${t.path.includes('http') ? ` digest=${t.digest}` : ''}${t.op === 'download' && t.existing ? ' existing' : ''}${rangeOf(t) ? ` range=${JSON.stringify(rangeOf(t))}` : ''}`;
}

async function runTrial(t: Trial): Promise<Outcome> {
  const started = Date.now();
  const log: string[] = [];
  const v1 = bytes(t.size, hash32(`${SEED}:v1:${t.index}`));
  const v2 = bytes(t.size2, hash32(`${SEED}:v2:${t.index}`));
  await retried(`seeding t${t.index}`, () => put(t, v1));
  if (t.path !== 's3' && t.digest) await retried(`digest t${t.index}`, () => advertiseDigest(t));
  const proxy = t.path === 's3' ? s3Proxy : httpProxy;
  proxy.routes.set(t.index, {
    fault: planOf(SEED, t),
    replace: t.profile === 'replace' ? () => put(t, v2) : undefined,
    log,
  });
  const dir = join(root, `t${t.index}`);
  mkdirSync(dir);
  const dest = join(dir, 'out.bin');
  const previous = Buffer.from(`an older file at t${t.index}`);
  if (t.op === 'download' && t.existing) writeFileSync(dest, previous);
  const { url, store } = urlOf(t);
  const done = (kind: Outcome['kind'], code?: string, detail?: string): Outcome => ({
    trial: t,
    kind,
    code,
    detail,
    ms: Date.now() - started,
    log,
  });

  const abort = new AbortController();
  const options = {
    store,
    partSize: t.partSize,
    concurrency: t.concurrency,
    checksum: t.checksum,
    durable: false,
    signal: abort.signal,
  };
  // The engine is chosen synchronously when the call starts, so setting the variable around the
  // call's first step picks it for this trial alone, even with other trials in flight.
  const engineBefore = process.env.OBJGET_ENGINE;
  process.env.OBJGET_ENGINE = t.path.startsWith('js-') ? 'js' : 'native';
  let call: Promise<Buffer | undefined>;
  try {
    call =
      t.op === 'download'
        ? download(url, dest, options).then(() => undefined)
        : get(url, { ...options, range: rangeOf(t) });
  } finally {
    if (engineBefore === undefined) delete process.env.OBJGET_ENGINE;
    else process.env.OBJGET_ENGINE = engineBefore;
  }
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), WATCHDOG_MS);
  });
  let result: Buffer | undefined | 'hang';
  let error: unknown;
  try {
    result = await Promise.race([call, watchdog]);
  } catch (e) {
    error = e;
  } finally {
    clearTimeout(timer);
  }
  proxy.routes.delete(t.index);
  if (result === 'hang') {
    abort.abort();
    await call.catch(() => undefined);
    return done('violation', undefined, `no result after ${WATCHDOG_MS} ms`);
  }
  const left = readdirSync(dir);

  if (error === undefined) {
    const got = t.op === 'download' ? readFileSync(dest) : (result as Buffer);
    const versions = (t.profile === 'replace' ? [v1, v2] : [v1]).map((v) => sliceOf(t, v));
    if (!versions.some((v) => v.equals(got))) {
      const which = t.profile === 'replace' ? 'either version' : 'the object';
      return done(
        'violation',
        undefined,
        `resolved with ${got.length} bytes that are not ${which}`,
      );
    }
    const want = t.op === 'download' ? ['out.bin'] : [];
    if (JSON.stringify(left) !== JSON.stringify(want)) {
      return done('violation', undefined, `success left ${JSON.stringify(left)} in the directory`);
    }
    return done('ok');
  }

  const e = error as { code?: unknown; message?: unknown; stack?: unknown; cause?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const text = `${String(e?.message)} ${String(e?.stack)} ${String((e?.cause as Error | undefined)?.message)} ${String((e?.cause as Error | undefined)?.stack)}`;
  if (!(error instanceof StorageError)) {
    return done('violation', code, `threw a non-StorageError: ${String(e?.message)}`);
  }
  if (code === undefined || !KNOWN.has(code)) {
    return done('violation', code, `unknown code: ${String(e.message)}`);
  }
  const kept = t.op === 'download' && t.existing ? ['out.bin'] : [];
  if (JSON.stringify(left) !== JSON.stringify(kept)) {
    return done('violation', code, `failure left ${JSON.stringify(left)} in the directory`);
  }
  if (kept.length > 0 && !readFileSync(dest).equals(previous)) {
    return done('violation', code, 'failure changed the file that was at dest');
  }
  if (text.includes(s.s3.secretAccessKey) || /[?&]sig=[0-9a-f]/.test(text)) {
    return done('violation', code, `error text carries a secret or a signature: ${text}`);
  }
  // Only bytes are broken in these trials, but a loaded machine may still time a request out.
  const corruptCodes = ['ChecksumMismatch', 'ChecksumUnavailable', 'Timeout'];
  if (t.profile === 'corrupt' && !corruptCodes.includes(code)) {
    return done('violation', code, `corrupted bytes reported as ${code}: ${String(e.message)}`);
  }
  return done(code === 'Generic' ? 'generic' : 'typed', code, String(e.message));
}

async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

describe('fault campaign', () => {
  beforeAll(async () => {
    console.log(
      `fault campaign seed=${SEED} (replay: OBJGET_FAULT_SEED=${SEED} npx vitest run test/fault-campaign.test.ts)`,
    );
    s3 = await s3Client();
    s3Proxy = await chaosProxy(s.s3.endpoint);
    httpProxy = await chaosProxy(s.http.url);
  });
  afterAll(async () => {
    await s3Proxy?.close();
    await httpProxy?.close();
    // The campaign's objects go with it (the trial directories go with tempDir's cleanup).
    rmSync(join(s.http.root, 'fault-campaign', RUN), { recursive: true, force: true });
    if (s3) {
      const { ListObjectsV2Command, DeleteObjectsCommand } = await import('@aws-sdk/client-s3');
      const Prefix = `fault-campaign/${RUN}/`;
      for (let token: string | undefined; ;) {
        const page = await s3.send(
          new ListObjectsV2Command({ Bucket: s.s3.bucket, Prefix, ContinuationToken: token }),
        );
        const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
        if (keys.length > 0) {
          await s3.send(
            new DeleteObjectsCommand({ Bucket: s.s3.bucket, Delete: { Objects: keys } }),
          );
        }
        if (!page.IsTruncated) break;
        token = page.NextContinuationToken;
      }
      s3.destroy();
    }
  });

  it(`holds the invariant over ${TRIALS} seeded trials`, async () => {
    const only = process.env.OBJGET_FAULT_ONLY?.split(',').map((t) => Number(t.replace(/^t/, '')));
    const trials = Array.from({ length: TRIALS }, (_, i) => trialOf(SEED, i)).filter(
      (t) => !only || only.includes(t.index),
    );
    const outcomes = await pool(trials, PARALLEL, runTrial);
    const count = (k: Outcome['kind']): number => outcomes.filter((o) => o.kind === k).length;
    const violations = outcomes.filter((o) => o.kind === 'violation');
    const codes: Record<string, number> = {};
    for (const o of outcomes) if (o.code) codes[o.code] = (codes[o.code] ?? 0) + 1;
    const byPath: Record<string, string> = {};
    for (const p of ['s3', 'http', 'http-query', 'js-http', 'js-http-query']) {
      const mine = outcomes.filter((o) => o.trial.path === p);
      byPath[p] =
        `${mine.length} (ok ${mine.filter((o) => o.kind === 'ok').length}, violations ${mine.filter((o) => o.kind === 'violation').length})`;
    }
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    const lines = [
      `fault campaign seed=${SEED} trials=${outcomes.length} ok=${count('ok')} typed=${count('typed')} untyped-ish(Generic)=${count('generic')} violations=${violations.length}`,
      `  codes ${JSON.stringify(codes)}; slowest trial ${slowest} ms`,
      `  paths ${JSON.stringify(byPath)}`,
      ...outcomes
        .filter((o) => o.kind === 'generic')
        .map((o) => `  Generic: ${describeTrial(o.trial)}: ${o.detail}`),
      ...violations.map(
        (o) =>
          `  VIOLATION ${describeTrial(o.trial)}: ${o.detail}\n    faults: ${o.log.join(' | ') || 'none'}`,
      ),
    ];
    console.log(lines.join('\n'));
    if (process.env.OBJGET_FAULT_LOG) {
      writeFileSync(
        process.env.OBJGET_FAULT_LOG,
        outcomes.map((o) => JSON.stringify({ ...o, trial: describeTrial(o.trial) })).join('\n'),
      );
    }
    expect(violations.map((o) => `${describeTrial(o.trial)}: ${o.detail}`)).toEqual([]);
    expect(violations.length).toBe(0);
  }, 600_000);
});
