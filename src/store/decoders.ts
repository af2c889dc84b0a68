// How Redis' replies become records. A lease or an orphan comes back as its hash's fields,
// flat ([name, value, ...]), under the short names the headers of includes/records.lua and
// includes/orphans.lua list; an event as its stream entry's fields (includes/events.lua).
// This is the one place on the TypeScript side that knows those names.
import { decodePathList, decodeResources } from './resource-codec.js';
import type { Conflict, EndState, EventRecord, LeaseRecord, LeaseState, OrphanReason, OrphanRecord, OrphanState, Outcome, StoredAction } from './records.js';

/** HGETALL-style [name, value, ...] as an object. */
export function fieldMap(flat: string[]): Record<string, string> {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
  return f;
}

export function toLease(flat: string[]): LeaseRecord {
  const f = fieldMap(flat);
  const number = (name: string) => Number(f[name] ?? 0);
  return {
    id: f.id ?? '',
    holder: f.holder ?? '',
    resources: decodeResources(f.res ?? ''),
    fencingToken: f.tok ?? '0',
    state: f.st as LeaseState,
    endState: (f.es ?? (f.st === 'active' || f.st === 'orphaned' ? null : f.st)) as EndState | null,
    ttlMs: number('ttl'),
    acquiredAt: number('acq'),
    renewedAt: number('ren'),
    expiresAt: number('exp'),
    holdDeadline: number('hold'),
    lockDelayMs: number('ld'),
    action: actionOf(f),
    progress: f.prog ? JSON.parse(f.prog) : null,
    outcome: (f.out as Outcome | undefined) ?? null,
    endedAt: f.end !== undefined ? Number(f.end) : null,
    orphanId: f.oid ?? null,
    acquiredBy: f.by ?? null,
  };
}

export function toOrphan(flat: string[]): OrphanRecord {
  const f = fieldMap(flat);
  return {
    id: f.id ?? '',
    state: f.st as OrphanState,
    reason: f.why as OrphanReason,
    resources: decodeResources(f.res ?? ''),
    action: actionOf(f) ?? { kind: '', payload: null, attempt: 1, maxAttempts: 1 },
    progress: f.prog ? JSON.parse(f.prog) : null,
    lastLeaseId: f.lid ?? '',
    lastHolder: f.lh ?? '',
    lastFencingToken: f.ltok ?? '0',
    orphanedAt: Number(f.at ?? 0),
    claimedBy: f.cb ?? null,
    claimedLeaseId: f.cl ?? null,
    resolution: f.rsl ?? null,
    resolvedAt: f.rat !== undefined ? Number(f.rat) : null,
    seq: f.seq ?? '0',
  };
}

/** The action of a lease or orphan record (kind, ma, pay, att), or null when it has none. */
function actionOf(f: Record<string, string>): StoredAction | null {
  if (f.kind === undefined) return null;
  return { kind: f.kind, payload: f.pay ? JSON.parse(f.pay) : null, attempt: Number(f.att ?? 1), maxAttempts: Number(f.ma ?? 1) };
}

/** The conflicts of an acquire's reply: five values each (includes/conflicts.lua). */
export function toConflicts(flat: string[]): Conflict[] {
  const conflicts: Conflict[] = [];
  for (let i = 0; i + 4 < flat.length; i += 5) {
    conflicts.push({
      path: flat[i]!,
      leaseId: flat[i + 1]!,
      holder: flat[i + 2]!,
      mode: flat[i + 3] as Conflict['mode'],
      state: flat[i + 4] as Conflict['state'],
    });
  }
  return conflicts;
}

/** One entry of the events stream, as XRANGE gives it. */
export function toEvent([id, flat]: [string, string[]]): EventRecord {
  const f = fieldMap(flat);
  return {
    id,
    type: f.type ?? 'unknown',
    at: Number(f.at ?? 0),
    leaseId: f.leaseId || null,
    orphanId: f.orphanId || null,
    holder: f.holder || null,
    paths: f.paths ? decodePathList(f.paths) : [],
    fencingToken: f.fencingToken || null,
    actor: f.actor || null,
  };
}
