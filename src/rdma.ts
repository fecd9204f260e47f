// S3 over RDMA, as JavaScript sees it: whether it can be used here, registered buffers, and the
// option checks both engines share. The data plane itself lives in the Rust engine.
import { fromNative, StorageError } from './errors.js';
import { loadNative } from './native.js';
import { checkArgs } from './validate.js';
import type { EngineName, RdmaInfo, StoreOptions } from './types.js';

/** Whether RDMA can be used in this process, and if not, exactly why. Never throws. */
export function rdmaInfo(): RdmaInfo {
  const n = loadNative();
  if (!n.binding) {
    return {
      available: false,
      reason: `RDMA needs the native addon: ${n.reason}`,
      registrations: 0,
      tokens: 0,
    };
  }
  const s = n.binding.rdmaStatus();
  return {
    available: s.available,
    reason: s.reason ?? undefined,
    backend: s.backend ?? undefined,
    shim: s.shim ?? undefined,
    registrations: s.registrations,
    tokens: s.tokens,
  };
}

/**
 * Page-aligned host memory registered with cuObject, as a Buffer. `get(url, { rdma, into })`
 * lands a whole S3 object in it with no copy on the client, and `upload(buf, url, { rdma })`
 * sends from it directly. Registration is expensive: allocate once, reuse. The memory is
 * deregistered and freed when the Buffer is garbage-collected. `RdmaUnavailable` (with the
 * reason) where RDMA cannot be used.
 *
 * @example
 * const buf = allocRdmaBuffer(256 << 20);
 * const view = await get('s3://bucket/shard-0', { into: buf, store: { rdma: true } });
 */
export function allocRdmaBuffer(size: number): Buffer {
  checkArgs('allocRdmaBuffer', size);
  const n = loadNative();
  if (!n.binding) {
    throw new StorageError(
      'RdmaUnavailable',
      `allocRdmaBuffer needs the native addon: ${n.reason}`,
    );
  }
  try {
    return n.binding.allocRdmaBuffer(size);
  } catch (e) {
    throw fromNative(e);
  }
}

/** Reject an `rdma` value that is not one, and what the JS engine cannot do. */
export function checkRdma(engine: EngineName, url: string, store: StoreOptions | undefined): void {
  const r: unknown = store?.rdma;
  if (r === undefined || r === false) return;
  if (r !== true && r !== 'require') {
    throw new StorageError(
      'InvalidArgument',
      `rdma is false, true or 'require', got ${JSON.stringify(r)}`,
      { url },
    );
  }
  if (engine !== 'js') return;
  if (!/^s3:\/\//i.test(url)) {
    throw new StorageError(
      'InvalidArgument',
      'rdma applies to S3 URLs only (S3 over RDMA is an S3 protocol)',
      { url },
    );
  }
  if (r === 'require') {
    throw new StorageError(
      'RdmaUnavailable',
      'the JS engine has no RDMA data path; the native addon is not in use',
      { url },
    );
  }
}
