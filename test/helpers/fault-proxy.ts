// A pass-through HTTP proxy in front of a real server that fails chosen requests: for faults the
// server itself cannot be made to produce (a 500 on one multipart part, a storm of 503 SlowDown,
// a 403 whose body echoes the signature, a redirect to plain http, a body cut mid-way, a reply
// lost after the server acted), or slows every reply body (to stop a transfer part-way).
// Headers, Host included, go through untouched, so SigV4 signatures still verify at the server.
import http from 'node:http';
import https from 'node:https';
import { pipeline, Transform } from 'node:stream';

/** What to do with a request instead of passing it through. */
export type Fault =
  /** Answer with this status (and body, headers). */
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** Pass the request through, then cut the reply's body after `afterBytes` bytes. */
  | { kind: 'reset'; afterBytes: number }
  /** Answer with a redirect to `location`. */
  | { kind: 'redirect'; location: string; status?: number };

export interface FaultProxy {
  url: string;
  close(): Promise<void>;
  /** Requests answered with the injected failure. */
  failed: number;
  /** Requests the server carried out whose reply was dropped (`dropReply`). */
  dropped: number;
}

export interface FaultOptions {
  /** Serve the proxy over https with this key and certificate. */
  tls?: { key: string; cert: string };
  /** Every reply body at most this many bytes a second (per reply). */
  bytesPerSec?: number;
  /**
   * Let the request through to the server, then drop its reply (the connection is reset once
   * the server has answered): a request that took effect although the client never heard so.
   */
  dropReply?: (req: http.IncomingMessage) => boolean;
  /**
   * Send the target's Host instead of the client's: for a server that routes by Host (as
   * fake-gcs-server's XML API does), where no signature covers it.
   */
  targetHost?: boolean;
}

/**
 * `fail` decides per request: `false` passes it through, `true` answers 500 InternalError (the
 * original behaviour), a `Fault` says what else to do.
 */
export async function faultProxy(
  target: string,
  fail: (req: http.IncomingMessage) => boolean | Fault,
  options: FaultOptions = {},
): Promise<FaultProxy> {
  const to = new URL(target);
  const state = { failed: 0, dropped: 0 };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const decided = fail(req);
    const fault: Fault | undefined =
      decided === true
        ? {
            kind: 'status',
            status: 500,
            body: '<Error><Code>InternalError</Code><Message>injected</Message></Error>',
            headers: { 'content-type': 'application/xml' },
          }
        : decided === false
          ? undefined
          : decided;
    if (fault) state.failed++;
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, fault.headers ?? { 'content-type': 'application/xml' });
      res.end(fault.body ?? '');
      return;
    }
    if (fault?.kind === 'redirect') {
      req.resume();
      res.writeHead(fault.status ?? 302, { location: fault.location, 'content-length': '0' });
      res.end();
      return;
    }
    const drop = options.dropReply?.(req) ?? false;
    const up = http.request(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: options.targetHost ? { ...req.headers, host: to.host } : req.headers,
      },
      (r) => {
        if (drop) {
          state.dropped++;
          r.resume();
          r.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(r.statusCode ?? 502, r.headers);
        if (fault?.kind === 'reset') {
          let sent = 0;
          r.on('data', (c: Buffer) => {
            if (sent >= fault.afterBytes) return;
            const keep = c.subarray(0, fault.afterBytes - sent);
            sent += keep.length;
            res.write(keep);
            if (sent >= fault.afterBytes) {
              r.destroy();
              // Let the partial bytes leave, then cut the connection.
              setTimeout(() => res.socket?.resetAndDestroy?.() ?? res.destroy(), 20);
            }
          });
          r.on('end', () => res.end());
        } else if (options.bytesPerSec) {
          throttled(r, res, options.bytesPerSec);
        } else {
          r.pipe(res);
        }
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = options.tls
    ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    get failed() {
      return state.failed;
    },
    get dropped() {
      return state.dropped;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** `from` into `to`, each chunk held back as long as `bytesPerSec` asks. */
function throttled(from: http.IncomingMessage, to: http.ServerResponse, bytesPerSec: number) {
  const slow = new Transform({
    transform(chunk: Buffer, _enc, done) {
      setTimeout(() => done(null, chunk), (chunk.length / bytesPerSec) * 1000);
    },
  });
  pipeline(from, slow, to, () => {});
}
