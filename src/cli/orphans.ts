// lease orphans ls | show | claim | resolve: the queue of actions whose holders died, gave
// up or were revoked, for operators (list, resolve) and for scripts that take one over (claim).
import type { Command } from 'commander';
import { Option } from 'commander';
import type { ListOrphansQuery } from '../client/types.js';
import { collectPages } from './api.js';
import { NothingFoundError } from './exit-codes.js';
import type { ContextOf } from './leases.js';
import { integer, list } from './options.js';
import { ORPHAN_HEAD, orphanRow, printJson, printLease, printLine, printOrphan, printTable } from './output.js';

export function registerOrphanCommands(program: Command, contextOf: ContextOf): void {
  const orphans = program.command('orphans').description('actions left half-done: list, show, claim, resolve');

  orphans
    .command('ls')
    .description('list orphans, oldest (first orphaned) first')
    .addOption(new Option('--state <state>', 'only orphans in this state').choices(['pending', 'claimed', 'dead_letter', 'resolved']))
    .option('--kind <kind>', 'only orphans of this action kind')
    .option('--limit <n>', 'orphans per page (service default 100)', integer)
    .option('--cursor <cursor>', 'start at this page (nextCursor of the previous one)')
    .option('--all', 'follow nextCursor to the last page')
    .action(async (options: { state?: string; kind?: string; limit?: number; cursor?: string; all?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const filters = { state: options.state, kind: options.kind, limit: options.limit };
      const result = await collectPages(
        (cursor) => ctx.client.listOrphans({ ...filters, ...(cursor ? { cursor } : {}) } as ListOrphansQuery),
        options.cursor,
        options.all === true,
      );
      if (ctx.out.json) return printJson(result);
      if (result.items.length === 0) printLine('No orphans.');
      else printTable(ctx.out, ORPHAN_HEAD, result.items.map((orphan) => orphanRow(ctx.out, orphan)));
      if (result.nextCursor !== null) process.stderr.write(`More orphans: add --cursor ${result.nextCursor}, or --all.\n`);
    });

  orphans
    .command('show')
    .description('show one orphan, with the last progress its holders reported')
    .argument('<id>', 'orphan id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const orphan = await ctx.client.getOrphan(id);
      if (ctx.out.json) printJson(orphan);
      else printOrphan(ctx.out, orphan);
    });

  orphans
    .command('claim')
    .description('claim the oldest pending orphan: prints it and its new lease (exit 3 when none came)')
    .requiredOption('--holder <holder>', 'who takes the action over')
    .option('--kinds <kinds>', 'only these action kinds, comma-separated', list)
    .option('--ttl <ms>', "ttl of the claim's lease (service default 15000)", integer)
    .option('--wait <ms>', 'wait up to this long for one (long poll)', integer)
    .action(async (options: { holder: string; kinds?: string[]; ttl?: number; wait?: number }, command: Command) => {
      const ctx = contextOf(command);
      const claim = await ctx.client.claimOrphan({
        holder: options.holder,
        ...(options.kinds ? { kinds: options.kinds } : {}),
        ...(options.ttl !== undefined ? { ttlMs: options.ttl } : {}),
        ...(options.wait !== undefined ? { waitMs: options.wait } : {}),
      });
      if (!claim) {
        throw new NothingFoundError('no_orphan', `No pending orphan${options.kinds ? ` of kind ${options.kinds.join(', ')}` : ''}${options.wait ? ` within ${options.wait} ms` : ''}.`);
      }
      if (ctx.out.json) return printJson(claim);
      printOrphan(ctx.out, claim.orphan);
      printLine('');
      printLine('claimed with lease:');
      printLease(ctx.out, claim.lease);
    });

  orphans
    .command('resolve')
    .description('give a pending or dead-letter orphan up: its resources are freed at once')
    .argument('<id>', 'orphan id')
    .addOption(new Option('--resolution <resolution>', 'discard: give the action up (what it left half-done is yours to clean)').choices(['discard']).makeOptionMandatory())
    .action(async (id: string, options: { resolution: 'discard' }, command: Command) => {
      const ctx = contextOf(command);
      // Resolving again the same way answers the same orphan, so a retry is safe.
      const orphan = await ctx.client.resolveOrphan(id, { resolution: options.resolution });
      if (ctx.out.json) printJson(orphan);
      else printOrphan(ctx.out, orphan);
    });
}
