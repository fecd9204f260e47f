export { download, downloadMany, get, head } from './download.js';
export { engineInfo } from './engine.js';
export { DownloadManyError, StorageError } from './errors.js';
export type { ErrorCode, ItemOutcome } from './errors.js';
export type {
  ByteRange,
  CallOptions,
  ChecksumAlgorithm,
  ChecksumMode,
  DownloadItem,
  DownloadManyOptions,
  DownloadOptions,
  EngineInfo,
  EngineName,
  GetOptions,
  ObjectInfo,
  PartOptions,
  Progress,
  StoreOptions,
  TransferResult,
  VerifiedChecksum,
} from './types.js';
