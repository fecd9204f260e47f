// `objget stat`: an object's size, ETag, last modified time and version (head).
import { Command } from 'commander';
import { head } from '../index.js';
import {
  libraryUrl,
  out,
  storeFlags,
  storeOptions,
  type Context,
  type StoreFlags,
} from './common.js';
import { EXIT } from './exit.js';

export function statCommand(ctx: Context): Command {
  const cmd = new Command('stat')
    .summary("an object's size, ETag, last modified and version")
    .argument('<url>', 'the object: s3://bucket/key')
    .option('--json', 'one JSON object: {url, size, etag, lastModified, version}');
  storeFlags(cmd);
  cmd.addHelpText(
    'after',
    '\nExamples:\n  $ objget stat s3://bucket/model.bin\n  $ objget stat --json https://example.com/file.bin',
  );
  return cmd.action(async (url: string, flags: StoreFlags & { json?: boolean }) => {
    const info = await head(libraryUrl(url), { store: storeOptions(flags) });
    const o = out(flags);
    const fields = {
      url,
      size: info.size,
      etag: info.etag,
      lastModified: info.lastModified?.toISOString(),
      version: info.version,
    };
    if (o.json) o.event(fields);
    else {
      for (const [k, v] of Object.entries(fields)) {
        if (v !== undefined) o.write(`${`${k}:`.padEnd(14)}${v}`);
      }
    }
    ctx.exit = EXIT.ok;
  });
}
