// Turns stored orphan records into the contract's JSON.
import { iso } from '../http/present-lease.js';
import type { OrphanRecord } from '../store/records.js';


export function orphanView(record: OrphanRecord) {
  const { kind, payload, attempt, maxAttempts } = record.action;
  return {
    id: record.id,
    state: record.state,
    reason: record.reason,
    resources: record.resources,
    action: { kind, payload: payload ?? null, attempt, maxAttempts },
    progress: record.progress ?? null,
    lastLeaseId: record.lastLeaseId,
    lastHolder: record.lastHolder,
    lastFencingToken: Number(record.lastFencingToken),
    orphanedAt: iso(record.orphanedAt),
    claimedBy: record.claimedBy,
    claimedLeaseId: record.claimedLeaseId,
    ...(record.resolution ? { resolution: record.resolution as 'discard' | 'completed' | 'failed' } : {}),
    ...(record.resolvedAt !== null ? { resolvedAt: iso(record.resolvedAt) } : {}),
  };
}
