// S3 over RDMA, as JavaScript sees it: registered buffers. Whether RDMA can be used is
// `engineInfo().rdma`; the data plane itself lives in the Rust engine.
import { fromNative, StorageError } from '../errors.js';
import { loadNative } from '../engines/native.js';
import { checkArgs } from '../options.js';

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
