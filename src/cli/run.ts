// lease run: hold a lease exactly as long as a command runs (etcdctl lock / consul lock),
// and make sure the command is gone before the lease can pass to anyone else.
//
// The command gets the fencing token (LEASE_FENCING_TOKEN) and the lease id (LEASE_ID) in
// its environment, runs in its own process group (so a signal reaches everything it
// started, not only its first process) and inherits stdin, stdout and stderr. A HeldLease
// renews at a third of the ttl and aborts its signal `grace` ms before the lease must be
// presumed lost (ttl after the last confirmed renewal was sent, by the monotonic clock);
// then the group gets SIGTERM, and SIGKILL a little before that deadline. A 410 or a 404 (the lease
// is already gone: revoked, or its grant lost in a failover) gets SIGTERM at once and SIGKILL after `grace`.
import { spawn } from 'node:child_process';
import { constants, hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { LeaseLostError, LeaseServiceError } from '../client/errors.js';
import { HeldLease } from '../client/held-lease.js';
import type { ReleaseOutcome } from '../client/types.js';
import type { Context } from './api.js';
import { EXIT, UsageError } from './exit-codes.js';
import { acquireRequest, addAcquireOptions, type ContextOf } from './leases.js';
import { integer } from './options.js';
import { groupRunning, signalGroup } from './process-group.js';
import { duration, printError, problemOf } from './output.js';

interface RunOptions {
  holder?: string;
  ttl: number;
  grace?: number;
  mode?: 'shared' | 'exclusive';
  wait?: number;
  actionKind?: string;
  payload?: unknown;
  maxAttempts?: number;
  maxHold?: number;
  lockDelay?: number;
  verbose?: boolean;
}

const DEFAULT_TTL_MS = 15000;
/** SIGKILL goes out this much before the deadline (at most a fifth of grace), for a late timer and the kernel's teardown. */
const KILL_LEAD_MAX_MS = 100;
/** After the command's first process is gone, how long its group's other processes get to go too. */
const STRAGGLER_WAIT_MS = 2000;
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** `lease run` was interrupted (Ctrl-C) before the command started. */
class InterruptedError extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`Interrupted by ${signal}`);
  }
}

export function registerRunCommand(program: Command, contextOf: ContextOf, commandLine: () => string[] | null): void {
  addAcquireOptions(
    program
      .command('run')
      .usage('[options] <path...> -- <command> [args...]')
      .description(
        'run a command while holding a lease on the paths; the command gets LEASE_FENCING_TOKEN and LEASE_ID, and is stopped ' +
          '(SIGTERM, then SIGKILL before the lease can pass to anyone else) if the lease is lost',
      )
      .argument('<path...>', 'resource paths, e.g. instances/i-42')
      .option('--holder <holder>', 'who holds the lease (default: lease-run@<hostname>:<pid>)')
      .option('--ttl <ms>', 'time to live of each grant and renewal; renewed every third of it', integer, DEFAULT_TTL_MS)
      .option('--grace <ms>', 'SIGTERM this long before the lease must be presumed lost, SIGKILL just before that point (default: ttl/4; less than 2/3 of ttl)', integer),
  )
    .option('-v, --verbose', 'report the grant, each renewal and each signal sent on stderr')
    .addHelpText(
      'after',
      `
The command runs in its own process group: Ctrl-C (SIGINT), SIGTERM and SIGHUP sent to lease run are
passed on to the whole group. When the command ends, the lease is released: completed when it exits 0,
abandoned when it exits otherwise after such a signal (an action then becomes an orphan for another
conductor), failed otherwise; lease run exits with the command's code (128+N for signal N).
If the lease is lost (revoked, expired, lost in a Redis failover, or no renewal confirmed in time), the group gets SIGTERM, then
SIGKILL, and lease run exits ${EXIT.leaseLost}. If lease run itself is killed with SIGKILL, nothing can stop the
command: that is what the fencing token is for.`,
    )
    .action(async (paths: string[], options: RunOptions, command: Command) => {
      process.exitCode = await run(contextOf(command), paths, options, commandLine());
    });
}

