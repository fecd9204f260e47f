// `objget rm`: remove objects, or every object under a prefix with --recursive; more than one
// object needs --yes, or a yes at the prompt on a terminal.
import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import { list, remove } from '../index.js';
import {
  libraryUrl,
  out,
  prefixUrl,
  storeFlags,
  storeOptions,
  UsageError,
  userUrl,
  type Context,
  type StoreFlags,
} from './common.js';
import { EXIT } from './exit.js';

interface RmFlags extends StoreFlags {
  recursive?: boolean;
  yes?: boolean;
  json?: boolean;
}

export function rmCommand(ctx: Context): Command {
  const cmd = new Command('rm')
    .summary('remove objects (a prefix with --recursive)')
    .argument('<urls...>', 'objects, or prefixes with --recursive')
    .option('-r, --recursive', 'every object under each prefix')
    .option('-y, --yes', 'remove more than one object without asking')
    .option('--json', 'one JSON object per removed object, then a summary');
  storeFlags(cmd);
  cmd.addHelpText(
    'after',
    `
Removing more than one object asks first on a terminal; elsewhere it needs --yes (without it,
rm removes nothing and exits 2). A missing object is not an error.

Examples:
  $ objget rm s3://bucket/tmp/old.bin
  $ objget rm --recursive --yes s3://bucket/tmp/`,
  );
  return cmd.action(async (urls: string[], flags: RmFlags) => {
    ctx.exit = await rm(urls, flags);
  });
}

async function rm(args: string[], flags: RmFlags): Promise<number> {
  const store = storeOptions(flags);
  const o = out(flags);
  const targets: string[] = [];
  for (const a of args) {
    if (!flags.recursive) targets.push(libraryUrl(a));
    else for await (const x of list(prefixUrl(a), { store })) targets.push(x.url);
  }
  if (targets.length > 1 && !flags.yes) {
    const what = `${targets.length} objects (${args.join(', ')})`;
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw new UsageError(`refusing to remove ${what} without --yes`);
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await rl.question(`remove ${what}? [y/N] `);
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) {
      process.stderr.write('nothing removed\n');
      return EXIT.ok;
    }
  }
  if (targets.length) await remove(targets, { store });
  for (const t of targets) {
    if (o.json) o.event({ event: 'removed', url: userUrl(t) });
    else o.write(`removed ${userUrl(t)}`);
  }
  if (o.json) o.event({ event: 'summary', removed: targets.length, exitCode: EXIT.ok });
  else process.stderr.write(`${targets.length} object${targets.length === 1 ? '' : 's'} removed\n`);
  return EXIT.ok;
}
