// What the demo and its conductor processes say to each other. The demo starts each
// conductor and sends its Orders as the first JSON line on its stdin (not as an argument:
// they carry its bearer token, and a command line is shown to every user of the machine);
// the conductor reports what it does as JSON lines on stdout (one ConductorEvent each) and,
// when told to wait, reads one Go line on stdin after its orders. Every event carries `at`, read from wallClock(): the processes share the
// machine's clock, so the demo can put their events on one timeline.
import { performance } from 'node:perf_hooks';

/** The resize's steps, in order; each is checkpointed once it is done. */
export const RESIZE_STEPS = ['snapshot', 'disk-copied', 'flavor-switched', 'restarted'] as const;
export type ResizeStep = (typeof RESIZE_STEPS)[number];

export interface Orders {
  /** `resize`: acquire `path` and resize it from the first step. `takeover`: claim resize orphans and resume them. */
  role: 'resize' | 'takeover';
  holder: string;
  service: string;
  /** Its bearer token for the service: a conductor token that may act as `holder` only. */
  token: string;
  hypervisor: string;
  ttlMs: number;
  /** How long each step takes; the one the demo kills the conductor in is long on purpose. */
  stepMs: Record<ResizeStep, number>;
  /** resize only: the instance to resize. */
  path?: string;
  /** resize only: wait for a Go line on stdin before sending the acquire (for the race). */
  waitForGo?: boolean;
}

/** The demo's start signal: send the acquire when wallClock() reaches `sendAt`. */
export interface Go {
  sendAt: number;
}

export interface ConflictSeen {
  path: string;
  leaseId: string;
  holder: string;
  mode: string;
  state: string;
}

export type ConductorEvent = { at: number } & (
  | { event: 'ready' }
  | { event: 'standing-by'; kinds: string[] }
  | { event: 'sending'; path: string }
  | { event: 'acquired'; leaseId: string; fencingToken: number; attempt: number; path: string }
  | { event: 'refused'; status: number; code: string; conflicts: ConflictSeen[] }
  | {
      event: 'claimed';
      orphanId: string;
      leaseId: string;
      fencingToken: number;
      attempt: number;
      lastHolder: string;
      lastFencingToken: number;
      progress: { step?: string } | null;
      path: string;
    }
  | { event: 'step-done'; step: ResizeStep; fencingToken: number }
  | { event: 'checkpointed'; step: string }
  | { event: 'released'; state: string; outcome: string | null }
  | { event: 'failed'; error: string }
);

/** An event as the conductor writes it, before `at` is stamped on. */
export type ConductorReport = ConductorEvent extends infer E ? (E extends ConductorEvent ? Omit<E, 'at'> : never) : never;
export type EventName = ConductorEvent['event'];
export type EventOf<K extends EventName> = Extract<ConductorEvent, { event: K }>;

/**
 * Wall-clock milliseconds with sub-millisecond precision. Date.now() alone cannot tell
 * whether two sends were in the same millisecond; the monotonic clock alone is not
 * comparable across processes. Their sum is both, to well under a millisecond.
 */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}