async function run(ctx: Context, paths: string[], options: RunOptions, commandLine: string[] | null): Promise<number> {
  if (!commandLine || commandLine.length === 0) throw new UsageError('lease run needs a command after --: lease run <path...> -- <command> [args...]');
  const ttl = options.ttl;
  const grace = options.grace ?? Math.floor(ttl / 4);
  // Renewals go out every ttl/3: a grace of 2/3 of the ttl or more would give the lease up
  // before the first renewal could be confirmed.
  if (grace * 3 >= ttl * 2) {
    throw new UsageError(`--grace ${grace} must be less than 2/3 of --ttl ${ttl} (${Math.ceil((ttl * 2) / 3)} ms): renewals go out every third of the ttl.`);
  }
  const request = acquireRequest(paths, { ...options, holder: options.holder ?? `lease-run@${hostname()}:${process.pid}`, ttl });
  const [file, ...args] = commandLine as [string, ...string[]];
  const say = (message: string) => process.stderr.write(`lease run: ${message}\n`);
  const verbose = (message: string) => {
    if (options.verbose) say(`${new Date().toISOString()} ${message}`);
  };

  // Signals that arrive before the command runs abort the acquire; after, they go to the command.
  let interrupted: NodeJS.Signals | undefined;
  let group: number | undefined;
  const acquiring = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted ??= signal;
    if (group !== undefined) {
      verbose(`passing ${signal} on to the command`);
      signalGroup(group, signal);
    } else acquiring.abort(new InterruptedError(signal));
  };
  for (const signal of FORWARDED) process.on(signal, onSignal);
  try {
    const sentAt = performance.now();
    let lease;
    try {
      lease = await ctx.client.acquire(request, { signal: acquiring.signal });
    } catch (error) {
      // Aborted mid-request or mid-backoff (then the error is the last failure, not the abort).
      if (acquiring.signal.aborted && interrupted) return signalExitCode(interrupted);
      throw error;
    }
    const held = new HeldLease(ctx.client, lease, sentAt, {
      marginMs: grace,
      onRenewed: (renewed) => verbose(`renewed lease ${renewed.id}: expires in ${duration(renewed.expiresInMs)}`),
    });
    verbose(`acquired lease ${lease.id} (token ${lease.fencingToken}, ttl ${duration(ttl)}, grace ${duration(grace)})`);
    if (interrupted) {
      await held.end('abandoned').catch(() => undefined);
      return signalExitCode(interrupted);
    }
    held.start();

    const child = spawn(file, args, {
      stdio: 'inherit',
      detached: true,
      // Not LEASE_TOKEN: the command works under the lease, it does not call the service as us.
      env: { ...withoutToken(process.env), LEASE_ID: lease.id, LEASE_FENCING_TOKEN: String(lease.fencingToken) },
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ error }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    group = child.pid;

    let childGone = false;
    let lost: LeaseServiceError | undefined;
    let killAt = Infinity;
    let killTimer: NodeJS.Timeout | undefined;
    const onLost = () => {
      if (childGone || group === undefined) return;
      const pgid = group;
      lost = held.signal.reason as LeaseServiceError;
      const now = performance.now();
      // 410/404: the service says the lease is gone already, so the deadline is moot; else
      // the lease is valid until held.validUntil at the latest, and the command must be gone by then.
      const gone = lost.status === 410 || lost.status === 404;
      killAt = gone ? now + grace : Math.min(now + grace, held.validUntil - Math.min(KILL_LEAD_MAX_MS, grace / 5));
      if (ctx.out.json) printError(ctx.out, lost);
      else say(`lease ${lease.id} lost (${lost.code}: ${lost.message}); SIGTERM to the command, SIGKILL in ${duration(Math.max(0, killAt - now))}.`);
      signalGroup(pgid, 'SIGTERM');
      killTimer = setTimeout(() => {
        verbose('sending SIGKILL to the command');
        signalGroup(pgid, 'SIGKILL');
      }, Math.max(0, killAt - performance.now()));
    };
    if (held.signal.aborted) onLost();
    else held.signal.addEventListener('abort', onLost, { once: true });

    const result = await exited;
    childGone = true;
    held.signal.removeEventListener('abort', onLost);

    if (lost) {
      // The command's first process is gone; whatever else it started in its group gets
      // until the kill time (then SIGKILL, from the timer) and a little more to go too.
      if (group !== undefined) {
        const waitUntil = killAt + STRAGGLER_WAIT_MS;
        while (groupRunning(group) && performance.now() < waitUntil) await sleep(20);
        if (groupRunning(group)) say(`processes of group ${group} still run after SIGKILL.`);
      }
      clearTimeout(killTimer);
      await held.stop();
      if (!ctx.out.json) say(`the command was stopped; exiting ${EXIT.leaseLost}.`);
      return EXIT.leaseLost;
    }

    if ('error' in result) {
      await held.end('failed').catch(() => undefined);
      say(`cannot run ${file}: ${result.error.message}`);
      return result.error.code === 'ENOENT' ? 127 : 126;
    }
    const code = result.code ?? signalExitCode(result.signal ?? 'SIGKILL');
    const outcome: ReleaseOutcome = code === 0 ? 'completed' : interrupted ? 'abandoned' : 'failed';
    try {
      const tombstone = await held.end(outcome);
      if (tombstone) verbose(`released lease ${lease.id}: ${outcome}`);
      else say(`lease ${lease.id} was lost after the command ended (${problemOf(held.signal.reason).code}); not released.`);
    } catch (error) {
      if (error instanceof LeaseLostError) say(`lease ${lease.id} had already ended when the command did (${error.code}): ${error.message}`);
      else say(`could not release lease ${lease.id} (${problemOf(error).code}: ${(error as Error).message}); it expires by itself.`);
    }
    return code;
  } finally {
    for (const signal of FORWARDED) process.off(signal, onSignal);
  }
}

function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

function withoutToken(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { LEASE_TOKEN: _token, ...rest } = env;
  return rest;
}
