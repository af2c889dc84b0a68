// The orphan routes' examples, from the story of http/examples.ts: conductor-z's resize lease
// expires, its action becomes an orphan, and conductor-w claims it.
import { problem, type Problem } from '../errors.js';
import { RESIZE_LEASE, T0 } from '../http/examples.js';
import { leaseView, type LeaseFacts } from '../http/present-lease.js';
import type { OrphanRecord } from '../store/records.js';
import { orphanView } from './present.js';

const resize = RESIZE_LEASE;

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

const claimLease: LeaseFacts = {
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

export const ORPHAN_PROBLEM_EXAMPLES = {
  404: problem('orphan_not_found', `No orphan ${orphan.id} (resolved orphans are kept an hour).`),
  409: problem(
    'orphan_claimed',
    `Orphan ${orphan.id} is claimed by ${claimLease.holder} (lease ${claimLease.id}); revoke that lease first.`,
    { orphan: CLAIM_EXAMPLE.orphan },
  ),
} satisfies Record<number, Problem>;
