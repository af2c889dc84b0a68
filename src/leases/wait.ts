// Acquires that wait (waitMs > 0). The request queues a ticket in Redis (so it keeps its
// place among overlapping requests on every replica) and looks again only when something
// may have changed: a "freed" notice for one of its paths, the moment a blocker stops
// blocking by itself (an expiry, a lock delay's end, a ticket lapsing), or a resubscription
// after pub/sub was down. At the deadline it makes one last attempt and answers the conflict.
// So a waiter costs Redis work only when something it waits on changes.
import { performance } from 'node:perf_hooks';
import type { Notifications } from '../notify/notifications.js';
import type { AcquireInput, AcquireResult, LeaseStore } from '../store/lease-store.js';
import { covers } from '../http/paths.js';

export interface WaitDeps {
  store: LeaseStore;
  /** The store's namespace: only its notices concern this wait. */
  namespace: string;
  notifications: Notifications;
  /** How long a ticket outlives its wait in Redis (covers the last attempt's round trip). */
  ticketGraceMs: number;
  /** Throws when the caller's token stopped granting the request while it waited (revoked, expired). */
  ensureStillAllowed?: () => Promise<void>;
}

/** The answer, and whether the request queued (met a conflict and waited) on the way. */
export interface WaitedAcquire {
  result: AcquireResult;
  queued: boolean;
}

export async function acquireWaiting(
  { store, namespace, notifications, ticketGraceMs, ensureStillAllowed }: WaitDeps,
  input: Omit<AcquireInput, 'wait'>,
  waitMs: number,
  gone: AbortSignal,
): Promise<WaitedAcquire> {
  const deadline = performance.now() + waitMs;
  const paths = input.resources.map((r) => r.path);
  const concernsUs = (freed: string[]) => freed.some((f) => paths.some((p) => covers(f, p) || covers(p, f)));
  // Listening starts before the first attempt, so a path freed while Redis' answer is on its
  // way back still wakes us.
  const watch = notifications.watch(namespace, (wakeup) => wakeup.type === 'freed' && wakeup.namespace === namespace && concernsUs(wakeup.paths));
  // A ticket outlives the wait by a grace, so the last attempt still finds it.
  const ticketTtlMs = () => Math.max(0, deadline - performance.now()) + ticketGraceMs;
  let result: AcquireResult;
  let queued: boolean;
  try {
    await watch.subscribedWithin(waitMs, gone);
    result = await store.acquire({ ...input, wait: { step: 'open', ticketTtlMs: ticketTtlMs() } });
    queued = result.kind === 'waiting';
    while (result.kind === 'waiting') {
      const left = deadline - performance.now();
      if (left > 0 && !gone.aborted && !notifications.isClosed) {
        const untilUnblocked = result.wakeAt === null ? Infinity : result.wakeAt - result.now + 1;
        await watch.wait(Math.min(left, untilUnblocked), gone);
      }
      if (gone.aborted) {
        // Nobody is listening: leave the queue so those behind may go on.
        await store.cancelWait(input.id);
        return { result, queued };
      }
      // A token revoked (or expired) while the request waited grants nothing more: the catch
      // below takes the ticket out, and the caller answers 401.
      await ensureStillAllowed?.();
      const over = deadline - performance.now() <= 0 || notifications.isClosed;
      result = await store.acquire({ ...input, wait: over ? { step: 'last' } : { step: 'retry', ticketTtlMs: ticketTtlMs() } });
    }
  } catch (error) {
    // Redis trouble mid-wait (or a lost answer to the first attempt): take the ticket out if
    // we still can; otherwise it lapses by itself.
    await store.cancelWait(input.id).catch(() => undefined);
    throw error;
  } finally {
    watch.close();
  }
  // Refused for the caller's quota while queued: leave the queue, as those behind may go on.
  if (result.kind === 'over_quota' && queued) await store.cancelWait(input.id).catch(() => undefined);
  if (result.kind === 'granted' && gone.aborted) {
    // Granted in the very moment the client left: it will never use the lease.
    await store.release(input.id, 'completed').catch(() => undefined);
  }
  return { result, queued };
}
