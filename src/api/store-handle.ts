import { download, downloadMany, get, head } from './download.js';
import { StorageError } from '../errors.js';
import { checkArgs } from '../options.js';
import { joinKey } from '../urls.js';
import { copy, exists, list, remove, upload } from './ops.js';
import {
  downloadPrefix,
  uploadDir,
  type DownloadPrefixOptions,
  type DownloadPrefixResult,
  type UploadDirOptions,
} from './prefix.js';
import type {
  DownloadManyOptions,
  DownloadOptions,
  GetOptions,
  ListedObject,
  ObjectInfo,
  StoreOptions,
  TransferResult,
  UploadOptions,
  UploadResult,
} from '../types.js';

/**
 * A base URL and its options (credentials, endpoint, region, retries, timeouts), offering every
 * operation on keys relative to it. Calls share the engine's cached store and connections for
 * this base and these options.
 *
 * @example
 * const bucket = new Store('s3://my-bucket/models', { config: { aws_region: 'eu-west-1' } });
 * await bucket.upload('./w.bin', 'v2/w.bin', { ifNotExists: true });
 * await bucket.download('v2/w.bin', './copy.bin');
 */
export class Store {
  readonly baseUrl: string;
  readonly options: StoreOptions;

  constructor(baseUrl: string, options: StoreOptions = {}) {
    checkArgs('Store', baseUrl, options);
    if (typeof baseUrl !== 'string' || !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(baseUrl)) {
      throw new StorageError('InvalidUrl', 'a Store needs a base URL such as s3://bucket/prefix');
    }
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.options = options;
  }

  /** The URL of a key: keys are relative and never climb out of the base. */
  url(key = ''): string {
    if (typeof key !== 'string' || key.startsWith('/') || key.split('/').includes('..')) {
      throw new StorageError(
        'UnsafeKey',
        `key ${JSON.stringify(key)} is not relative to the store`,
      );
    }
    return key ? joinKey(this.baseUrl, key) : `${this.baseUrl}/`;
  }

  private with<T extends object>(o: T | undefined): T & { store: StoreOptions } {
    return { ...(o ?? ({} as T)), store: this.options };
  }

  download(key: string, dest: string, o?: Omit<DownloadOptions, 'store'>): Promise<TransferResult> {
    return download(this.url(key), dest, this.with(o));
  }

  get(key: string, o?: Omit<GetOptions, 'store'>): Promise<Buffer> {
    return get(this.url(key), this.with(o));
  }

  head(key: string): Promise<ObjectInfo> {
    return head(this.url(key), { store: this.options });
  }

  exists(key: string): Promise<boolean> {
    return exists(this.url(key), { store: this.options });
  }

  upload(
    source: Parameters<typeof upload>[0],
    key: string,
    o?: Omit<UploadOptions, 'store'>,
  ): Promise<UploadResult> {
    return upload(source, this.url(key), this.with(o));
  }

  remove(keys: string | string[]): Promise<void> {
    const all = Array.isArray(keys) ? keys : [keys];
    return remove(
      all.map((k) => this.url(k)),
      { store: this.options },
    );
  }

  copy(fromKey: string, toKey: string, o: { ifNotExists?: boolean } = {}): Promise<void> {
    return copy(this.url(fromKey), this.url(toKey), { ...o, store: this.options });
  }

  list(prefix = ''): AsyncGenerator<ListedObject> {
    return list(this.url(prefix), { store: this.options });
  }

  downloadMany(
    items: { key: string; dest: string }[],
    o?: Omit<DownloadManyOptions, 'store'>,
  ): Promise<TransferResult[]> {
    return downloadMany(
      items.map((i) => ({ url: this.url(i.key), dest: i.dest })),
      this.with(o),
    );
  }

  downloadPrefix(
    prefix: string,
    destDir: string,
    o?: Omit<DownloadPrefixOptions, 'store'>,
  ): Promise<DownloadPrefixResult> {
    return downloadPrefix(this.url(prefix), destDir, this.with(o));
  }

  uploadDir(
    dir: string,
    prefix = '',
    o?: Omit<UploadDirOptions, 'store'>,
  ): Promise<UploadResult[]> {
    return uploadDir(dir, this.url(prefix), this.with(o));
  }
}
