// A throwaway CA and a leaf certificate for 127.0.0.1/localhost, made with openssl. rustls
// rejects a self-signed leaf that is itself a CA, hence two certificates.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function makeCerts(dir) {
  mkdirSync(dir, { recursive: true });
  const p = (f) => join(dir, f);
  if (!existsSync(p('leaf.pem'))) {
    const run = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
    run(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '30',
      '-subj',
      '/CN=objget test CA',
      '-keyout',
      p('ca.key'),
      '-out',
      p('ca.pem'),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
    run(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      p('leaf.key'),
      '-out',
      p('leaf.csr'),
    );
    writeFileSync(
      p('leaf.ext'),
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ].join('\n'),
    );
    run(
      'x509',
      '-req',
      '-in',
      p('leaf.csr'),
      '-CA',
      p('ca.pem'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      p('leaf.ext'),
      '-out',
      p('leaf.pem'),
    );
  }
  return {
    ca: readFileSync(p('ca.pem'), 'utf8'),
    cert: readFileSync(p('leaf.pem'), 'utf8'),
    key: readFileSync(p('leaf.key'), 'utf8'),
  };
}
