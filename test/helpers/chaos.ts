// The fault campaign's pieces: a small seeded PRNG, and a proxy in front of a real server (MinIO
// or the HTTP fixture) that breaks chosen requests in the ways a network and a busy store do:
// connections refused or reset at a byte offset, bodies stalled or cut short, 429/503 storms,
// flipped bytes, and an object replaced while its first body is streaming. Each request is routed
// to its trial by the object key (`…/t<index>/…`), and its fault is decided from the trial, the
// request (method, path, Range) and how many times that same request came before, so a seed
// replays the same faults whatever order concurrent parts arrive in. Headers, Host included, go
// through untouched, so SigV4 and the fixture's presigned-URL signatures still verify.
import http from 'node:http';
import type { Socket } from 'node:net';

/** mulberry32: a 32-bit seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string, for deriving seeds. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** What the proxy does to one request. `at` is a fraction of the response body. */
export type Fault =
  | { kind: 'pass' }
  /** Reset the connection before any response. */
  | { kind: 'refuse' }
  | { kind: 'status'; status: number; retryAfter: boolean }
  /** Hold the response headers back for `ms`. */
  | { kind: 'stall-headers'; ms: number }
  /** Send the body up to `at`, then nothing for `ms`, then the rest. */
  | { kind: 'stall'; at: number; ms: number }
  /** Send the body up to `at`, then reset the connection (RST). */
  | { kind: 'reset'; at: number }
  /** Send the body up to `at`, then close the connection cleanly (FIN) short of Content-Length. */
  | { kind: 'truncate'; at: number }
  /** Flip the byte at `at`. */
  | { kind: 'corrupt'; at: number };

/** One request as a trial's fault plan sees it. */
export interface RequestInfo {
  method: string;
  path: string;
  range: string | undefined;
  /** How many identical requests (method, path, Range) this trial saw before this one. */
  n: number;
}

export interface Route {
  fault(r: RequestInfo): Fault;
  /**
   * Called once, when the first body of this trial has begun to arrive from the server (so the
   * server has the old version open): replace the object. The proxy holds the body back until
   * it settles (at most a moment), then goes on.
   */
  replace?: () => Promise<void>;
  /** What happened, in arrival order (`GET bytes=0-99 #0 reset@37`). */
  log: string[];
}

export interface ChaosProxy {
  url: string;
  routes: Map<number, Route>;
  close(): Promise<void>;
}

const TRIAL = /\/t(\d+)\//;

export async function chaosProxy(target: string): Promise<ChaosProxy> {
  const to = new URL(target);
  const routes = new Map<number, Route>();
  const counts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  };
  const kill = (socket: Socket | null): void => {
    if (!socket) return;
    if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
    else socket.destroy();
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    let id: number | undefined;
    try {
      const m = TRIAL.exec(decodeURIComponent(path));
      id = m ? Number(m[1]) : undefined;
    } catch {
      id = undefined;
    }
    const route = id === undefined ? undefined : routes.get(id);
    const range = req.headers.range;
    const method = req.method ?? 'GET';
    const key = `${id} ${method} ${path} ${range ?? ''}`;
    const n = counts.get(key) ?? 0;
    counts.set(key, n + 1);
    const fault: Fault = route ? route.fault({ method, path, range, n }) : { kind: 'pass' };
    const note = (what: string): void => {
      route?.log.push(`${method} ${range ?? '-'} #${n} ${what}`);
    };

    if (fault.kind === 'refuse') {
      note('refuse');
      req.resume();
      kill(req.socket);
      return;
    }
    if (fault.kind === 'status') {
      note(`status ${fault.status}`);
      req.resume();
      const code = fault.status === 429 ? 'SlowDown' : 'ServiceUnavailable';
      res.writeHead(fault.status, {
        'content-type': 'application/xml',
        ...(fault.retryAfter ? { 'retry-after': '0' } : {}),
      });
      res.end(`<Error><Code>${code}</Code><Message>injected</Message></Error>`);
      return;
    }

    const forward = (): void => {
      const up = http.request(
        { host: to.hostname, port: to.port, method, path: req.url, headers: req.headers },
        (r) => respond(r),
      );
      up.on('error', () => res.destroy());
      if (req.readableEnded) up.end();
      else req.pipe(up);
      res.on('close', () => up.destroy());
    };

    const respond = (r: http.IncomingMessage): void => {
      const len = Number(r.headers['content-length'] ?? 0);
      const hasBody = method === 'GET' && len > 0 && (r.statusCode ?? 0) < 300;
      res.writeHead(r.statusCode ?? 502, r.headers);
      if (!hasBody) {
        if (fault.kind !== 'pass' && fault.kind !== 'stall-headers')
          note(`${fault.kind} (no body)`);
        r.pipe(res);
        return;
      }
      const at = 'at' in fault ? Math.min(len - 1, Math.floor(fault.at * len)) : -1;
      let sent = 0;
      let triggered = false;
      let first = true;
      // A body held back (a stall, a replacement) may see the server's 'end' before the held
      // bytes are written: the response ends only once nothing is held.
      let held = false;
      let ended = false;
      const finish = (): void => {
        if (!ended || held) return;
        const cut = triggered && (fault.kind === 'reset' || fault.kind === 'truncate');
        if (!cut && !res.destroyed) res.end();
      };
      const hold = (ms: number, then: () => void, until?: Promise<void>): void => {
        held = true;
        r.pause();
        let done = false;
        const go = (): void => {
          if (done) return;
          done = true;
          held = false;
          if (res.destroyed) return;
          then();
          // `then` may hold the body again (a stall in the chunk a replacement held back): the
          // newer hold resumes it, so that no chunk overtakes the held one.
          if (held) return;
          r.resume();
          finish();
        };
        until?.then(go, go);
        later(ms, go);
      };
      const onData = (chunk: Buffer): void => {
        if (first && route?.replace) {
          // The server has the old version open: replace it now, hold this body a moment.
          first = false;
          const replace = route.replace;
          route.replace = undefined;
          note('replace');
          hold(300, () => onData(chunk), replace());
          return;
        }
        first = false;
        if (triggered || at < 0 || sent + chunk.length <= at) {
          sent += chunk.length;
          res.write(chunk);
          return;
        }
        const head = chunk.subarray(0, at - sent);
        const tail = chunk.subarray(at - sent);
        sent += chunk.length;
        triggered = true;
        switch (fault.kind) {
          case 'corrupt': {
            const bad = Buffer.from(tail);
            bad[0] = bad[0]! ^ 0xff;
            note(`corrupt@${at}`);
            res.write(head);
            res.write(bad);
            return;
          }
          case 'reset':
            note(`reset@${at}`);
            r.destroy();
            res.write(head, () => later(10, () => kill(res.socket)));
            return;
          case 'truncate':
            note(`truncate@${at}`);
            r.destroy();
            res.write(head, () => res.socket?.end());
            return;
          case 'stall':
            note(`stall@${at} ${fault.ms}ms`);
            res.write(head);
            hold(fault.ms, () => res.write(tail));
            return;
          default:
            res.write(chunk);
        }
      };
      r.on('data', onData);
      r.on('end', () => {
        ended = true;
        finish();
      });
      r.on('error', () => res.destroy());
    };

    if (fault.kind === 'stall-headers') {
      note(`stall-headers ${fault.ms}ms`);
      later(fault.ms, () => {
        if (!req.socket.destroyed) forward();
      });
      return;
    }
    forward();
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    close: () =>
      new Promise((resolve) => {
        closed = true;
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
