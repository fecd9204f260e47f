// A standard load for benchmarks on a busy machine, shared by bench/run.mjs (its `-busy`
// scenarios) and bench/durability.mjs.
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';

/**
 * A standard load: one CPU-bound process per core at normal priority, and a writer that appends
 * 1 MiB and fsyncs in a loop (its file, `writerFile`, wraps at 256 MiB) on the disk the clients
 * write to. `stop()` kills them all and resolves when they have exited.
 */
export function startLoad(writerFile) {
  const spin = 'for (;;) {}';
  const writer = `const fs = require('node:fs');
    const fd = fs.openSync(process.argv[1], 'w');
    const b = Buffer.alloc(1 << 20, 7);
    for (let n = 0; ; n++) {
      if (n % 256 === 0) fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, b, 0, b.length, (n % 256) * b.length);
      fs.fsyncSync(fd);
    }`;
  const children = [
    ...cpus().map(() => spawn(process.execPath, ['-e', spin], { stdio: 'ignore' })),
    spawn(process.execPath, ['-e', writer, writerFile], { stdio: 'ignore' }),
  ];
  return {
    stop: () =>
      Promise.all(
        children.map(
          (c) =>
            new Promise((res) => {
              if (c.exitCode !== null || c.signalCode !== null) return res();
              c.once('exit', res);
              c.kill('SIGKILL');
            }),
        ),
      ),
  };
}
