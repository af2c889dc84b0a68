// The reaper settles expired leases that nobody asks about, so that each orphan is
// published (to the orphan queue and stream) within one interval of its expiry, and drops
// resolved orphans and ended lock delays on time. Correctness never waits for it: every
// script settles what it meets. Every replica runs one; one at a time leads, by a redlock
// lock on Redis that the leader extends. A brief overlap of two leaders (a paused leader
// whose lock ran out) is harmless: each transition happens once, inside a script. The
// leader sweeps every namespace (at most NAMESPACES_MAX + 1 per round), a few at a time, each
// on its own: in Redis Cluster mode namespaces live on different shards, and one shard that
// is down (until its replica takes over) holds up only its own namespaces' sweeps.
import type { FastifyBaseLogger } from 'fastify';
import type { RedisClient } from '../redis/connection.js';
import Redlock, { type Lock } from 'redlock';
import { performance } from 'node:perf_hooks';
import type { ServiceMetrics } from '../observability/metrics.js';
import type { Namespaces } from '../namespaces/namespaces.js';
import type { SweepResult } from '../store/lease-store.js';

export interface ReaperOptions {
  /** Sweep at least this often; sooner when the next lease is due sooner. */
  intervalMs: number;
  batch: number;
  /** Each sweep trims the streams to this age and about this size. */
  streams: { maxAgeMs: number; maxBytes: number };
  /** Leadership lasts this long unless extended. */
  lockMs: number;
  /** The Redis key of the leadership lock (with the store's hash tag). */
  lockKey: string;
  log: FastifyBaseLogger;
  metrics: ServiceMetrics;
}

/** Batches one tick may run back to back in one namespace before going on. */
const MAX_BATCHES_PER_TICK = 20;
/** Least time between two sweeps, so a burst of due times cannot make the reaper spin. */
const MIN_GAP_MS = 5;
/** Namespaces swept at once: round trips overlap, and the shards of a cluster work side by side. */
const SWEEPS_IN_FLIGHT = 8;

export class Reaper {
  private readonly redlock: Redlock;
  private lock: Lock | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private failing = false;

  constructor(
    redis: RedisClient,
    private readonly namespaces: Namespaces,
    private readonly options: ReaperOptions,
  ) {
    // One attempt per tick: a replica that is not the leader simply tries again next tick.
    this.redlock = new Redlock([redis], { retryCount: 0 });
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops sweeping and hands leadership on at once (another replica leads on its next tick). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    const lock = this.lock;
    this.lock = undefined;
    this.options.metrics.reaperLeader.set(0);
    await lock?.release().catch(() => undefined);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().then(
        (next) => this.schedule(next),
        () => this.schedule(this.options.intervalMs),
      );
    }, delayMs);
    this.timer.unref();
  }

  /** One round: lead if possible, sweep what is due; returns when to run next (ms). */
  private async tick(): Promise<number> {
    try {
      if (!(await this.lead())) return this.options.intervalMs;
      // The leader must come back before its lock runs out, however long the interval.
      let next = Math.min(this.options.intervalMs, this.options.lockMs / 3);
      const namespaces = await this.namespaces.list();
      const failed: { namespace: string; error: Error }[] = [];
      await forEachAtMost(SWEEPS_IN_FLIGHT, namespaces, async (namespace) => {
        if (this.stopped) return;
        try {
          // Not Math.min(next, await ...): that would read `next` before the await, and a
          // slow sweep would put back what the faster ones lowered meanwhile.
          const due = await this.sweepNamespace(namespace);
          next = Math.min(next, due);
        } catch (error) {
          failed.push({ namespace, error: error as Error });
        }
      });
      if (failed.length > 0) {
        // The others are due again by their own times; the interval bounds the wait of these.
        this.failed(new SweepFailure(failed, namespaces.length));
        return Math.min(next, this.options.intervalMs);
      }
      if (this.failing) this.options.log.info('reaper reaches Redis again');
      this.failing = false;
      return next;
    } catch (error) {
      this.failed(error as Error);
      return this.options.intervalMs;
    }
  }

  /** Logs the first failure of a streak only: Redis being down is reported elsewhere. */
  private failed(error: Error): void {
    if (!this.failing) this.options.log.warn({ err: error.message }, 'reaper sweep failed; retrying every interval');
    this.failing = true;
  }

  /** Sweeps one namespace, a few batches at most; returns when it wants the next sweep (ms). */
  private async sweepNamespace(namespace: string): Promise<number> {
    let next = Infinity;
    for (let batch = 0; batch < MAX_BATCHES_PER_TICK && !this.stopped; batch++) {
      const swept = await this.sweep(namespace);
      if (swept.settled > 0) this.options.log.debug({ namespace, settled: swept.settled, stillDue: swept.stillDue }, 'reaper swept expired leases');
      if (swept.stillDue > 0) {
        next = 0;
        continue;
      }
      if (swept.nextDueAt !== null) next = Math.min(next, Math.max(MIN_GAP_MS, swept.nextDueAt - swept.now + 1));
      break;
    }
    return next;
  }

  private async sweep(namespace: string): Promise<SweepResult> {
    const { metrics, batch, streams } = this.options;
    const started = performance.now();
    try {
      const swept = await this.namespaces.store(namespace).sweep(batch, streams);
      metrics.reaperSweeps.inc({ result: 'ok' });
      metrics.reaperSettled.inc(swept.settled);
      return swept;
    } catch (error) {
      metrics.reaperSweeps.inc({ result: 'error' });
      throw error;
    } finally {
      metrics.reaperSweepDuration.observe((performance.now() - started) / 1000);
    }
  }

  /** Takes or keeps leadership; true while this replica leads. */
  private async lead(): Promise<boolean> {
    const leads = await this.takeLead();
    this.options.metrics.reaperLeader.set(leads ? 1 : 0);
    return leads;
  }

  private async takeLead(): Promise<boolean> {
    const { lockMs, lockKey, log } = this.options;
    if (this.lock && this.lock.expiration - Date.now() > lockMs / 2) return true;
    try {
      if (this.lock) {
        this.lock = await this.lock.extend(lockMs);
      } else {
        this.lock = await this.redlock.acquire([lockKey], lockMs);
        log.info('reaper: this replica leads');
      }
      return true;
    } catch {
      // Held by another replica, or our lock ran out while Redis was unreachable.
      if (this.lock) log.warn('reaper: leadership lost');
      this.lock = undefined;
      return false;
    }
  }
}

/** Some namespaces could not be swept (the others were). */
class SweepFailure extends Error {
  constructor(failed: { namespace: string; error: Error }[], of: number) {
    super(`${failed.length} of ${of} namespaces could not be swept (first: ${failed[0]!.namespace}: ${failed[0]!.error.message})`);
  }
}

/** Runs `work` on every item, at most `limit` at a time. */
async function forEachAtMost<T>(limit: number, items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
