// Turns stored lease records that have ended into the contract's JSON (tombstones); a lease
// that holds its resources is shown by http/present-lease.ts, which other routes share.
import { actionView, iso } from '../http/present-lease.js';
import type { LeaseRecord } from '../store/records.js';

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
    ...(record.acquiredBy !== null ? { acquiredBy: record.acquiredBy } : {}),
  };
}

export function holdsResources(record: LeaseRecord): boolean {
  return record.state === 'active' || record.state === 'orphaned';
}
