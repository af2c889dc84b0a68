// Settles expired leases in the background so tombstones appear and index entries go away
// even for leases nobody asks about. Correctness never waits for it: every script settles
// what it meets. Every replica may run one; the sweep script is safe to run concurrently.
import type { FastifyBaseLogger } from 'fastify';
import type { LeaseStore } from '../store/lease-store.js';

export interface SweeperOptions {
  intervalMs: number;
  batch: number;
  log: FastifyBaseLogger;
}

/** Batches one tick may run back to back before yielding to the next interval. */
const MAX_BATCHES_PER_TICK = 20;

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private failing = false;

  constructor(
    private readonly store: LeaseStore,
    private readonly options: SweeperOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      for (let batch = 0; batch < MAX_BATCHES_PER_TICK && !this.stopped; batch++) {
        const { settled, stillDue } = await this.store.sweep(this.options.batch);
        if (settled > 0) this.options.log.debug({ settled, stillDue }, 'swept expired leases');
        if (stillDue === 0) break;
      }
      if (this.failing) this.options.log.info('sweeper reaches Redis again');
      this.failing = false;
    } catch (error) {
      // Log the first failure of a streak only: Redis being down is reported elsewhere.
      if (!this.failing) this.options.log.warn({ err: (error as Error).message }, 'sweep failed; retrying every interval');
      this.failing = true;
    }
  }
}
