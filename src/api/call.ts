// What every public call shares: its one error wrap, and the shape of its results.
import { usesStore } from '../engines/index.js';
import { fromNative } from '../errors.js';
import type { Engine, EngineTransfer, StoreOptions, TransferResult } from '../types.js';

/**
 * Run a public call: whatever it throws, from an engine or from its own checks, reaches the
 * caller as a `StorageError`, wrapped here and only here.
 */
export async function guarded<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw fromNative(e);
  }
}

/** An engine's transfer as the caller sees it: what, where, how, and by which engine. */
export function transferResult(
  engine: Engine,
  url: string,
  dest: string,
  r: EngineTransfer,
  store: StoreOptions | undefined,
): TransferResult {
  return {
    url,
    dest,
    path: 'http',
    ...r,
    engine: engine.name,
    // A result says when it came over TLS without certificate checks.
    ...(usesStore(engine) && store?.insecureSkipTlsVerify === true
      ? { insecureSkipTlsVerify: true as const }
      : {}),
  };
}
