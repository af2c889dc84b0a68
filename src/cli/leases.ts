// lease acquire | renew | release | revoke | ls | show: one command per lease operation,
// through the SDK's LeaseClient; `show` also reads what is held at and below a resource path.
import type { Command } from 'commander';
import { Option } from 'commander';
import { LeaseLostError } from '../client/errors.js';
import type { AcquireRequest, Lease, LeasePage, ReleaseOutcome, ResourceView } from '../client/types.js';
import { collectPages, type Context } from './api.js';
import { integer, json } from './options.js';
import {
  duration,
  LEASE_HEAD,
  leaseRow,
  printJson,
  printLease,
  printLine,
  printTable,
  printTombstone,
  stateWord,
  type Output,
} from './output.js';
import { UsageError } from './exit-codes.js';

export type ContextOf = (command: Command) => Context;

interface AcquireOptions {
  holder: string;
  mode?: 'shared' | 'exclusive';
  ttl?: number;
  wait?: number;
  actionKind?: string;
  payload?: unknown;
  maxAttempts?: number;
  requestId?: string;
  maxHold?: number;
  lockDelay?: number;
}

/** The acquire request the shared acquire options describe (also used by `lease run`). */
export function acquireRequest(paths: string[], options: Omit<AcquireOptions, 'holder'> & { holder: string }): AcquireRequest {
  if (options.actionKind === undefined && (options.payload !== undefined || options.maxAttempts !== undefined)) {
    throw new UsageError('--payload and --max-attempts describe an action: give --action-kind too.');
  }
  return {
    holder: options.holder,
    resources: paths.map((path) => (options.mode === 'shared' ? { path, mode: 'shared' as const } : { path })),
    ...(options.ttl !== undefined ? { ttlMs: options.ttl } : {}),
    ...(options.wait !== undefined ? { waitMs: options.wait } : {}),
    ...(options.requestId !== undefined ? { requestId: options.requestId } : {}),
    ...(options.maxHold !== undefined ? { maxHoldMs: options.maxHold } : {}),
    ...(options.lockDelay !== undefined ? { lockDelayMs: options.lockDelay } : {}),
    ...(options.actionKind !== undefined
      ? {
          action: {
            kind: options.actionKind,
            ...(options.payload !== undefined ? { payload: options.payload } : {}),
            ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
          },
        }
      : {}),
  };
}

/** The options shared by `acquire` and `run` (all but --holder, which run defaults). */
export function addAcquireOptions(command: Command): Command {
  return command
    .addOption(new Option('--mode <mode>', 'mode of every path').choices(['exclusive', 'shared']).default('exclusive'))
    .option('--wait <ms>', 'wait up to this long for a conflict to clear (in arrival order) instead of failing at once', integer)
    .option('--action-kind <kind>', 'the action the lease protects; such a lease becomes an orphan if its holder dies')
    .option('--payload <json>', "the action's parameters (JSON)", json)
    .option('--max-attempts <n>', 'attempts of the action before it is a dead letter (service default 3)', integer)
    .option('--max-hold <ms>', 'the lease ends this long after it was granted, however often renewed', integer)
    .option('--lock-delay <ms>', 'keep the resources blocked this long after an expiry or revocation (no action only)', integer);
}

