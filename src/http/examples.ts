// The examples of the OpenAPI document, all from one story: conductor-z resizes instance
// i-42, dies, and conductor-w takes the action over. They are made by the same presenters
// and error catalogue as real answers, so an example cannot show a field the service does
// not send; a test validates each against its schema.
import { problem, type Problem } from '../errors.js';
import { encodeCursor } from '../leases/cursor.js';
import { leaseView, tombstoneView } from '../leases/present.js';
import { orphanView } from '../orphans/present.js';
import type { LeaseRecord, OrphanRecord } from '../store/lease-store.js';

const T0 = Date.parse('2026-11-24T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

const resize: LeaseRecord = {
  id: '3q2-7wEjQ9mCkBq9xY1fSg',
  holder: 'conductor-z',
  resources: [{ path: 'instances/i-42', mode: 'exclusive' }],
  fencingToken: '1795520400000001',
  state: 'active',
  endState: null,
  ttlMs: 30000,
  acquiredAt: T0,
  renewedAt: T0 + 20000,
  expiresAt: T0 + 50000,
  holdDeadline: T0 + 3600000,
  lockDelayMs: 0,
  action: { kind: 'resize', payload: { flavor: 'm1.large' }, attempt: 1, maxAttempts: 3 },
  progress: { step: 'disk-migrated', done: 2, of: 5 },
  outcome: null,
  endedAt: null,
  orphanId: null,
};

export const LEASE_EXAMPLE = leaseView(resize, T0 + 21000);

export const TOMBSTONE_EXAMPLE = tombstoneView({ ...resize, state: 'released', endState: 'released', outcome: 'completed', endedAt: T0 + 240000 });

const expired = tombstoneView({ ...resize, state: 'orphaned', endState: 'expired', endedAt: T0 + 50000, orphanId: '9f86d081884c7d659a2feaa0c55ad015' });

const orphan: OrphanRecord = {
  id: '9f86d081884c7d659a2feaa0c55ad015',
  state: 'pending',
  reason: 'expired',
  resources: resize.resources,
  action: resize.action!,
  progress: resize.progress,
  lastLeaseId: resize.id,
  lastHolder: resize.holder,
  lastFencingToken: resize.fencingToken,
  orphanedAt: T0 + 50000,
  claimedBy: null,
  claimedLeaseId: null,
  resolution: null,
  resolvedAt: null,
  seq: '1',
};

export const ORPHAN_EXAMPLE = orphanView(orphan);

const claimLease: LeaseRecord = {
  ...resize,
  id: 'Zk1Qe0u7S2yq4m0dP9Xb3w',
  holder: 'conductor-w',
  fencingToken: '1795520451000001',
  acquiredAt: T0 + 51000,
  renewedAt: T0 + 51000,
  expiresAt: T0 + 81000,
  holdDeadline: T0 + 3651000,
  action: { ...resize.action!, attempt: 2 },
  orphanId: orphan.id,
};

export const CLAIM_EXAMPLE = {
  orphan: orphanView({ ...orphan, state: 'claimed', claimedBy: claimLease.holder, claimedLeaseId: claimLease.id }),
  lease: leaseView(claimLease, T0 + 51000),
};

export const RESOLVED_ORPHAN_EXAMPLE = orphanView({ ...orphan, state: 'resolved', resolution: 'discard', resolvedAt: T0 + 600000 });

/** A listing page of one item, with the cursor of the next page. */
export function pageExample<T>(item: T) {
  return { items: [item], nextCursor: encodeCursor('1795520400000001') };
}

export const RESOURCE_EXAMPLE = {
  path: 'instances/i-42/volumes/v-7',
  coveredBy: [LEASE_EXAMPLE],
  coveredByCount: 1,
  below: { count: 0, items: [] },
};

export const FENCING_EXAMPLE = {
  valid: true,
  current: [{ leaseId: resize.id, holder: resize.holder, fencingToken: Number(resize.fencingToken), state: 'active' }],
  coveringCount: 1,
};

export const HOLDER_RENEW_EXAMPLE = { renewed: [{ id: resize.id, expiresAt: iso(T0 + 50000) }], nextCursor: null, remaining: 0 };

/** The problem each error status shows by default, as the service words it. */
export const PROBLEM_EXAMPLES: Record<number, Problem> = {
  400: problem(
    'invalid_resource',
    'body/resources/0/path must match pattern "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?:/[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}){0,15}$"',
  ),
  404: problem('lease_not_found', `No lease ${resize.id}, and no tombstone of one (tombstones are kept an hour).`),
  409: problem('conflict', 'A lease holds a resource of this request; see conflicts.', {
    conflicts: [{ path: 'instances/i-42', leaseId: resize.id, holder: resize.holder, mode: 'exclusive', state: 'active' }],
  }),
  410: problem('lease_expired', `Lease ${resize.id} expired at ${iso(T0 + 50000)}; its holder has lost it.`, expired),
  413: problem('payload_too_large', 'action.payload is 70000 bytes of JSON; at most 65536 are allowed.'),
  415: problem('unsupported_media_type', 'Send the body as application/json.'),
  429: problem('rate_limited', 'This replica already holds 100 waiting requests of holder conductor-z (WAITERS_MAX_PER_HOLDER); retry later.'),
  503: problem(
    'backend_unavailable',
    'Redis cannot be reached; this request was not sent to it and changed nothing. Retry shortly.',
  ),
};

export const ORPHAN_PROBLEM_EXAMPLES: Record<number, Problem> = {
  404: problem('orphan_not_found', `No orphan ${orphan.id} (resolved orphans are kept an hour).`),
  409: problem(
    'orphan_claimed',
    `Orphan ${orphan.id} is claimed by ${claimLease.holder} (lease ${claimLease.id}); revoke that lease first.`,
    { orphan: CLAIM_EXAMPLE.orphan },
  ),
};
