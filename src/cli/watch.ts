// lease watch: follow GET /v1/events and print one line per lifecycle event until Ctrl-C.
// When the stream ends or the connection drops, the SDK's iterator reconnects with
// Last-Event-ID, so no event the service still holds is missed or printed twice.
import type { Command } from 'commander';
import type { LeaseEvent } from '../client/events.js';
import type { Context } from './api.js';
import type { ContextOf } from './leases.js';
import { integer, list } from './options.js';
import { printLine, stateWord, type Output } from './output.js';

export function registerWatchCommand(program: Command, contextOf: ContextOf): void {
  program
    .command('watch')
    .description('follow lifecycle events (grants, releases, expiries, orphans, ...) as they happen, until Ctrl-C')
    .option('--prefix <path>', 'only events on this path or below it')
    .option('--types <types>', 'only these event types, comma-separated: granted, renewed, released, expired, revoked, orphaned, dead_lettered, claimed, resolved', list)
    .option('--after <event-id>', 'start after this event id (replays what the service still holds), instead of with the next event')
    .option('--count <n>', 'stop after this many events', integer)
    .action(async (options: { prefix?: string; types?: string[]; after?: string; count?: number }, command: Command) => {
      const ctx = contextOf(command);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await follow(ctx, options, stop.signal);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

async function follow(ctx: Context, options: { prefix?: string; types?: string[]; after?: string; count?: number }, signal: AbortSignal): Promise<void> {
  const { out } = ctx;
  const note = (message: string) => {
    if (!out.json) process.stderr.write(`${message}\n`);
  };
  let printed = 0;
  let opened = false;
  const events = ctx.client.events(
    { ...(options.prefix ? { prefix: options.prefix } : {}), ...(options.types ? { types: options.types } : {}), ...(options.after ? { lastEventId: options.after } : {}) },
    {
      signal,
      onOpen: () => {
        if (!opened) note(`Watching the events of ${ctx.url}, namespace ${ctx.client.namespace} (Ctrl-C to stop).`);
        opened = true;
      },
      onReconnect: (reason) => note(`The event stream was interrupted (${reason}); reconnecting.`),
    },
  );
  for await (const event of events) {
    printLine(out.json ? JSON.stringify(event) : eventLine(out, event));
    if (options.count !== undefined && ++printed >= options.count) return;
  }
}

function eventLine(out: Output, event: LeaseEvent): string {
  return [
    event.at,
    stateWord(out, event.type) + ' '.repeat(Math.max(0, 13 - event.type.length)),
    event.paths.join(','),
    ...(event.holder ? [`holder=${event.holder}`] : []),
    ...(event.leaseId ? [`lease=${event.leaseId}`] : []),
    ...(event.orphanId ? [`orphan=${event.orphanId}`] : []),
    ...(event.fencingToken !== undefined ? [`token=${event.fencingToken}`] : []),
  ].join('  ');
}
