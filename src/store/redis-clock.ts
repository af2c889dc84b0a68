// Our estimate of Redis' clock, learnt from the `now` every script reply carries, so a
// call can tell Redis the moment (on Redis' clock) after which its caller stops waiting.

/** Samples with a longer round trip than this say too little about the offset. */
const MAX_USEFUL_RTT_MS = 100;

export class RedisClock {
  /** Redis' clock minus ours, ms; undefined until a reply has told us. */
  private offsetMs: number | undefined;

  observe(redisNowMs: number, sentAtMs: number, receivedAtMs: number): void {
    if (!Number.isFinite(redisNowMs) || receivedAtMs - sentAtMs > MAX_USEFUL_RTT_MS) return;
    this.offsetMs = redisNowMs - (sentAtMs + receivedAtMs) / 2;
  }

  /** Redis-clock ms `budgetMs` from now, or 0 (no deadline) while the offset is unknown. */
  deadline(budgetMs: number): number {
    return this.offsetMs === undefined ? 0 : Math.floor(Date.now() + this.offsetMs + budgetMs);
  }
}
