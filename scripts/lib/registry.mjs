// A tiny npm registry for the package test (test/package/package.test.ts): it serves the
// packages of the given tarballs (`npm pack` output) as a registry would, so that
// `npm install objget --registry <url>` resolves the platform package as the optional dependency
// it is, and answers 404 for every other package of the project (a platform package it was not
// given is "not published"). Every other package is proxied to the real registry
// (`npm config get registry`), whose tarball URLs npm then fetches directly.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename } from 'node:path';

/**
 * Start the registry on 127.0.0.1.
 * @param {{ tarballs: string[], own: string, upstream?: string }} o own: the project's name;
 *   `own` and `own-*` are only ever served from `tarballs`.
 * @returns {Promise<{ url: string, requests: string[], stop: () => Promise<void> }>}
 */
export async function startRegistry({ tarballs, own, upstream }) {
  upstream = (upstream ?? npmRegistry()).replace(/\/+$/, '');
  const local = new Map(); // name → { manifest, file, data }
  for (const file of tarballs) {
    const manifest = JSON.parse(
      execFileSync('tar', ['-xzOf', file, 'package/package.json'], { encoding: 'utf8' }),
    );
    const data = readFileSync(file);
    local.set(manifest.name, { manifest, file: basename(file), data });
  }
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    requests.push(`${req.method} ${path}`);
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'content-length': body.length });
      res.end(body);
    };
    const name = path.slice(1);
    const tgz = /^\/(.+)\/-\/([^/]+\.tgz)$/.exec(path);
    const pkg = local.get(tgz ? tgz[1] : name);
    if (pkg && tgz && tgz[2] === pkg.file) return send(200, pkg.data, 'application/octet-stream');
    if (pkg && !tgz) return send(200, Buffer.from(JSON.stringify(packument(pkg, address()))));
    if (name === own || name.startsWith(`${own}-`) || tgz?.[1].startsWith(own)) {
      return send(404, Buffer.from('{"error":"not found"}'));
    }
    if (req.method !== 'GET') return send(405, Buffer.from('{"error":"not served here"}'));
    fetch(upstream + req.url, {
      headers: { accept: req.headers.accept ?? 'application/json' },
    })
      .then(async (r) => {
        const body = Buffer.from(await r.arrayBuffer());
        send(r.status, body, r.headers.get('content-type') ?? 'application/json');
      })
      .catch((e) => send(502, Buffer.from(JSON.stringify({ error: String(e) }))));
  });
  const address = () => `http://127.0.0.1:${server.address().port}`;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: address(),
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function packument({ manifest, file, data }, base) {
  const version = {
    ...manifest,
    _id: `${manifest.name}@${manifest.version}`,
    dist: {
      tarball: `${base}/${manifest.name}/-/${file}`,
      integrity: `sha512-${createHash('sha512').update(data).digest('base64')}`,
      shasum: createHash('sha1').update(data).digest('hex'),
    },
  };
  return {
    name: manifest.name,
    'dist-tags': { latest: manifest.version },
    versions: { [manifest.version]: version },
  };
}

function npmRegistry() {
  return execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim();
}
