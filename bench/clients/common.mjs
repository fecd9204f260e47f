// Shared by the Node benchmark clients: read the job, run it with a concurrency pool, report.
import { createHash } from 'node:crypto';

export const job = JSON.parse(process.argv[2]);

/** Run `fn` over `items` with at most `n` in flight. */
export async function pool(items, n, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

export function report(extra = {}) {
  process.stdout.write(`${JSON.stringify(extra)}\n`);
}

export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
