#!/usr/bin/env node
// lease: the lease service from a shell. One module per command group (leases, orphans,
// watch, run); this file owns the global options, the exit codes and the error report.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { makeContext } from './api.js';
import { EXIT_CODES_HELP, exitCodeOf } from './exit-codes.js';
import { registerLeaseCommands, type ContextOf } from './leases.js';
import { registerOrphanCommands } from './orphans.js';
import { makeOutput, printError } from './output.js';
import { registerRunCommand } from './run.js';
import { registerTokenCommands } from './tokens.js';
import { registerWatchCommand } from './watch.js';

/** An opaque URL-safe id (a lease id is 22 characters) that happens to start with "-". */
const DASH_ID = /^-[A-Za-z0-9_-]{15,63}$/;

// src/cli/main.ts and dist/cli/main.js are both two folders below package.json.
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('lease')
  .description('Acquire, inspect and release leases of the lease service; run a command under a lease.')
  .version(version)
  .option('--url <url>', 'where the lease service answers (env LEASE_URL)', process.env.LEASE_URL || 'http://127.0.0.1:8080')
  .option(
    '--namespace <ns>',
    'the namespace (a tenant, a cell or a region) to work in: 1 to 63 lower-case letters, digits and dashes (env LEASE_NAMESPACE)',
    process.env.LEASE_NAMESPACE || 'default',
  )
  // No default here, unlike --url: commander would print the token in --help.
  .option('--token <token>', 'bearer token sent to a service with access control on (env LEASE_TOKEN; prefer it, since arguments show in ps)')
  .option('--json', "machine output: the API's JSON as it answered (errors: the problem JSON on stderr)")
  .addHelpText('after', EXIT_CODES_HELP)
  .configureOutput({
    // Usage errors exit 1; with --json they are JSON too, like every other error.
    outputError: (message, write) =>
      write(jsonWanted ? `${JSON.stringify({ code: 'usage', detail: message.replace(/^error: /, '').trim() })}\n` : message),
  });

const contextOf: ContextOf = (command) => {
  const { url, namespace, token, json } = command.optsWithGlobals<{ url: string; namespace: string; token?: string; json?: boolean }>();
  return makeContext({ url, namespace, token: token ?? (process.env.LEASE_TOKEN || undefined) }, makeOutput(json === true));
};

registerLeaseCommands(program, contextOf);
registerOrphanCommands(program, contextOf);
registerWatchCommand(program, contextOf);
registerRunCommand(program, contextOf, () => commandLine);
registerTokenCommands(program);

// `lease ls | head -1`: a reader that has seen enough is no error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const { argv, commandLine } = prepareArgv(process.argv, program);
const jsonWanted = argv.includes('--json');

try {
  await program.parseAsync(argv);
} catch (error) {
  printError(makeOutput(jsonWanted), error);
  process.exitCode = exitCodeOf(error);
}
// Open sockets of the HTTP client's pool must not keep a finished command waiting.
process.exit();

/**
 * Two things commander cannot do alone. For `lease run`, everything after the first `--` is
 * the command to run (commander would mix it into the paths). For the other commands, an
 * id that starts with "-" (lease ids are base64url: one in 64 does) would be read as an
 * unknown option: a token of that shape that is no option and no option's value is moved
 * after a `--`, where commander reads operands.
 */
function prepareArgv(processArgv: string[], root: Command): { argv: string[]; commandLine: string[] | null } {
  const [node, script, ...args] = processArgv as [string, string, ...string[]];
  const flags = new Set<string>();
  const valueFlags = new Set<string>();
  const collect = (command: Command) => {
    for (const option of command.options) {
      for (const flag of [option.long, option.short]) {
        if (!flag) continue;
        flags.add(flag);
        if (option.required || option.optional) valueFlags.add(flag);
      }
    }
    command.commands.forEach(collect);
  };
  collect(root);
  const isValue = (i: number) => i > 0 && valueFlags.has(args[i - 1]!);
  const subcommand = args.find((arg, i) => !arg.startsWith('-') && !isValue(i));
  const end = args.indexOf('--');
  if (subcommand === 'run') {
    return end < 0 ? { argv: [node, script, ...args], commandLine: null } : { argv: [node, script, ...args.slice(0, end)], commandLine: args.slice(end + 1) };
  }
  const options = end < 0 ? args : args.slice(0, end);
  const operands = end < 0 ? [] : args.slice(end + 1);
  const dashIds = options.filter((arg, i) => DASH_ID.test(arg) && !flags.has(arg) && !isValue(i));
  if (dashIds.length === 0) return { argv: processArgv, commandLine: null };
  return { argv: [node, script, ...options.filter((arg) => !dashIds.includes(arg)), '--', ...dashIds, ...operands], commandLine: null };
}
