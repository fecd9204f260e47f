// The public API, and nothing else: the calls (api/), engine information, scheme registration,
// errors and types.
export { download, downloadMany, get, getDetailed, head } from './api/download.js';
export { allocRdmaBuffer } from './api/rdma.js';
export { engineInfo } from './engines/index.js';
export { copy, exists, list, remove, upload } from './api/ops.js';
export { downloadPrefix, uploadDir } from './api/prefix.js';
export type {
  DownloadPrefixOptions,
  DownloadPrefixResult,
  SkippedObject,
  UploadDirOptions,
} from './api/prefix.js';
export { registerScheme, registeredSchemes, unregisterScheme } from './engines/scheme.js';
export type { SchemeBody, SchemeHandler, SchemeListing } from './engines/scheme.js';
export { Store } from './api/store-handle.js';
export { DownloadManyError, ERROR_CODE_LIST, StorageError } from './errors.js';
export type { ErrorCode, ItemOutcome } from './errors.js';
export type {
  AwsCredentials,
  BearerCredentials,
  ByteRange,
  CallOptions,
  ChecksumAlgorithm,
  ChecksumMode,
  CredentialsFunction,
  CredentialsProvider,
  DataPath,
  DownloadItem,
  DownloadManyOptions,
  DownloadOptions,
  EngineInfo,
  EngineName,
  GetOptions,
  ListedObject,
  ObjectInfo,
  PartOptions,
  Progress,
  RdmaInfo,
  StoreOptions,
  TransferResult,
  UploadOptions,
  UploadResult,
  VerifiedChecksum,
} from './types.js';
