// Azure Blob Storage as a provider of the JS engine (cloud.ts): azure.ts locates blobs and makes
// the calls that move no object bytes, azure-upload.ts the uploads; read.ts reads.
import {
  AZURE_SCHEMES,
  azureInfo,
  copy,
  head,
  list,
  located,
  remove,
  resolveBlob,
} from './azure.js';
import { azureUpload } from './azure-upload.js';
import { advertised } from './checksum.js';
import type { Provider } from './cloud.js';

export const azureProvider: Provider = {
  schemes: AZURE_SCHEMES,
  calls: ['list', 'remove', 'copy', 'upload'],
  // Azure answers no `bytes=-n`: a suffix is read by offset once the size is known.
  suffixRanges: false,
  locate: async (url, store) => located(resolveBlob(url, store)),
  head,
  info: azureInfo,
  offered: (headers, partial) => advertised(headers, partial),
  list,
  remove,
  copy,
  upload: azureUpload,
};
