// What test/js-azure-parity.test.ts needs around its calls: the Azurite store, blobs written
// straight through @azure/storage-blob (not through objget), a SAS token, small listing pages
// (the comparison of one call on both engines is test/helpers/parity.ts's).
import http from 'node:http';
import type { StoreOptions } from '../../src/index.js';
import { servers } from './servers.js';

/** Store options that reach Azurite with Shared Key (`key`: the account key to sign with). */
export function azureStore(key = servers().azure.key): StoreOptions {
  const s = servers().azure;
  return {
    config: {
      azure_storage_account_name: s.account,
      azure_storage_account_key: key,
      azure_storage_endpoint: s.endpoint,
    },
    maxRetries: 1,
    initialBackoffMs: 10,
  };
}

async function containerClient() {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
  const s = servers().azure;
  const svc = new BlobServiceClient(s.endpoint, new StorageSharedKeyCredential(s.account, s.key));
  return svc.getContainerClient(s.container);
}

/** Write blobs straight into Azurite, `concurrency` at a time. */
export async function putAzure(objects: Record<string, Buffer>, concurrency = 8): Promise<void> {
  const c = await containerClient();
  const entries = Object.entries(objects);
  for (let i = 0; i < entries.length; i += concurrency) {
    await Promise.all(
      entries
        .slice(i, i + concurrency)
        .map(([key, data]) => c.getBlockBlobClient(key).uploadData(data)),
    );
  }
}

/** A SAS token for the test container: read, add, create, write, delete, list, for an hour. */
export async function sasToken(): Promise<string> {
  const { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } =
    await import('@azure/storage-blob');
  const s = servers().azure;
  return generateBlobSASQueryParameters(
    {
      containerName: s.container,
      permissions: ContainerSASPermissions.parse('racwdl'),
      expiresOn: new Date(Date.now() + 3600_000),
    },
    new StorageSharedKeyCredential(s.account, s.key),
  ).toString();
}

/**
 * A pass-through proxy to Azurite that asks List Blobs for pages of `pageSize` (Azure's own
 * pages hold 5,000): the query is not part of a SAS signature, so a SAS store still verifies.
 */
export async function smallPages(
  pageSize: number,
): Promise<{ url: string; pages: number; close(): Promise<void> }> {
  const to = new URL(servers().azure.endpoint);
  const state = { pages: 0 };
  const server = http.createServer((req, res) => {
    let path = req.url ?? '/';
    if (/[?&]comp=list(&|$)/.test(path)) {
      state.pages++;
      path += `&maxresults=${pageSize}`;
    }
    const up = http.request(
      { host: to.hostname, port: to.port, method: req.method, path, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    get pages() {
      return state.pages;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
