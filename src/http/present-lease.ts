// Turns a stored lease that holds its resources into the contract's JSON: ISO times, a
// numeric token, the action with its last progress. Every route that answers a lease (the
// lease routes, an orphan's claim, a resource view) answers it through leaseView.
import type { Mode } from '../mode.js';

/** The fields of a stored lease that its view shows; the store's LeaseRecord has them all. */
export interface LeaseFacts {
  id: string;
  holder: string;
  resources: { path: string; mode: Mode }[];
  fencingToken: string;
  state: string;
  ttlMs: number;
  acquiredAt: number;
  renewedAt: number;
  expiresAt: number;
  holdDeadline: number;
  lockDelayMs: number;
  action: { kind: string; payload: unknown; attempt: number; maxAttempts: number } | null;
  progress: unknown;
  orphanId: string | null;
  acquiredBy: string | null;
}

export const iso = (ms: number) => new Date(ms).toISOString();

/** The action of a lease with its last progress, or null for a lease without one. */
export function actionView(record: Pick<LeaseFacts, 'action' | 'progress'>) {
  if (!record.action) return null;
  const { kind, payload, attempt, maxAttempts } = record.action;
  return { kind, payload: payload ?? null, attempt, maxAttempts, progress: record.progress ?? null };
}

/** A lease that holds its resources (state active or orphaned). */
export function leaseView(record: LeaseFacts, now: number) {
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
    ...(record.acquiredBy !== null ? { acquiredBy: record.acquiredBy } : {}),
  };
}
