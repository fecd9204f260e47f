// Credentials the way users have them (native engine): AWS profiles in ~/.aws, credential_process,
// role chains, and `store.credentials` (rotation, refresh before expiry, validation), against the
// real MinIO, fake-gcs-server and Azurite. Profile tests run in a child process with its own
// HOME, as users have them; none depends on the developer's own ~/.aws.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, getDetailed, head, Store, upload, type StoreOptions } from '../src/index.js';
import { distEntry, runModule } from './helpers/child.js';
import { everything, rejection } from './helpers/expect.js';
import { startGateway } from './helpers/gateway.js';
import { SENTINEL_SECRET, servers, type ServersInfo } from './helpers/servers.js';

const dirs: string[] = [];

// The simulated cuObject client connects when CUFILE_ENV_PATH_JSON lists an RDMA device (as in
// rdma.test.ts); set before the shim first loads in this worker.
const cufileDir = mkdtempSync(join(tmpdir(), 'objget-cufile-'));
dirs.push(cufileDir);
writeFileSync(
  join(cufileDir, 'cufile.json'),
  JSON.stringify({ properties: { rdma_dev_addr_list: ['192.0.2.10'] } }),
);
process.env.CUFILE_ENV_PATH_JSON = join(cufileDir, 'cufile.json');
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

let n = 0;
const unique = (what: string): string => `creds/${what}-${process.pid}-${Date.now()}-${n++}`;

/** Every AWS_* variable of this process removed, so that a child sees only what a test gives. */
function noAwsEnv(): Record<string, undefined> {
  const out: Record<string, undefined> = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) out[k] = undefined;
  return out;
}

/** A HOME with ~/.aws/config and ~/.aws/credentials holding `config` and `credentials`. */
function awsHome(config: string, credentials = ''): string {
  const home = tempDir('objget-home-');
  mkdirSync(join(home, '.aws'));
  writeFileSync(join(home, '.aws', 'config'), config);
  writeFileSync(join(home, '.aws', 'credentials'), credentials);
  return home;
}

/**
 * In a child node process with HOME = `home` and `env`: upload a Buffer to `s3://bucket/key` with
 * no store options at all, read it back, and print what happened (and whether the AWS SDK's
 * chain was loaded).
 */
