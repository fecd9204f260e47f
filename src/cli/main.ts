// The `objget` command line: one file per command in this directory, each a thin layer over the
// public API (src/index.ts). This file wires them: commander, --version, SIGINT, exit codes.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { benchCommand } from './bench.js';
import { catCommand } from './cat.js';
import { describe, exitOf, KEYS_HELP, normaliseArgv, type Context } from './common.js';
import { cpCommand } from './cp.js';
import { EXIT, EXIT_HELP } from './exit.js';
import { infoCommand } from './info.js';
import { lsCommand } from './ls.js';
import { rmCommand } from './rm.js';
import { statCommand } from './stat.js';

const { version } = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
) as { version: string };

const controller = new AbortController();
const ctx: Context = { signal: controller.signal, exit: EXIT.ok, abortable: false };

// Ctrl-C: a transfer is aborted through its AbortSignal (the library removes its temporaries and
// aborts multipart uploads) and the command exits 130; a second Ctrl-C, or a command with nothing
// to clean up, exits at once.
process.on('SIGINT', () => {
  if (controller.signal.aborted || !ctx.abortable) process.exit(EXIT.interrupted);
  process.stderr.write('\nobjget: interrupted, aborting…\n');
  controller.abort();
});

const program = new Command('objget')
  .description('Fast, verified object storage transfers: S3, GCS, Azure, HTTP(S) and files.')
  .version(version, '-V, --version')
  .addHelpText(
    'after',
    `\n${KEYS_HELP}\n\n${EXIT_HELP}\n\nEach command has its own --help, with examples.`,
  );
for (const make of [
  cpCommand,
  lsCommand,
  statCommand,
  catCommand,
  rmCommand,
  infoCommand,
  benchCommand,
]) {
  program.addCommand(make(ctx));
}
for (const c of [program, ...program.commands]) {
  c.exitOverride().showHelpAfterError('(add --help for usage)');
  if (c !== program && c.name() !== 'info') c.addHelpText('after', `\n${KEYS_HELP}`);
}

let code: number;
try {
  await program.parseAsync(normaliseArgv(process.argv));
  code = controller.signal.aborted ? EXIT.interrupted : ctx.exit;
} catch (e) {
  if (e instanceof CommanderError) {
    // commander printed the help, the version or the usage error already.
    code = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    const d = describe(e);
    code = exitOf(e, controller.signal);
    if (process.argv.includes('--json')) {
      process.stdout.write(`${JSON.stringify({ event: 'error', ...d, exitCode: code })}\n`);
    }
    process.stderr.write(`objget: ${d.code === 'Usage' ? '' : `${d.code}: `}${d.message}\n`);
  }
}
process.exit(code);
