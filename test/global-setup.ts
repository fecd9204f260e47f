import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
// @ts-expect-error plain ESM script without types
import { startServers } from '../scripts/lib/servers.mjs';
import type { ServersInfo } from './helpers/servers.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const workDir = mkdtempSync(join(tmpdir(), 'objget-servers-'));
  const { info, stop } = (await startServers({ workDir })) as {
    info: ServersInfo;
    stop: () => Promise<void>;
  };
  project.provide('servers', info);
  return stop;
}
