// Our estimate of Redis' clock, learnt from the `now` every script reply carries, so a
// call can tell Redis the moment (on Redis' clock) after which its caller stops waiting.
// Time since the last reply is measured on the local monotonic clock: a step of the
// local wall clock (NTP, a resumed VM) does not skew the estimate, and a step of Redis'
// clock (a failover to a node whose clock differs) is corrected by the next reply.
import { performance } from 'node:perf_hooks';

/** Samples with a longer round trip than this say too little about Redis' clock. */
const MAX_USEFUL_RTT_MS = 100;

export class RedisClock {
  private anchor: { redisMs: number; localMs: number } | undefined;

  /** Local monotonic time, ms; pass it as sentAt/receivedAt to observe(). */
  static local(): number {
    return performance.now();
  }

  observe(redisNowMs: number, sentAt: number, receivedAt: number): void {
    if (!Number.isFinite(redisNowMs) || receivedAt - sentAt > MAX_USEFUL_RTT_MS) return;
    this.anchor = { redisMs: redisNowMs, localMs: (sentAt + receivedAt) / 2 };
  }

  /** Redis-clock ms `budgetMs` from now, or 0 (no deadline) while Redis' clock is unknown. */
  deadline(budgetMs: number): number {
    if (!this.anchor) return 0;
    return Math.floor(this.anchor.redisMs + (performance.now() - this.anchor.localMs) + budgetMs);
  }
}
