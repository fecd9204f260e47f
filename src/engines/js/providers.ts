// The cloud stores the JS engine speaks, by URL scheme (src/engines/js/cloud.ts says what a
// provider is). A scheme that is not here is `NotSupported` on the JS engine.
import type { Located, Provider } from './cloud.js';
import { azureProvider } from './azure-provider.js';
import { advertised } from './checksum.js';
import {
  CHECKSUM_MODE,
  infoOf,
  objectHref,
  resolveObject,
  s3Copy,
  s3Head,
  s3List,
  s3Remove,
  S3_SCHEMES,
  via,
  type S3Object,
} from './s3.js';
import { s3Upload } from './upload.js';
import { gcs } from './gcs.js';

const located = (o: S3Object): Located => ({
  url: o.url,
  store: o.store,
  href: objectHref(o),
  via: (what) => via(o, o.url, what),
  readHeaders: CHECKSUM_MODE,
});

const s3: Provider = {
  schemes: S3_SCHEMES,
  calls: ['list', 'remove', 'copy', 'upload'],
  locate: async (url, store) => located(await resolveObject(url, store)),
  head: async (url, store) => (await s3Head(await resolveObject(url, store))).info,
  info: infoOf,
  offered: (headers, partial) => advertised(headers, partial, true),
  list: s3List,
  remove: s3Remove,
  copy: s3Copy,
  upload: s3Upload,
};

export const PROVIDERS: readonly Provider[] = [s3, gcs, azureProvider];

/** The provider of a URL scheme (lower case), if the JS engine speaks it. */
export function providerOf(scheme: string): Provider | undefined {
  return PROVIDERS.find((p) => p.schemes.includes(scheme));
}
