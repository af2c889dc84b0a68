// Everything the CLI writes: JSON exactly as the API answered it (--json), or tables and
// key/value views for people, with state words coloured only on a terminal without NO_COLOR.
import { styleText } from 'node:util';
import Table from 'cli-table3';
import { ConflictError, LeaseLostError, LeaseServiceError } from '../client/errors.js';
import type { Lease, Orphan, Tombstone } from '../client/types.js';

export interface Output {
  json: boolean;
  /** Colour on stdout / stderr. */
  color: boolean;
  colorErr: boolean;
}

export function makeOutput(json: boolean): Output {
  return { json, color: colorFor(process.stdout), colorErr: colorFor(process.stderr) };
}

function colorFor(stream: NodeJS.WriteStream): boolean {
  const noColor = process.env.NO_COLOR;
  return stream.isTTY === true && (noColor === undefined || noColor === '');
}

type Style = Parameters<typeof styleText>[0];

const STATE_STYLE: Record<string, Style> = {
  active: 'green',
  granted: 'green',
  renewed: 'green',
  orphaned: 'yellow',
  pending: 'yellow',
  lock_delay: 'yellow',
  waiting: 'yellow',
  claimed: 'cyan',
  dead_letter: 'red',
  dead_lettered: 'red',
  revoked: 'red',
  expired: 'red',
  released: 'gray',
  resolved: 'gray',
};

