// A lease while its holder works: the heartbeat that renews it at a third of its ttl, the
// watchdog that declares it lost, and the progress checkpoint that rides on the next renew.
//
// The contract's clock rule is the whole design: a holder must treat its lease as lost ttlMs
// after it *sent* the request that granted or last renewed it (Redis' clock decides, and
// ours may run at another rate). So every renew remembers when it left, by the monotonic
// clock, and only a confirmed renew moves the deadline, to that send time plus the time the
// service said was left (expiresInMs, which already stops at holdDeadline). `signal` aborts
// at that deadline, or at once on a 410 or a 404 (a grant lost in a failover), and never comes back.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeaseLostError, LeaseServiceError, BackendUnavailableError } from './errors.js';
import type { CallOptions } from './transport.js';
import type { Lease, ReleaseOutcome, RenewRequest, Tombstone } from './types.js';

export type Progress = Record<string, unknown>;

/** The calls a held lease makes, and all it knows of the client: LeaseClient has them. */
export interface HeldLeaseCalls {
  renew(id: string, request: RenewRequest, options: CallOptions): Promise<Lease>;
  release(id: string, outcome: ReleaseOutcome): Promise<Tombstone>;
}

export interface HeldLeaseOptions {
  /** Abort this long before the deadline, to leave time to stop work (e.g. a child process). Default 0. */
  marginMs?: number;
  /** Called after each confirmed renewal, with the lease as the service now sees it. */
  onRenewed?: (lease: Lease) => void;
  /** Called with the service's answer to the release that ends the lease. */
  onReleased?: (tombstone: Tombstone) => void;
}

/** What the work function receives: the lease as granted, and a way to record progress. */
export type LeaseHandle = Lease & {
  /** Records how far the work got; it goes out with the next heartbeat (a later one replaces it). */
  checkpoint(progress: Progress): void;
};

/** The pause between renew attempts after one failed for a reason that may pass. */
const RETRY_PAUSE_MS = 100;

export class HeldLease {
  readonly handle: LeaseHandle;
  private current: Lease;
  /** Monotonic ms after which the lease must be presumed lost. */
  private deadline: number;
  private pending: { progress: Progress } | null = null;
  private readonly sentAt: number;
  private readonly lost = new AbortController();
  private readonly stopped = new AbortController();
  private watchdog: NodeJS.Timeout | undefined;
  private heartbeat: Promise<void> | undefined;

  /** `sentAt`: performance.now() when the acquire or claim that granted `lease` was sent. */
  constructor(
    private readonly client: HeldLeaseCalls,
    lease: Lease,
    sentAt: number,
    private readonly options: HeldLeaseOptions = {},
  ) {
    this.current = lease;
    this.sentAt = sentAt;
    this.deadline = sentAt + lease.expiresInMs;
    this.handle = Object.assign(structuredClone(lease), {
      checkpoint: (progress: Progress) => {
        this.pending = { progress };
      },
    });
  }

  /** Aborted, with a LeaseLostError as its reason, once the lease is lost. */
  get signal(): AbortSignal {
    return this.lost.signal;
  }

  /** The lease as of the last confirmed renewal. */
  get lease(): Lease {
    return this.current;
  }

  /** performance.now() value after which the lease must be presumed lost. */
  get validUntil(): number {
    return this.deadline;
  }

  start(): void {
    this.armWatchdog();
    this.heartbeat = this.beat();
  }

  /**
   * Stops the heartbeat and waits until no renew is in flight; sends a checkpoint still
   * waiting when asked to (so an abandoned action hands its last progress to the claimer).
   */
  async stop({ flushProgress = false } = {}): Promise<void> {
    this.stopped.abort();
    await this.heartbeat;
    clearTimeout(this.watchdog);
    if (flushProgress && this.pending && !this.signal.aborted) {
      await this.renewOnce(this.deadlineSignal()).catch(() => undefined);
    }
  }

  /** Stops the heartbeat, then releases with `outcome` unless the lease is already lost. */
  async end(outcome: ReleaseOutcome): Promise<Tombstone | null> {
    await this.stop({ flushProgress: outcome === 'abandoned' });
    if (this.signal.aborted) return null;
    const tombstone = await this.client.release(this.current.id, outcome);
    this.options.onReleased?.(tombstone);
    return tombstone;
  }

  private async beat(): Promise<void> {
    const intervalMs = this.current.ttlMs / 3;
    // Timed from the send, like the deadline: a grant that took long to arrive (a claim's
    // long poll, a waitMs acquire) is renewed at once.
    let next = this.sentAt + intervalMs;
    while (!this.stopped.signal.aborted && !this.signal.aborted) {
      const ok = await sleep(Math.max(0, next - performance.now()), true, { signal: this.stopped.signal }).catch(() => false);
      if (!ok) return;
      const sentAt = performance.now();
      try {
        // A renew is worth waiting for only until the deadline: after it, the lease is lost anyway.
        await this.renewOnce(AbortSignal.any([this.stopped.signal, this.deadlineSignal()]));
        next = sentAt + intervalMs;
      } catch (error) {
        if (this.stopped.signal.aborted || this.signal.aborted) return;
        if (error instanceof LeaseLostError) return this.lose(error);
        if (error instanceof LeaseServiceError && !(error instanceof BackendUnavailableError)) {
          // A renew the service refuses (e.g. a progress over 16 KiB) will be refused again:
          // the holder cannot keep this lease, so say so now rather than at the deadline.
          return this.lose(error);
        }
        next = performance.now() + RETRY_PAUSE_MS;
      }
    }
  }

  /** One renew (retried by the client while the service is unavailable), carrying the pending checkpoint. */
  private async renewOnce(signal: AbortSignal): Promise<void> {
    const sentAt = performance.now();
    const sending = this.pending;
    const lease = await this.client.renew(this.current.id, sending ? { progress: sending.progress } : {}, { signal });
    if (this.signal.aborted) return;
    this.current = lease;
    this.deadline = Math.max(this.deadline, sentAt + lease.expiresInMs);
    if (this.pending === sending) this.pending = null;
    this.armWatchdog();
    this.options.onRenewed?.(lease);
  }

  private deadlineSignal(): AbortSignal {
    return AbortSignal.timeout(Math.max(1, Math.ceil(this.deadline - performance.now())));
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    if (this.stopped.signal.aborted) return;
    const margin = this.options.marginMs ?? 0;
    this.watchdog = setTimeout(
      () =>
        this.lose(
          new LeaseLostError(
            0,
            'renewal_overdue',
            `No renewal of lease ${this.current.id} was confirmed within its ttl of being sent${margin > 0 ? ` (less a margin of ${margin} ms)` : ''}: it must be presumed lost`,
          ),
        ),
      Math.max(0, this.deadline - margin - performance.now()),
    );
  }

  private lose(reason: LeaseServiceError): void {
    clearTimeout(this.watchdog);
    if (!this.lost.signal.aborted) this.lost.abort(reason);
  }
}