export function registerLeaseCommands(program: Command, contextOf: ContextOf): void {
  addAcquireOptions(
    program
      .command('acquire')
      .description('acquire a lease on one or more resource paths and print it')
      .argument('<path...>', 'resource paths, e.g. instances/i-42')
      .requiredOption('--holder <holder>', 'who holds the lease, e.g. a conductor id')
      .option('--ttl <ms>', 'time to live of each grant and renewal (service default 15000)', integer),
  )
    .option('--request-id <id>', 'makes a retry return the same lease instead of conflicting (one is generated otherwise)')
    .action(async (paths: string[], options: AcquireOptions, command: Command) => {
      const ctx = contextOf(command);
      const lease = await ctx.client.acquire(acquireRequest(paths, options));
      if (ctx.out.json) printJson(lease);
      else printLease(ctx.out, lease);
    });

  program
    .command('renew')
    .description('renew a lease (a heartbeat), optionally with a progress checkpoint')
    .argument('<id>', 'lease id')
    .option('--ttl <ms>', 'time to live from now (default: the lease\'s own ttl)', integer)
    .option('--progress <json>', 'how far the action got (JSON), handed to whoever claims its orphan', json)
    .action(async (id: string, options: { ttl?: number; progress?: unknown }, command: Command) => {
      const ctx = contextOf(command);
      const lease = await ctx.client.renew(id, {
        ...(options.ttl !== undefined ? { ttlMs: options.ttl } : {}),
        ...(options.progress !== undefined ? { progress: options.progress as Record<string, unknown> } : {}),
      });
      if (ctx.out.json) printJson(lease);
      else printLease(ctx.out, lease);
    });

  program
    .command('release')
    .description('release a lease: its resources are free at once (abandoned: an action becomes an orphan)')
    .argument('<id>', 'lease id')
    .addOption(new Option('--outcome <outcome>', 'how the work ended').choices(['completed', 'failed', 'abandoned']).default('completed'))
    .action(async (id: string, options: { outcome: ReleaseOutcome }, command: Command) => {
      const ctx = contextOf(command);
      const tombstone = await ctx.client.release(id, options.outcome);
      if (ctx.out.json) printJson(tombstone);
      else printTombstone(ctx.out, tombstone);
    });

  program
    .command('revoke')
    .description("force-end someone's lease (an operator's action; an action becomes an orphan)")
    .argument('<id>', 'lease id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const tombstone = await ctx.client.revoke(id);
      if (ctx.out.json) printJson(tombstone);
      else printTombstone(ctx.out, tombstone);
    });

  program
    .command('ls')
    .description('list leases that hold resources (active and orphaned), in grant order')
    .option('--holder <holder>', 'only this holder\'s leases')
    .option('--prefix <path>', 'only leases holding this path or something below it')
    .addOption(new Option('--state <state>', 'only leases in this state').choices(['active', 'orphaned']))
    .option('--limit <n>', 'leases per page (service default 100)', integer)
    .option('--cursor <cursor>', 'start at this page (nextCursor of the previous one)')
    .option('--all', 'follow nextCursor to the last page')
    .action(async (options: { holder?: string; prefix?: string; state?: 'active' | 'orphaned'; limit?: number; cursor?: string; all?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const { all, cursor, ...filters } = options;
      const result: LeasePage = await collectPages((from) => ctx.client.list({ ...filters, ...(from ? { cursor: from } : {}) }), cursor, all === true);
      if (ctx.out.json) return printJson(result);
      if (result.items.length === 0) printLine('No leases.');
      else printTable(ctx.out, LEASE_HEAD, result.items.map((lease) => leaseRow(ctx.out, lease)));
      if (result.nextCursor !== null) process.stderr.write(`More leases: add --cursor ${result.nextCursor}, or --all.\n`);
    });

  program
    .command('show')
    .description('show a lease by id, or what is held at and below a resource path (as a tree)')
    .argument('<lease-id-or-path>', 'a lease id, or a resource path (anything with a "/" is a path)')
    .option('--resource', 'read the argument as a resource path even without a "/"')
    .action(async (target: string, options: { resource?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      if (!options.resource && !target.includes('/')) {
        try {
          const lease = await ctx.client.get(target);
          if (ctx.out.json) printJson(lease);
          else printLease(ctx.out, lease);
          return;
        } catch (error) {
          // No lease by that id: a one-segment resource path (`networks`) is the other reading.
          if (!(error instanceof LeaseLostError && error.status === 404) || !SEGMENT.test(target)) throw error;
        }
      }
      const view = await ctx.client.resource(target);
      if (ctx.out.json) printJson(view);
      else printResourceTree(ctx.out, view);
    });
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

interface TreeNode {
  label: string;
  leases: string[];
  children: Map<string, TreeNode>;
}

function leaseLine(out: Output, lease: Lease, mode: string, at?: string): string {
  const parts = [
    lease.holder,
    stateWord(out, lease.state),
    mode,
    `lease ${lease.id}`,
    `token ${lease.fencingToken}`,
    ...(lease.state === 'active' ? [`expires in ${duration(lease.expiresInMs)}`] : []),
    ...(lease.action ? [`action ${lease.action.kind}`] : []),
    ...(at ? [`(held at ${at})`] : []),
  ];
  return `• ${parts.join('  ')}`;
}

/**
 * The path as the root, the leases covering it (on it or on an ancestor) under it, then the
 * paths below it that leases hold, as a tree (chains of segments nobody holds are joined).
 */
function printResourceTree(out: Output, view: ResourceView): void {
  const root: TreeNode = { label: view.path, leases: [], children: new Map() };
  for (const lease of view.coveredBy) {
    for (const resource of lease.resources) {
      if (resource.path === view.path || view.path.startsWith(`${resource.path}/`)) {
        root.leases.push(leaseLine(out, lease, resource.mode, resource.path === view.path ? undefined : resource.path));
      }
    }
  }
  for (const lease of view.below.items) {
    for (const resource of lease.resources) {
      if (!resource.path.startsWith(`${view.path}/`)) continue;
      let node = root;
      for (const segment of resource.path.slice(view.path.length + 1).split('/')) {
        let child = node.children.get(segment);
        if (!child) node.children.set(segment, (child = { label: segment, leases: [], children: new Map() }));
        node = child;
      }
      node.leases.push(leaseLine(out, lease, resource.mode));
    }
  }
  const lines: string[] = [];
  render(root, '', true, true, lines);
  printLine(lines.join('\n'));
  if (view.coveredBy.length === 0 && view.below.count === 0) printLine(`Nothing is held at or below ${view.path}.`);
  if (view.below.count > view.below.items.length) {
    printLine(`${view.below.count} leases hold something below ${view.path} (some in their lock delay); the first ${view.below.items.length} are shown.`);
  }
}

function render(node: TreeNode, prefix: string, last: boolean, isRoot: boolean, lines: string[]): void {
  // Join chains of segments that nobody holds: volumes/v-7 rather than volumes, then v-7.
  while (node.leases.length === 0 && node.children.size === 1 && !isRoot) {
    const [only] = node.children.values();
    node = { ...only!, label: `${node.label}/${only!.label}` };
  }
  lines.push(isRoot ? node.label : `${prefix}${last ? '└── ' : '├── '}${node.label}`);
  const inner = isRoot ? '' : prefix + (last ? '    ' : '│   ');
  const children = [...node.children.values()].sort((a, b) => a.label.localeCompare(b.label));
  for (const lease of node.leases) lines.push(`${inner}${children.length > 0 ? '│ ' : '  '}${lease}`);
  children.forEach((child, i) => render(child, inner, i === children.length - 1, false, lines));
}