/** A state (or event type) word, coloured by what it means when colour is on. */
export function stateWord(out: Output, state: string, stream: 'out' | 'err' = 'out'): string {
  const style = STATE_STYLE[state];
  return style && (stream === 'out' ? out.color : out.colorErr) ? styleText(style, state) : state;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A borderless table (like kubectl's), so output stays easy to read, grep and cut. */
export function printTable(out: Output, head: string[], rows: string[][]): void {
  const table = new Table({
    head: out.color ? head.map((h) => styleText('bold', h)) : head,
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
      bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
    },
    style: { 'padding-left': 0, 'padding-right': 0, head: [], border: [] },
  });
  table.push(...rows);
  printLine(table.toString().split('\n').map((line) => line.trimEnd()).join('\n'));
}

/** A two-column key/value view of one object. */
export function printFields(out: Output, fields: [string, string][]): void {
  const width = Math.max(...fields.map(([key]) => key.length));
  for (const [key, value] of fields) {
    const label = `${key}:`.padEnd(width + 2);
    printLine(`${out.color ? styleText('bold', label) : label}${value}`);
  }
}

export function resourcesText(resources: { path: string; mode?: string }[]): string {
  return resources.map((r) => (r.mode === 'shared' ? `${r.path} (shared)` : r.path)).join(', ');
}

/** "12.3s", "850ms", "2m05s": a duration as people read it. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

function actionText(action: Lease['action'] | Orphan['action'] | null | undefined): string {
  if (!action) return '-';
  return `${action.kind} (attempt ${action.attempt}/${action.maxAttempts})`;
}

export function leaseRow(out: Output, lease: Lease): string[] {
  return [
    lease.id,
    lease.holder,
    stateWord(out, lease.state),
    resourcesText(lease.resources),
    String(lease.fencingToken),
    lease.state === 'active' ? `in ${duration(lease.expiresInMs)}` : '-',
    lease.action ? lease.action.kind : '-',
  ];
}

export const LEASE_HEAD = ['ID', 'HOLDER', 'STATE', 'RESOURCES', 'TOKEN', 'EXPIRES', 'ACTION'];

export function printLease(out: Output, lease: Lease): void {
  const fields: [string, string][] = [
    ['id', lease.id],
    ['holder', lease.holder],
    ['state', stateWord(out, lease.state)],
    ['resources', resourcesText(lease.resources)],
    ['fencing token', String(lease.fencingToken)],
    ['ttl', duration(lease.ttlMs)],
    ['acquired', lease.acquiredAt],
    ['renewed', lease.renewedAt],
    ['expires', lease.state === 'active' ? `${lease.expiresAt} (in ${duration(lease.expiresInMs)})` : lease.expiresAt],
    ['hold deadline', lease.holdDeadline],
  ];
  if (lease.lockDelayMs > 0) fields.push(['lock delay', duration(lease.lockDelayMs)]);
  fields.push(['action', actionText(lease.action)]);
  if (lease.action) {
    if (lease.action.payload !== null && lease.action.payload !== undefined) fields.push(['payload', JSON.stringify(lease.action.payload)]);
    if (lease.action.progress !== null && lease.action.progress !== undefined) fields.push(['progress', JSON.stringify(lease.action.progress)]);
  }
  if (lease.orphanId) fields.push(['orphan', lease.orphanId]);
  printFields(out, fields);
}

export function printTombstone(out: Output, tombstone: Tombstone): void {
  const fields: [string, string][] = [
    ['id', tombstone.id],
    ['holder', tombstone.holder],
    ['state', stateWord(out, tombstone.state) + (tombstone.outcome ? ` (${tombstone.outcome})` : '')],
    ['resources', resourcesText(tombstone.resources)],
    ['fencing token', String(tombstone.fencingToken)],
    ['ended', tombstone.endedAt],
    ['action', actionText(tombstone.action)],
  ];
  if (tombstone.orphanId) fields.push(['orphan', tombstone.orphanId]);
  printFields(out, fields);
}

export const ORPHAN_HEAD = ['ID', 'STATE', 'REASON', 'KIND', 'ATTEMPT', 'RESOURCES', 'LAST HOLDER', 'ORPHANED', 'CLAIMED BY'];

export function orphanRow(out: Output, orphan: Orphan): string[] {
  return [
    orphan.id,
    stateWord(out, orphan.state),
    orphan.reason,
    orphan.action.kind,
    `${orphan.action.attempt}/${orphan.action.maxAttempts}`,
    resourcesText(orphan.resources),
    orphan.lastHolder,
    orphan.orphanedAt,
    orphan.claimedBy ?? '-',
  ];
}

export function printOrphan(out: Output, orphan: Orphan): void {
  const fields: [string, string][] = [
    ['id', orphan.id],
    ['state', stateWord(out, orphan.state) + (orphan.resolution ? ` (${orphan.resolution})` : '')],
    ['reason', orphan.reason],
    ['resources', resourcesText(orphan.resources)],
    ['action', actionText(orphan.action)],
    ['payload', JSON.stringify(orphan.action.payload ?? null)],
    ['progress', JSON.stringify(orphan.progress ?? null)],
    ['last lease', `${orphan.lastLeaseId} (holder ${orphan.lastHolder}, token ${orphan.lastFencingToken})`],
    ['orphaned', orphan.orphanedAt],
  ];
  if (orphan.claimedBy) fields.push(['claimed by', `${orphan.claimedBy} (lease ${orphan.claimedLeaseId})`]);
  if (orphan.resolvedAt) fields.push(['resolved', orphan.resolvedAt]);
  printFields(out, fields);
}

/**
 * An error on stderr: with --json the problem JSON as the service sent it; otherwise its code
 * and detail, and what a person needs next (who holds a conflicting resource, how a lease ended).
 */
export function printError(out: Output, error: unknown): void {
  if (out.json) {
    process.stderr.write(`${JSON.stringify(problemOf(error))}\n`);
    return;
  }
  const { code, detail } = problemOf(error);
  const label = out.colorErr ? styleText('red', 'error') : 'error';
  const lines = [`${label}: ${code}: ${detail}`];
  if (error instanceof ConflictError) {
    for (const c of error.conflicts) {
      lines.push(`  ${c.path} is held by ${c.holder} (lease ${c.leaseId}, ${c.mode}, ${stateWord(out, c.state, 'err')})`);
    }
  } else if (error instanceof LeaseLostError && error.tombstone) {
    const t = error.tombstone;
    lines.push(`  lease ${t.id} of ${t.holder}: ${stateWord(out, t.state, 'err')}${t.outcome ? ` (${t.outcome})` : ''} at ${t.endedAt}${t.orphanId ? `, orphan ${t.orphanId}` : ''}`);
  } else if (error instanceof LeaseServiceError && error.problem.orphan && typeof error.problem.orphan === 'object') {
    const orphan = error.problem.orphan as Orphan;
    lines.push(`  orphan ${orphan.id}: ${stateWord(out, orphan.state, 'err')}${orphan.claimedBy ? `, claimed by ${orphan.claimedBy} (lease ${orphan.claimedLeaseId})` : ''}`);
  }
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** The problem JSON of a service error; a CLI-side error gets the same shape with its own code. */
export function problemOf(error: unknown): { code: string; detail: string } & Record<string, unknown> {
  if (error instanceof LeaseServiceError) {
    return Object.keys(error.problem).length > 0 && typeof error.problem.code === 'string'
      ? { ...error.problem, code: error.problem.code, detail: String(error.problem.detail ?? error.message) }
      : { code: error.code, status: error.status, detail: error.message };
  }
  if (error instanceof Error) {
    const { code } = error as { code?: unknown };
    return { code: typeof code === 'string' ? code : 'error', detail: error.message };
  }
  return { code: 'error', detail: String(error) };
}
