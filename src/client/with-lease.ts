// withLease: hold a lease exactly as long as a piece of work runs. The work gets the lease
// and a signal that aborts when the lease is lost; when the work ends the lease is released
// with the outcome its ending means: `completed` on return, `abandoned` when it threw
// RetryElsewhereError (or was stopped from outside), `failed` on any other error.
import { performance } from 'node:perf_hooks';
import { HeldLease, type HeldLeaseCalls, type HeldLeaseOptions, type LeaseHandle } from './held-lease.js';
import type { CallOptions } from './transport.js';
import type { AcquireRequest, Lease, ReleaseOutcome } from './types.js';

/** The calls withLease makes, and all it knows of the client: LeaseClient has them. */
export interface WithLeaseCalls extends HeldLeaseCalls {
  acquire(request: AcquireRequest, options: CallOptions): Promise<Lease>;
}

/**
 * Thrown by the work to give it up for another conductor: the lease is released
 * `abandoned`, so a lease with an action becomes an orphan at once (carrying the last
 * checkpoint) instead of waiting for its ttl to run out.
 */
export class RetryElsewhereError extends Error {
  constructor(message = 'The work asked to be retried elsewhere', options?: ErrorOptions) {
    super(message, options);
    this.name = 'RetryElsewhereError';
  }
}

export type LeaseWork<T> = (lease: LeaseHandle, signal: AbortSignal) => Promise<T>;

export interface WithLeaseOptions extends CallOptions, HeldLeaseOptions {}

/**
 * Acquires `request`, runs `work` while a heartbeat keeps the lease, and releases it.
 * Rejects with the LeaseLostError when the lease was lost before the work ended, even if
 * the work returned: its effects may overlap the next holder's, which is for the caller to
 * know. Aborting `options.signal` aborts the work's signal too, and releases `abandoned`.
 */
export async function withLease<T>(client: WithLeaseCalls, request: AcquireRequest, work: LeaseWork<T>, options: WithLeaseOptions = {}): Promise<T> {
  const sentAt = performance.now();
  const lease = await client.acquire(request, options);
  return holdWhile(client, lease, sentAt, work, options);
}

/** Runs `work` under an already granted lease (from an acquire or a claim sent at `sentAt`). */
export async function holdWhile<T>(client: HeldLeaseCalls, lease: Lease, sentAt: number, work: LeaseWork<T>, options: WithLeaseOptions = {}): Promise<T> {
  const held = new HeldLease(client, lease, sentAt, options);
  const stopper = options.signal;
  const signal = stopper ? AbortSignal.any([held.signal, stopper]) : held.signal;
  held.start();

  let outcome: ReleaseOutcome = 'completed';
  let result: T;
  try {
    result = await work(held.handle, signal);
  } catch (error) {
    outcome = error instanceof RetryElsewhereError || (stopper?.aborted && !held.signal.aborted) ? 'abandoned' : 'failed';
    // A release that fails here is not the news: the work's error is. The lease then runs
    // out its ttl, and one with an action becomes an orphan as if abandoned.
    await held.end(outcome).catch(() => undefined);
    // The loss, not the AbortError it caused in the work, is what the caller needs to know.
    throw held.signal.aborted ? held.signal.reason : error;
  }
  if (held.signal.aborted) {
    await held.stop();
    throw held.signal.reason;
  }
  await held.end(outcome);
  return result;
}
