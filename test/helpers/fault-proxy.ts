// A pass-through HTTP proxy in front of a real server that fails chosen requests: for faults the
// server itself cannot be made to produce (a 500 on one multipart part). Headers, Host included,
// go through untouched, so SigV4 signatures still verify at the server.
import http from 'node:http';

export interface FaultProxy {
  url: string;
  close(): Promise<void>;
  /** Requests answered with the injected failure. */
  failed: number;
  /** Requests the server carried out whose reply was dropped (`dropReply`). */
  dropped: number;
}

export interface FaultOptions {
  /**
   * Let the request through to the server, then drop its reply (the connection is reset once
   * the server has answered): a request that took effect although the client never heard so.
   */
  dropReply?: (req: http.IncomingMessage) => boolean;
}

export async function faultProxy(
  target: string,
  fail: (req: http.IncomingMessage) => boolean,
  options: FaultOptions = {},
): Promise<FaultProxy> {
  const to = new URL(target);
  const state = { failed: 0, dropped: 0 };
  const server = http.createServer((req, res) => {
    if (fail(req)) {
      state.failed++;
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' });
      res.end('<Error><Code>InternalError</Code><Message>injected</Message></Error>');
      return;
    }
    const drop = options.dropReply?.(req) ?? false;
    const up = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        if (drop) {
          state.dropped++;
          r.resume();
          r.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
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
