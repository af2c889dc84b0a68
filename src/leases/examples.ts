// The lease routes' examples, from the story of http/examples.ts: the resize lease released,
// expired, renewed by its holder, not found, in the way of another acquire.
import { problem, type Problem } from '../errors.js';
import { iso } from '../http/present-lease.js';
import { RESIZE_LEASE, T0 } from '../http/examples.js';
import type { LeaseRecord } from '../store/records.js';
import { tombstoneView } from './present.js';

const resize: LeaseRecord = { ...RESIZE_LEASE, state: 'active', endState: null, outcome: null, endedAt: null };

export const TOMBSTONE_EXAMPLE = tombstoneView({ ...resize, state: 'released', endState: 'released', outcome: 'completed', endedAt: T0 + 240000 });

const expired = tombstoneView({ ...resize, state: 'orphaned', endState: 'expired', endedAt: T0 + 50000, orphanId: '9f86d081884c7d659a2feaa0c55ad015' });

export const HOLDER_RENEW_EXAMPLE = { renewed: [{ id: resize.id, expiresAt: iso(T0 + 50000) }], nextCursor: null, remaining: 0 };

/** The problems only the lease routes answer, as the service words them. */
export const LEASE_PROBLEM_EXAMPLES = {
  404: problem('lease_not_found', `No lease ${resize.id}, and no tombstone of one (tombstones are kept an hour).`),
  409: problem('conflict', 'A lease holds a resource of this request; see conflicts.', {
    conflicts: [{ path: 'instances/i-42', leaseId: resize.id, holder: resize.holder, mode: 'exclusive', state: 'active' }],
  }),
  410: problem('lease_expired', `Lease ${resize.id} expired at ${iso(T0 + 50000)}; its holder has lost it.`, expired),
} satisfies Record<number, Problem>;
