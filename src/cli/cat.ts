// `objget cat`: an object (or a byte range of it) to stdout (get; the whole object is verified).
import { Command, InvalidArgumentError } from 'commander';
import { get, type ByteRange } from '../index.js';
import {
  libraryUrl,
  rdmaFlags,
  storeFlags,
  storeOptions,
  type Context,
  type StoreFlags,
} from './common.js';
import { EXIT } from './exit.js';

/** `a-b` (bytes a to b, inclusive, as HTTP), `a-` (from a to the end) or `-n` (the last n). */
export function byteRange(v: string): ByteRange {
  const m = /^(\d*)-(\d*)$/.exec(v.trim());
  const a = m?.[1] ? Number(m[1]) : undefined;
  const b = m?.[2] ? Number(m[2]) : undefined;
  if (!m || (a === undefined && b === undefined) || (a !== undefined && b !== undefined && b < a)) {
    throw new InvalidArgumentError('must be a-b (inclusive), a- or -n');
  }
  if (a === undefined) return { suffix: b! };
  return b === undefined ? { offset: a } : { offset: a, length: b - a + 1 };
}

export function catCommand(ctx: Context): Command {
  const cmd = new Command('cat')
    .summary('write an object, or a byte range of it, to stdout')
    .argument('<url>', 'the object: s3://bucket/key')
    .option('--range <a-b>', 'bytes a to b inclusive (a-: to the end, -n: the last n)', byteRange)
    .option('--no-verify', 'verify no checksum (checksum off)');
  rdmaFlags(cmd);
  storeFlags(cmd);
  cmd.addHelpText(
    'after',
    '\nThe object is read whole into memory (as get does) and its checksum verified before a\nbyte is written; a range is not verified.\n\nExamples:\n  $ objget cat s3://bucket/config.json | jq .\n  $ objget cat --range 0-1023 s3://bucket/model.bin | xxd | head',
  );
  return cmd.action(
    async (url: string, flags: StoreFlags & { range?: ByteRange; verify: boolean }) => {
      ctx.abortable = true;
      const data = await get(libraryUrl(url), {
        store: storeOptions(flags),
        signal: ctx.signal,
        range: flags.range,
        checksum: flags.verify ? undefined : 'off',
      });
      await new Promise<void>((res, rej) =>
        process.stdout.write(data, (e) => (e ? rej(e) : res())),
      );
      ctx.exit = EXIT.ok;
    },
  );
}