async function roundTrip(
  home: string,
  env: Record<string, string | undefined>,
): Promise<{ ok: boolean; code?: string; message?: string; same?: boolean; sdk?: boolean }> {
  const s = servers();
  const key = unique('child');
  const source = `
    import { createRequire } from 'node:module';
    import { upload, get, remove } from ${JSON.stringify(distEntry())};
    const url = 's3://${s.s3.bucket}/${key}';
    const data = Buffer.from('objget credentials ' + '${key}');
    const sdk = () => Object.keys(createRequire(import.meta.url).cache)
      .some((k) => k.includes('credential-provider-node'));
    try {
      await upload(data, url);
      const back = await get(url);
      await remove(url);
      console.log(JSON.stringify({ ok: true, same: back.equals(data), sdk: sdk() }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, code: e.code, message: [e.message, e.stack, String(e.cause?.message)].join('\\n'), sdk: sdk() }));
    }
  `;
  const { done } = runModule(source, {
    ...noAwsEnv(),
    HOME: home,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    OBJGET_ENGINE: 'native',
    ...env,
  });
  const r = await done;
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function minioProfile(s: ServersInfo, name: string, extra = ''): string {
  return `[profile ${name}]\nregion = ${s.s3.region}\nendpoint_url = ${s.s3.endpoint}\n${extra}`;
}

describe('AWS credentials the way the SDKs find them (child processes)', () => {
  it('AWS_PROFILE with ~/.aws/config and ~/.aws/credentials: endpoint, region and keys from the profile', async () => {
    const s = servers();
    const home = awsHome(
      minioProfile(s, 'objget-test'),
      `[objget-test]\naws_access_key_id = ${s.s3.accessKeyId}\naws_secret_access_key = ${s.s3.secretAccessKey}\n`,
    );
    const r = await roundTrip(home, { AWS_PROFILE: 'objget-test' });
    expect(r).toMatchObject({ ok: true, same: true, sdk: true });

    // Without the profile the same call has no credentials.
    const without = await roundTrip(home, {});
    expect(without.ok).toBe(false);
    expect(without.code).toBe('Unauthenticated');
    expect(without.message).not.toContain(s.s3.secretAccessKey);
  });

  it("a profile's services section gives the S3 endpoint ahead of its own endpoint_url", async () => {
    const s = servers();
    const home = awsHome(
      `[profile objget-services]\nregion = ${s.s3.region}\nendpoint_url = http://127.0.0.1:9\nservices = objget-s3\n` +
        `[services objget-s3]\ns3 =\n  endpoint_url = ${s.s3.endpoint}\n`,
      `[objget-services]\naws_access_key_id = ${s.s3.accessKeyId}\naws_secret_access_key = ${s.s3.secretAccessKey}\n`,
    );
    const r = await roundTrip(home, { AWS_PROFILE: 'objget-services' });
    expect(r).toMatchObject({ ok: true, same: true });
  });

  it('static keys in the environment never load the SDK chain', async () => {
    const s = servers();
    const home = awsHome(minioProfile(s, 'default').replace('[profile default]', '[default]'));
    const r = await roundTrip(home, {
      AWS_ACCESS_KEY_ID: s.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s.s3.secretAccessKey,
    });
    // The endpoint and region still come from the default profile.
    expect(r).toMatchObject({ ok: true, same: true, sdk: false });
  });

  it('credential_process: the keys a program prints', async () => {
    const s = servers();
    const bin = tempDir('objget-process-');
    const script = join(bin, 'print-keys.mjs');
    writeFileSync(
      script,
      `console.log(JSON.stringify({ Version: 1, AccessKeyId: ${JSON.stringify(s.s3.accessKeyId)}, SecretAccessKey: ${JSON.stringify(s.s3.secretAccessKey)} }));\n`,
    );
    chmodSync(script, 0o755);
    const home = awsHome(
      minioProfile(s, 'objget-process', `credential_process = "${process.execPath}" "${script}"\n`),
    );
    const r = await roundTrip(home, { AWS_PROFILE: 'objget-process' });
    expect(r).toMatchObject({ ok: true, same: true });

    // A process that fails: Unauthenticated, nothing secret shown.
    writeFileSync(script, `process.stderr.write('no keys today'); process.exit(3);\n`);
    const failed = await roundTrip(home, { AWS_PROFILE: 'objget-process' });
    expect(failed).toMatchObject({ ok: false, code: 'Unauthenticated' });
    expect(failed.message).not.toContain(s.s3.secretAccessKey);
  });

  it('role_arn with source_profile: keys from STS AssumeRole at the profile endpoint', async () => {
    const s = servers();
    const home = awsHome(
      minioProfile(s, 'objget-base') +
        minioProfile(
          s,
          'objget-role',
          'role_arn = arn:aws:iam::123456789012:role/objget-test\nsource_profile = objget-base\n',
        ),
      `[objget-base]\naws_access_key_id = ${s.s3.accessKeyId}\naws_secret_access_key = ${s.s3.secretAccessKey}\n`,
    );
    const r = await roundTrip(home, { AWS_PROFILE: 'objget-role' });
    expect(r).toMatchObject({ ok: true, same: true });
  });

  it('container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI, as ECS and EKS Pod Identity serve them)', async () => {
    const s = servers();
    // Temporary keys from MinIO's STS, fetched through the role profile by the SDK's own chain.
    const roleHome = awsHome(
      minioProfile(s, 'objget-base') +
        minioProfile(
          s,
          'objget-role',
          'role_arn = arn:aws:iam::123456789012:role/objget-test\nsource_profile = objget-base\n',
        ),
      `[objget-base]\naws_access_key_id = ${s.s3.accessKeyId}\naws_secret_access_key = ${s.s3.secretAccessKey}\n`,
    );
    const { done } = runModule(
      `import { defaultProvider } from '@aws-sdk/credential-provider-node';
       const c = await defaultProvider()();
       console.log(JSON.stringify({ AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey,
         Token: c.sessionToken, Expiration: c.expiration.toISOString() }));`,
      {
        ...noAwsEnv(),
        HOME: roleHome,
        AWS_PROFILE: 'objget-role',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
    );
    const temp = await done;
    expect(temp.stderr).toBe('');
    const body = temp.stdout.trim();
    expect(JSON.parse(body).Token).toBeTruthy();

    let hits = 0;
    const agent = createServer((req, res) => {
      hits++;
      res.setHeader('content-type', 'application/json');
      res.end(req.url === '/creds' ? body : '{}');
    });
    await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
    try {
      const port = (agent.address() as { port: number }).port;
      const r = await roundTrip(tempDir('objget-home-'), {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/creds`,
        AWS_ENDPOINT_URL: s.s3.endpoint,
        AWS_REGION: s.s3.region,
      });
      expect(r).toMatchObject({ ok: true, same: true, sdk: true });
      expect(hits).toBeGreaterThanOrEqual(1);
    } finally {
      agent.close();
    }
  });
});

describe('GCS application default credentials where gcloud writes them (child processes)', () => {
  it('a service-account file under CLOUDSDK_CONFIG is used, with no metadata server', async () => {
    const s = servers();
    const gcloud = tempDir('objget-gcloud-');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(
      join(gcloud, 'application_default_credentials.json'),
      JSON.stringify({
        type: 'service_account',
        client_email: 'objget-test@example.iam.gserviceaccount.com',
        private_key_id: 'objget-test-key',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      }),
    );
    const head = async (env: Record<string, string | undefined>) => {
      const source = `
        import { head } from ${JSON.stringify(distEntry())};
        const store = { config: { google_base_url: ${JSON.stringify(s.gcs.url)} }, maxRetries: 0 };
        const code = await head('gs://${s.gcs.bucket}/${unique('adc')}', { store }).then(() => 'found', (e) => e.code);
        console.log(code);
      `;
      const { done } = runModule(source, {
        HOME: tempDir('objget-home-'),
        GOOGLE_APPLICATION_CREDENTIALS: undefined,
        GOOGLE_SERVICE_ACCOUNT: undefined,
        GOOGLE_SERVICE_ACCOUNT_KEY: undefined,
        OBJGET_ENGINE: 'native',
        ...env,
      });
      const r = await done;
      expect(r.stderr).toBe('');
      return r.stdout.trim();
    };
    // The request reached fake-gcs-server signed with a token from that file.
    expect(await head({ CLOUDSDK_CONFIG: gcloud })).toBe('NotFound');
    // Without it there are no credentials (and the metadata server is off in tests).
    expect(await head({ CLOUDSDK_CONFIG: undefined })).toBe('Unauthenticated');
  });
});

describe('store.credentials', () => {
  let s: ServersInfo;
  let base: StoreOptions;
  let key: string;
  beforeAll(async () => {
    process.env.OBJGET_ENGINE = 'native';
    s = servers();
    base = {
      config: { aws_endpoint: s.s3.endpoint, aws_region: s.s3.region },
      maxRetries: 0,
      initialBackoffMs: 10,
    };
    key = unique('fn');
    await upload(Buffer.from('hello credentials'), `s3://${s.s3.bucket}/${key}`, {
      store: {
        ...base,
        config: {
          ...base.config,
          aws_access_key_id: s.s3.accessKeyId,
          aws_secret_access_key: s.s3.secretAccessKey,
        },
      },
    });
  });
  afterAll(() => {
    delete process.env.OBJGET_ENGINE;
  });

  it('takes precedence over config keys, and rotated keys are used by the next request', async () => {
    let calls = 0;
    let secret = s.s3.secretAccessKey;
    const store: StoreOptions = {
      ...base,
      // Wrong keys in the config: the function's win.
      config: { ...base.config, aws_access_key_id: 'nobody', aws_secret_access_key: 'wrong-wrong' },
      credentials: async ({ provider }) => {
        calls++;
        expect(provider).toBe('s3');
        // Expiring within the 5-minute window: asked again before every request.
        return {
          accessKeyId: s.s3.accessKeyId,
          secretAccessKey: secret,
          expiration: new Date(Date.now() + 60_000),
        };
      },
    };
    const url = `s3://${s.s3.bucket}/${key}`;
    expect((await head(url, { store })).size).toBe(17);
    const afterValid = calls;
    expect(afterValid).toBeGreaterThanOrEqual(1);

    secret = SENTINEL_SECRET;
    const err = await rejection(head(url, { store }));
    expect(['Unauthenticated', 'PermissionDenied']).toContain(err.code);
    expect(everything(err)).not.toContain(SENTINEL_SECRET);
    expect(calls).toBe(afterValid + 1);

    secret = s.s3.secretAccessKey;
    expect((await get(url, { store })).toString()).toBe('hello credentials');
    expect(calls).toBeGreaterThanOrEqual(afterValid + 2);
  });

  it('one without expiration is asked once, for every store and request that uses it', async () => {
    let calls = 0;
    const credentials = async () => {
      calls++;
      return { accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey };
    };
    const bucket = new Store(`s3://${s.s3.bucket}`, { ...base, credentials });
    for (let i = 0; i < 4; i++) expect((await bucket.head(key)).size).toBe(17);
    expect(
      (await head(`s3://${s.s3.bucket}/${key}`, { store: { ...base, credentials } })).size,
    ).toBe(17);
    expect(calls).toBe(1);
  });

  it('one nearing its expiration is fetched again once inside the 5-minute window', async () => {
    let calls = 0;
    const credentials = async () => {
      calls++;
      // Just outside the window when returned.
      return {
        accessKeyId: s.s3.accessKeyId,
        secretAccessKey: s.s3.secretAccessKey,
        sessionToken: undefined,
        expiration: new Date(Date.now() + 5 * 60_000 + 2_000),
      };
    };
    const store = { ...base, credentials };
    const url = `s3://${s.s3.bucket}/${key}`;
    await head(url, { store });
    await head(url, { store });
    expect(calls).toBe(1);
    await new Promise((r) => setTimeout(r, 2_500));
    await head(url, { store });
    expect(calls).toBe(2);
    await head(url, { store });
    expect(calls).toBe(2);
  });

  it('a throw, a wrong shape or a bad expiration is Unauthenticated, and no secret is shown', async () => {
    const url = `s3://${s.s3.bucket}/${key}`;
    const cases: StoreOptions['credentials'][] = [
      async () => {
        throw new Error(`cannot reach the vault with ${SENTINEL_SECRET}`);
      },
      async () => ({ secretAccessKey: SENTINEL_SECRET }) as never,
      async () => ({ accessKeyId: 'x', secretAccessKey: 42 }) as never,
      async () => ({ token: SENTINEL_SECRET }),
      async () =>
        ({
          accessKeyId: s.s3.accessKeyId,
          secretAccessKey: SENTINEL_SECRET,
          expiration: 'tomorrow',
        }) as never,
      async () => null as never,
      () => 'keys' as never,
    ];
    for (const credentials of cases) {
      const err = await rejection(head(url, { store: { ...base, credentials } }));
      expect(err.code).toBe('Unauthenticated');
      expect(err.message).toMatch(/store\.credentials/);
      expect(everything(err)).not.toContain(SENTINEL_SECRET);
    }
  });

  it('is checked like every option', async () => {
    const err = await rejection(
      head(`s3://${s.s3.bucket}/${key}`, { store: { credentials: 'secret' as never } }),
    );
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toContain('store.credentials');
  });

  it('serves GCS and Azure stores with a bearer token, and refuses AWS keys there', async () => {
    let calls = 0;
    const token = `${SENTINEL_SECRET}-bearer`;
    const credentials = async ({ provider }: { provider: string }) => {
      calls++;
      expect(['gcs', 'azure']).toContain(provider);
      return { token };
    };
    // fake-gcs-server takes any token; its base URL comes from the emulator key.
    const gcsUrl = `gs://${s.gcs.bucket}/${unique('gcs')}`;
    const gcsStore = {
      config: { google_service_account_key: s.gcs.serviceAccountKey },
      credentials,
    };
    const missing = await rejection(head(gcsUrl, { store: gcsStore }));
    expect(missing.code).toBe('NotFound');
    expect(calls).toBe(1);

    // Azurite takes no bearer token over plain HTTP: the request was made with the token.
    const azStore = {
      config: {
        azure_storage_account_name: s.azure.account,
        azure_storage_endpoint: s.azure.endpoint,
      },
      maxRetries: 0,
      credentials,
    };
    const azErr = await rejection(
      head(`az://${s.azure.container}/${unique('az')}`, { store: azStore }),
    );
    expect(['Unauthenticated', 'PermissionDenied']).toContain(azErr.code);
    expect(calls).toBe(2);
    expect(everything(azErr)).not.toContain(token);

    const aws = async () => ({ accessKeyId: 'AKID', secretAccessKey: SENTINEL_SECRET });
    const wrong = await rejection(head(gcsUrl, { store: { ...gcsStore, credentials: aws } }));
    expect(wrong.code).toBe('Unauthenticated');
    expect(everything(wrong)).not.toContain(SENTINEL_SECRET);
  });
  it("signs objget's own S3 requests too (S3 over RDMA through the verifying gateway)", async () => {
    const gw = await startGateway();
    try {
      const key = unique('rdma');
      const data = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
      await upload(data, `s3://${s.s3.bucket}/${key}`, {
        store: {
          ...base,
          credentials: async () => ({
            accessKeyId: s.s3.accessKeyId,
            secretAccessKey: s.s3.secretAccessKey,
          }),
        },
      });
      let calls = 0;
      let secret = s.s3.secretAccessKey;
      const store: StoreOptions = {
        config: { aws_endpoint: gw.url, aws_region: s.s3.region },
        maxRetries: 0,
        rdma: 'require',
        credentials: async () => {
          calls++;
          return {
            accessKeyId: s.s3.accessKeyId,
            secretAccessKey: secret,
            expiration: new Date(Date.now() + 60_000),
          };
        },
      };
      const got = await getDetailed(`s3://${s.s3.bucket}/${key}`, { store });
      expect(got.result.path).toBe('rdma');
      expect(got.data.equals(data)).toBe(true);
      expect(calls).toBeGreaterThanOrEqual(1);
      const log = (await gw.log()).filter((e) => e.tokenPresent);
      expect(log.length).toBeGreaterThan(0);
      expect(log.every((e) => e.tokenSigned && e.status < 300)).toBe(true);

      // Keys rotated to wrong ones: the gateway (which checks every signature) refuses them.
      secret = SENTINEL_SECRET;
      const err = await rejection(getDetailed(`s3://${s.s3.bucket}/${key}`, { store }));
      expect(['Unauthenticated', 'PermissionDenied']).toContain(err.code);
      expect(everything(err)).not.toContain(SENTINEL_SECRET);
    } finally {
      await gw.stop();
    }
  });
});
