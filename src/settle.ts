import { DownloadManyError, type ItemOutcome, type StorageError } from './errors.js';

/**
 * Run `run` over `items`, at most `concurrency` at once, letting every item finish whatever the
 * others do; outcomes in input order, in `Promise.allSettled` shape.
 */
export async function settleAll<T, R>(
  items: readonly T[],
  concurrency: number,
  run: (item: T, index: number) => Promise<R>,
  reason: (err: unknown, item: T) => StorageError,
): Promise<ItemOutcome<R>[]> {
  const outcomes: ItemOutcome<R>[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const item = items[i]!;
      try {
        outcomes[i] = { status: 'fulfilled', value: await run(item, i) };
      } catch (e) {
        outcomes[i] = { status: 'rejected', reason: reason(e, item) };
      }
    }
  };
  const workers = Math.min(Math.max(1, concurrency), items.length);
  await Promise.all(Array.from({ length: workers }, worker));
  return outcomes;
}

/** Every value, or a `DownloadManyError` listing every outcome if any item failed. */
export function valuesOrThrow<R>(outcomes: ItemOutcome<R>[], what = 'downloads'): R[] {
  if (outcomes.some((o) => o.status === 'rejected')) throw new DownloadManyError(outcomes, what);
  return outcomes.map((o) => (o as { value: R }).value);
}
