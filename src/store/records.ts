// What Redis holds, as TypeScript reads it: a lease (or its tombstone), an orphan, a conflict
// an acquire met, an entry of the events stream. decoders.ts builds them from the scripts'
// replies; the routes present them. Times are ms on Redis' clock throughout.
import type { Mode } from '../mode.js';
import type { ResourceClaim } from './resource-codec.js';

export type LeaseState = 'active' | 'orphaned' | 'released' | 'expired' | 'revoked';
export type EndState = 'released' | 'expired' | 'revoked';
export type Outcome = 'completed' | 'failed' | 'abandoned';

export interface StoredAction {
  kind: string;
  /** null in listings that left it out, in tombstones and in resolved orphans. */
  payload: unknown;
  attempt: number;
  maxAttempts: number;
}

/** A lease as Redis holds it. */
export interface LeaseRecord {
  id: string;
  holder: string;
  resources: ResourceClaim[];
  fencingToken: string;
  state: LeaseState;
  /** How it ended, for an ended lease; for an orphaned one, how its holder lost it. */
  endState: EndState | null;
  ttlMs: number;
  acquiredAt: number;
  renewedAt: number;
  expiresAt: number;
  holdDeadline: number;
  lockDelayMs: number;
  action: StoredAction | null;
  progress: unknown;
  outcome: Outcome | null;
  endedAt: number | null;
  orphanId: string | null;
  /** The token that acquired it (or claimed it), when access control names one. */
  acquiredBy: string | null;
}

export interface Conflict {
  path: string;
  leaseId: string;
  holder: string;
  mode: Mode;
  /** waiting: a request queued earlier for an overlapping resource (leaseId is its ticket). */
  state: 'active' | 'orphaned' | 'lock_delay' | 'waiting';
}

export type OrphanState = 'pending' | 'claimed' | 'dead_letter' | 'resolved';
export type OrphanReason = 'expired' | 'abandoned' | 'revoked';

/** An orphan as Redis holds it. */
export interface OrphanRecord {
  id: string;
  state: OrphanState;
  reason: OrphanReason;
  resources: ResourceClaim[];
  /** The action, with the attempt that was running when it was orphaned. */
  action: StoredAction;
  progress: unknown;
  lastLeaseId: string;
  lastHolder: string;
  lastFencingToken: string;
  orphanedAt: number;
  claimedBy: string | null;
  claimedLeaseId: string | null;
  resolution: string | null;
  resolvedAt: number | null;
  /** Order of first orphaning: the claim queue's order and the listing cursor. */
  seq: string;
}

/** An entry of the lifecycle events stream, as includes/events.lua (and renew-holder-1.lua) append it. */
export interface EventRecord {
  /** The stream entry id, which is also the SSE id a client resumes from. */
  id: string;
  type: string;
  /** When it happened (an expiry's is when the lease ran out, not when it was noticed). */
  at: number;
  /** null where the entry has none, or an empty one (a holder's renewal names no lease). */
  leaseId: string | null;
  orphanId: string | null;
  holder: string | null;
  paths: string[];
  fencingToken: string | null;
  /** The token whose request it records; null for the reaper's and with access control off. */
  actor: string | null;
}
