// `objget ls`: a listing, folder-style by default (keys grouped at the next `/` into DIR lines),
// every object with --recursive; keys printed as stored, to paste back.
import { Command } from 'commander';
import { head, list, StorageError, type ListedObject } from '../index.js';
import {
  human,
  keyOf,
  libraryUrl,
  out,
  prefixUrl,
  storeFlags,
  storeOptions,
  userUrl,
  type Context,
  type StoreFlags,
} from './common.js';
import { EXIT } from './exit.js';

interface LsFlags extends StoreFlags {
  recursive?: boolean;
  long?: boolean;
  human?: boolean;
  json?: boolean;
}

export function lsCommand(ctx: Context): Command {
  const cmd = new Command('ls')
    .summary('list objects under a prefix (folder-style: DIR lines)')
    .argument('<url>', 'a bucket, a prefix or an object: s3://bucket/prefix/')
    .option('-r, --recursive', 'every object below the prefix, no DIR lines')
    .option('-l, --long', 'last modified and ETag too')
    .option('-H, --human', 'sizes in KiB, MiB, GiB')
    .option('--json', 'one JSON object per line: {type: "dir" | "object", key, url, size, …}');
  storeFlags(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ objget ls s3://bucket/datasets/        # DIR lines for the folders below it
  $ objget ls --recursive --long --human s3://bucket/logs/2026/
  $ objget ls --json s3://bucket/data/ | jq -r 'select(.type=="object") | .key'`,
  );
  return cmd.action(async (url: string, flags: LsFlags) => {
    ctx.exit = await ls(url, flags);
  });
}

async function ls(arg: string, flags: LsFlags): Promise<number> {
  const store = storeOptions(flags);
  const o = out(flags);
  const size = (n: number): string => (flags.human ? human(n) : String(n));
  const scheme = arg.slice(0, arg.indexOf('://'));
  const urlOf = (key: string): string => `${scheme}://${arg.split('/')[2]}/${key}`;
  const dir = (key: string): void => {
    if (o.json) o.event({ type: 'dir', key, url: urlOf(key) });
    else o.write(`${flags.long ? ' '.repeat(26) : ''}${'DIR'.padStart(12)}  ${key}`);
  };
  const object = (x: Omit<ListedObject, 'relative' | 'url'>): void => {
    if (o.json) {
      o.event({
        type: 'object',
        key: x.key,
        url: urlOf(x.key),
        size: x.size,
        lastModified: x.lastModified?.toISOString(),
        etag: x.etag,
        version: x.version,
      });
    } else if (flags.long) {
      const when = x.lastModified?.toISOString().replace(/\.\d+Z$/, 'Z') ?? '-';
      o.write(
        `${when.padEnd(24)}  ${size(x.size).padStart(12)}  ${x.key}  ${x.etag ?? ''}`.trimEnd(),
      );
    } else o.write(`${size(x.size).padStart(12)}  ${x.key}`);
  };
  const seen = new Set<string>();
  let count = 0;
  for await (const x of list(prefixUrl(arg), { store })) {
    count++;
    const at = x.relative.indexOf('/');
    if (flags.recursive || at < 0) object(x);
    else {
      const d = x.key.slice(0, x.key.length - x.relative.length) + x.relative.slice(0, at + 1);
      if (!seen.has(d)) dir(d);
      seen.add(d);
    }
  }
  const key = keyOf(arg);
  if (count === 0 && key && !key.endsWith('/')) {
    // Not a prefix: the object itself, as `aws s3 ls s3://b/key` shows it.
    const info = await head(libraryUrl(arg), { store });
    object({ ...info, key });
    count++;
  }
  if (count === 0 && key) {
    throw new StorageError('NotFound', `nothing under ${userUrl(libraryUrl(arg))}`);
  }
  return EXIT.ok;
}
