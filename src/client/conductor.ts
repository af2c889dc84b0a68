// Conductor: a worker loop that takes over the actions dead holders left half-done. Each of
// `concurrency` slots long-polls POST /v1/orphans/claim for the given kinds and runs the
// handler under the claim's lease, with withLease's semantics (heartbeat, loss signal,
// release by outcome). The handler receives the orphan, whose `progress` is the dead
// holder's last checkpoint: resume from it, after checking what the running step did.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendUnavailableError } from './errors.js';
import type { HeldLeaseOptions, LeaseHandle } from './held-lease.js';
import type { LeaseClient } from './lease-client.js';
import type { Orphan } from './types.js';
import { holdWhile } from './with-lease.js';

export interface OrphanJob {
  orphan: Orphan;
  /** The claim's lease: a new, greater fencing token, and action.attempt one more than before. */
  lease: LeaseHandle;
}

export interface ConductorOptions {
  /** Who claims (shown as the holder of the claims' leases). */
  holder: string;
  /** Action kinds to take; all kinds when omitted. */
  kinds?: string[];
  /** Orphans handled at once. Default 1. */
  concurrency?: number;
  /** ttl of a claim's lease. Default 15000 (the service's default). */
  ttlMs?: number;
  /**
   * How long one claim request waits for an orphan (the long poll). At most a third of
   * ttlMs, which is the default: the client cannot know when during the wait the claim was
   * granted, so it times the lease from when the claim was sent, and the first heartbeat,
   * due a third of the ttl after that, must still find the lease alive.
   */
  claimWaitMs?: number;
  /** Passed to each claim's lease (e.g. onRenewed, marginMs, onReleased). */
  lease?: HeldLeaseOptions;
  handler: (job: OrphanJob, signal: AbortSignal) => Promise<void>;
  /** A handler's error, a lost lease or a failing claim; the loop goes on. Default: console.error. */
  onError?: (error: unknown, job: OrphanJob | null) => void;
}

/** Why a handler's signal aborted when the conductor was stopped: its lease is released `abandoned`. */
export class ConductorStoppedError extends Error {
  constructor() {
    super('The conductor is stopping; the orphan is handed back');
    this.name = 'ConductorStoppedError';
  }
}

export class Conductor {
  private readonly stopping = new AbortController();
  private readonly handlers = new AbortController();
  private slots: Promise<void>[] = [];
  private readonly options: Required<Omit<ConductorOptions, 'kinds'>> & Pick<ConductorOptions, 'kinds'>;

  constructor(
    private readonly client: LeaseClient,
    options: ConductorOptions,
  ) {
    const ttlMs = options.ttlMs ?? 15_000;
    this.options = {
      concurrency: 1,
      claimWaitMs: Math.floor(ttlMs / 3),
      onError: (error) => console.error('conductor:', error),
      lease: {},
      ...options,
      ttlMs,
    };
    if (this.options.claimWaitMs > ttlMs / 3) {
      throw new RangeError(`claimWaitMs (${this.options.claimWaitMs}) must be at most a third of ttlMs (${ttlMs}): the wait counts against the claim's lease`);
    }
  }

  /** Starts the claim loops; returns at once. */
  start(): this {
    if (this.slots.length > 0) throw new Error('The conductor is already started');
    for (let i = 0; i < this.options.concurrency; i++) this.slots.push(this.slot());
    return this;
  }

  /**
   * Stops claiming and waits for running handlers to finish. After `graceMs` their signals
   * abort with ConductorStoppedError, and a handler that then throws has its orphan handed
   * back at once (released `abandoned`). A claim long poll in flight is cut: should the
   * service have granted it just then, that lease runs out its ttl and the orphan comes back.
   */
  async stop({ graceMs = 10_000 } = {}): Promise<void> {
    this.stopping.abort();
    const grace = setTimeout(() => this.handlers.abort(new ConductorStoppedError()), graceMs);
    try {
      await Promise.all(this.slots);
    } finally {
      clearTimeout(grace);
    }
  }

  private async slot(): Promise<void> {
    const { holder, kinds, ttlMs, claimWaitMs } = this.options;
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      const sentAt = performance.now();
      let claim;
      try {
        claim = await this.client.claimOrphan(
          { holder, ttlMs, waitMs: claimWaitMs, ...(kinds ? { kinds } : {}) },
          { signal: this.stopping.signal },
        );
        failures = 0;
      } catch (error) {
        if (this.stopping.signal.aborted) return;
        this.options.onError(error, null);
        // Back off (full jitter, up to 5 s) so that a service that is down is not hammered.
        const pause = Math.random() * Math.min(5000, 100 * 2 ** failures++);
        await sleep(error instanceof BackendUnavailableError && error.retryAfterMs ? error.retryAfterMs : pause, undefined, {
          signal: this.stopping.signal,
        }).catch(() => undefined);
        continue;
      }
      if (!claim) continue;
      const { orphan } = claim;
      let job: OrphanJob | null = null;
      await holdWhile(this.client, claim.lease, sentAt, (lease, signal) => this.options.handler((job = { orphan, lease }), signal), {
        ...this.options.lease,
        signal: this.handlers.signal,
      }).catch((error: unknown) => this.options.onError(error, job));
    }
  }
}
