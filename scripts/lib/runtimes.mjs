// The other JavaScript runtimes objget is checked on (the package test) and measured against
// (the benchmark's Bun peer): one version each, installed from npm into the shared cache.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR } from './servers.mjs';

export const RUNTIMES = { bun: '1.4.4', deno: '2.9.6' };

/** The path of the runtime's binary, installed from npm (`bun`, `deno`) on first use. */
export function runtimeBin(name) {
  const version = RUNTIMES[name];
  if (!version) throw new Error(`unknown runtime ${name}`);
  const dir = join(CACHE_DIR, 'runtimes', `${name}-${version}`);
  const bin = join(dir, 'node_modules', '.bin', name);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"private":true}');
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--loglevel=error', `${name}@${version}`],
      { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] },
    );
  }
  return bin;
}
