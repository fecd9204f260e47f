import { mkdtempSync, rmSync } from 'node:fs';
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
  // The servers' data (MinIO holds GiB-sized test objects) goes with them: a suite that fills
  // the disk run after run fails for a reason that has nothing to do with the code.
  return async () => {
    await stop();
    if (!process.env.OBJGET_KEEP_SERVERS) rmSync(workDir, { recursive: true, force: true });
  };
}
