// Driving the HTTP fixture (scripts/lib/http-fixture.mjs): objects on disk, faults, counters.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { bytes, servers, uniqueKey } from './servers.js';

export interface FixtureObject {
  /** The object's URL on the plain-HTTP fixture. */
  url: string;
  /** Its path on the server (the fault and stats key). */
  path: string;
  /** Its file on disk. */
  file: string;
  data: Buffer;
}

/** Put `size` deterministic bytes on the fixture under a fresh key. */
export function seedHttp(size: number, prefix = 'fixture', seed = size + 7): FixtureObject {
  const s = servers();
  const key = `${uniqueKey(prefix)}/obj.bin`;
  const data = bytes(size, seed);
  const file = join(s.http.root, key);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, data);
  return { url: `${s.http.url}/${key}`, path: `/${key}`, file, data };
}

/** Switch a fault on for one path (see the fixture's header for the kinds). */
export async function fault(body: { path: string; kind: string; [k: string]: unknown }) {
  const r = await fetch(`${servers().http.url}/__fault`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  expect(r.status).toBe(204);
}

/** Every fault off. */
export async function clearFaults(): Promise<void> {
  await fetch(`${servers().http.url}/__fault`, { method: 'DELETE' });
}

/** Requests the fixture has answered for `path` (any method). */
export async function requestsFor(path: string): Promise<number> {
  const r = await fetch(`${servers().http.url}/__stats`);
  return ((await r.json()) as { byPath: Record<string, number> }).byPath[path] ?? 0;
}
