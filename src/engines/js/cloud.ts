// What the JS engine needs of a cloud store (S3, and the providers that join it): where an
// object's bytes are and how a request for them is made, its HEAD with the checksums the store
// keeps, and the calls that move no object bytes. The reads (parallel ranged GETs pinned by
// If-Match, resumed after a cut, verified, landed) are written once, in read.ts, for every
// provider; src/engines/js/providers.ts lists the providers by scheme.
import type {
  ListedObject,
  ObjectInfo,
  StoreOptions,
  UploadOptions,
  VerifiedChecksum,
} from '../../types.js';
import type { Response, Via } from './http.js';

/** One object of a cloud store, located for one call. */
export interface Located {
  /** The caller's URL: what messages name. */
  url: string;
  store: StoreOptions | undefined;
  /** Where the object's GETs go (ranged, pinned by If-Match). */
  href: string;
  /** How a request named `what` travels: signed, its failure read from the store's reply. */
  via(what: string): Via;
  /** Headers of a whole object's GET (S3: ask for the stored checksums). */
  readHeaders?: Record<string, string>;
}

/** What an upload made. */
export interface Uploaded {
  etag?: string;
  version?: string;
  bytes: number;
  parts: number;
  checksum: VerifiedChecksum;
}

export type UploadSource = string | Buffer | AsyncIterable<Uint8Array>;

/** A cloud store the JS engine speaks: reads always, the other calls where it has them. */
export interface Provider {
  /** The URL schemes it serves (`s3`, `s3a`, …). */
  schemes: string[];
  /** The calls it makes beyond the reads (every reading call is made for every provider). */
  calls: readonly ('list' | 'remove' | 'copy' | 'upload')[];
  /** False where the store has no suffix ranges (`bytes=-n`; Azure): the size is read first. */
  suffixRanges?: false;
  locate(url: string, store: StoreOptions | undefined): Promise<Located>;
  /** The object's HEAD (for `head` and `exists`; reads learn the same from their first GET). */
  head(url: string, store: StoreOptions | undefined): Promise<ObjectInfo>;
  /** An object's size, ETag, time and version from a reply's headers (HEAD or GET). */
  info(headers: Response['headers'], size: number): ObjectInfo;
  /** The whole-object checksums a reply's headers name, best first (`partial`: a 206). */
  offered(headers: Response['headers'], partial: boolean): VerifiedChecksum[];
  list?(prefixUrl: string, store: StoreOptions | undefined): AsyncIterable<ListedObject>;
  remove?(urls: string[], store: StoreOptions | undefined): Promise<void>;
  copy?(
    from: string,
    to: string,
    ifNotExists: boolean,
    store: StoreOptions | undefined,
  ): Promise<void>;
  upload?(source: UploadSource, url: string, o: UploadOptions): Promise<Uploaded>;
}
