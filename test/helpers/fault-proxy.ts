// A pass-through HTTP proxy in front of a real server that fails chosen requests: for faults the
// server itself cannot be made to produce (a 500 on one multipart part), or slows every reply
// body (to stop a transfer from MinIO part-way). Headers, Host included, go through untouched,
// so SigV4 signatures still verify at the server.
import http from 'node:http';
import { pipeline, Transform } from 'node:stream';

export interface FaultProxy {
  url: string;
  close(): Promise<void>;
  /** Requests answered with the injected failure. */
  failed: number;
}

/** Every reply body at most `bytesPerSec` (per reply). */
export interface ProxyOptions {
  bytesPerSec?: number;
}

export async function faultProxy(
  target: string,
  fail: (req: http.IncomingMessage) => boolean,
  opts: ProxyOptions = {},
): Promise<FaultProxy> {
  const to = new URL(target);
  const state = { failed: 0 };
  const server = http.createServer((req, res) => {
    if (fail(req)) {
      state.failed++;
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' });
      res.end('<Error><Code>InternalError</Code><Message>injected</Message></Error>');
      return;
    }
    const up = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        if (opts.bytesPerSec) throttled(r, res, opts.bytesPerSec);
        else r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    get failed() {
      return state.failed;
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
