import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

/** The built package entry; `npm test` builds it first. */
export function distEntry(root = ROOT): string {
  const p = join(root, 'dist', 'index.js');
  if (!existsSync(p)) throw new Error(`${p} is missing: run 'npm run build' (npm test does)`);
  return p;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run an ES module snippet in a fresh Node process with `env` added to (or removed from) it. */
export function runModule(
  source: string,
  env: Record<string, string | undefined> = {},
  cwd = ROOT,
): { child: ReturnType<typeof spawn>; done: Promise<ChildResult> } {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) {
    if (v !== undefined) merged[k] = v;
  }
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    cwd,
    env: merged,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<ChildResult>((res) =>
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr })),
  );
  return { child, done };
}
