// `objget info`: engineInfo() as a person reads it, and which credential variables are set
// (their names; never a value).
import { Command } from 'commander';
import { engineInfo } from '../index.js';
import { out, type Context } from './common.js';
import { EXIT } from './exit.js';

/** Credential sources in the environment, per provider: names only (a profile's name too). */
const CREDENTIAL_VARS: Record<string, string[]> = {
  s3: [
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_PROFILE',
    'AWS_WEB_IDENTITY_TOKEN_FILE',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
    'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  ],
  gcs: [
    'GOOGLE_SERVICE_ACCOUNT',
    'GOOGLE_SERVICE_ACCOUNT_PATH',
    'GOOGLE_SERVICE_ACCOUNT_KEY',
    'GOOGLE_APPLICATION_CREDENTIALS',
  ],
  azure: [
    'AZURE_STORAGE_ACCOUNT_NAME',
    'AZURE_STORAGE_ACCOUNT_KEY',
    'AZURE_STORAGE_SAS_KEY',
    'AZURE_STORAGE_SAS_TOKEN',
    'AZURE_STORAGE_TOKEN',
    'AZURE_CLIENT_ID',
    'AZURE_CLIENT_SECRET',
    'AZURE_TENANT_ID',
    'AZURE_FEDERATED_TOKEN_FILE',
  ],
};

export function infoCommand(ctx: Context): Command {
  return new Command('info')
    .summary('the engine, the addon, RDMA and the credential variables set (never a secret)')
    .option('--json', 'one JSON object: engineInfo() and the credential variables set')
    .addHelpText('after', '\nExamples:\n  $ objget info\n  $ objget info --json | jq .rdma')
    .action((flags: { json?: boolean }) => {
      const info = engineInfo();
      const credentials = Object.fromEntries(
        Object.entries(CREDENTIAL_VARS).map(([p, vars]) => [
          p,
          vars.filter((v) => !!process.env[v]),
        ]),
      );
      const o = out(flags);
      if (o.json) {
        o.event({ ...info, credentialVariables: credentials });
      } else {
        const n = info.native;
        const rows: [string, string][] = [
          ['engine', info.engine],
          [
            'native addon',
            n.loaded
              ? `loaded: objget ${n.version}, object_store ${n.objectStoreVersion}, ${n.tls}`
              : `not loaded: ${n.reason}`,
          ],
          ['js engine', `${info.js.schemes.join(', ')}: ${info.js.capabilities.join(', ')}`],
          [
            'rdma',
            info.rdma.available
              ? `available (${info.rdma.backend}, ${info.rdma.shim})`
              : `unavailable: ${info.rdma.reason}`,
          ],
          ['insecure TLS', info.insecureTls ? 'used in this process' : 'no'],
          ...Object.entries(credentials).map(([p, vars]): [string, string] => [
            `${p} credentials`,
            vars.length
              ? `set: ${vars.join(', ')}`
              : 'no variable set (profiles, metadata services and the like are asked when needed)',
          ]),
        ];
        for (const [k, v] of rows) o.write(`${k.padEnd(19)}${v}`);
      }
      ctx.exit = EXIT.ok;
    });
}
