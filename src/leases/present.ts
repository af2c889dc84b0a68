// Turns stored lease records into the contract's JSON: ISO times, numeric tokens, the
// action with its last progress, and tombstones for leases that have ended.
import type { LeaseRecord } from '../store/lease-store.js';

const iso = (ms: number) => new Date(ms).toISOString();

function actionView(record: LeaseRecord) {
  if (!record.action) return null;
  const { kind, payload, attempt, maxAttempts } = record.action;
  return { kind, payload: payload ?? null, attempt, maxAttempts, progress: record.progress ?? null };
}

/** A lease that holds its resources (state active or orphaned). */
export function leaseView(record: LeaseRecord, now: number) {
  return {
    id: record.id,
    holder: record.holder,
    resources: record.resources,
    fencingToken: Number(record.fencingToken),
    state: record.state as 'active' | 'orphaned',
    ttlMs: record.ttlMs,
    acquiredAt: iso(record.acquiredAt),
    renewedAt: iso(record.renewedAt),
    expiresAt: iso(record.expiresAt),
    expiresInMs: Math.max(0, record.expiresAt - now),
    holdDeadline: iso(record.holdDeadline),
    lockDelayMs: record.lockDelayMs,
    action: actionView(record),
    orphanId: record.orphanId,
  };
}

/** What an ended lease answers. An orphaned lease is ended for its holder: it ended as endState. */
export function tombstoneView(record: LeaseRecord) {
  return {
    id: record.id,
    holder: record.holder,
    resources: record.resources,
    fencingToken: Number(record.fencingToken),
    state: record.endState ?? 'expired',
    ...(record.outcome ? { outcome: record.outcome } : {}),
    endedAt: iso(record.endedAt ?? record.expiresAt),
    action: actionView(record),
    ...(record.orphanId ? { orphanId: record.orphanId } : {}),
  };
}

export function holdsResources(record: LeaseRecord): boolean {
  return record.state === 'active' || record.state === 'orphaned';
}
