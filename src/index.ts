export { download, downloadMany, get, getDetailed, head } from './download.js';
export { allocRdmaBuffer } from './rdma.js';
export { engineInfo } from './engine.js';
export { copy, exists, list, remove, upload } from './ops.js';
export { downloadPrefix, uploadDir } from './prefix.js';
export type {
  DownloadPrefixOptions,
  DownloadPrefixResult,
  SkippedObject,
  UploadDirOptions,
} from './prefix.js';
export { registerScheme, registeredSchemes, unregisterScheme } from './schemes.js';
export type { SchemeBody, SchemeHandler, SchemeListing } from './schemes.js';
export { Store } from './store.js';
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
