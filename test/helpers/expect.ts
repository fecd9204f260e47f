import { inspect } from 'node:util';
import { expect } from 'vitest';
import { StorageError } from '../../src/index.js';

/** The StorageError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function rejection(p: Promise<unknown>): Promise<StorageError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error('expected a rejection, got a result');
  expect(outcome.error).toBeInstanceOf(StorageError);
  return outcome.error as StorageError;
}

/** Everything an error shows anyone: message, stack, url, inspection, JSON, and its cause's. */
export function everything(e: unknown): string {
  const err = e as StorageError;
  return [
    err.message,
    err.stack,
    String(err.url),
    inspect(err, { depth: 10 }),
    JSON.stringify(err),
    String((err.cause as Error | undefined)?.message),
    String((err.cause as Error | undefined)?.stack),
  ].join('\n');
}
