// What the parity tests (test/js-*-parity.test.ts) share: a call run on the native engine then
// on the JS engine, an outcome to compare (a value or an error code), a digest of bytes, a
// sorted listing. The engine chosen last stays set: each test sets what it needs.
import { createHash } from 'node:crypto';
import { afterAll } from 'vitest';
import { list, type StoreOptions } from '../../src/index.js';
import { useEngine } from './servers.js';

/** Restore OBJGET_ENGINE when the test file ends. */
export function restoreEngine(): void {
  const previous = process.env.OBJGET_ENGINE;
  afterAll(() => {
    if (previous === undefined) delete process.env.OBJGET_ENGINE;
    else process.env.OBJGET_ENGINE = previous;
  });
}

/** `fn` under the native engine, then under the JS engine. */
export async function both<T>(fn: (engine: 'native' | 'js') => Promise<T>): Promise<[T, T]> {
  useEngine('native');
  const a = await fn('native');
  useEngine('js');
  const b = await fn('js');
  return [a, b];
}

/** A call's outcome as something to compare: its value, or its error's code. */
export async function outcome<T>(p: Promise<T>): Promise<T | { error: string }> {
  return p.then(
    (v) => v,
    (e: { code?: string }) => ({ error: e.code ?? 'not a StorageError' }),
  );
}

export const digest = (b: Buffer): string =>
  `${b.length}:${createHash('sha256').update(b).digest('hex')}`;

/** Every listed object under `prefixUrl`, sorted by key. */
export async function listAll(prefixUrl: string, s: StoreOptions) {
  const out = [];
  for await (const o of list(prefixUrl, { store: s })) out.push(o);
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}
