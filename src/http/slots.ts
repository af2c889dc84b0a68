// A bounded number of long-lived requests (waiting acquires and claims, event streams) that
// one replica holds open, in all and per owner (a holder, a client address). Each costs a
// socket, a timer and Redis work while it lasts; past either cap the next one gets 429
// rate_limited with Retry-After, and nothing else happens. The caps are per replica: a
// deployment of N replicas holds at most N times as many.
import { ProblemError } from '../errors.js';

export interface SlotLimits {
  max: number;
  maxPerOwner: number;
  retryAfterSeconds: number;
  /** The 429's detail when the replica is full. */
  full(open: number): string;
  /** The 429's detail when this owner is. */
  ownerFull(owner: string, open: number): string;
}

export class Slots {
  private total = 0;
  private readonly byOwner = new Map<string, number>();

  constructor(private readonly limits: SlotLimits) {}

  /** Takes a slot for `owner`, or throws 429 rate_limited. Call the returned function when done (more calls do nothing). */
  take(owner: string): () => void {
    const held = this.byOwner.get(owner) ?? 0;
    if (held >= this.limits.maxPerOwner) throw this.refusal(this.limits.ownerFull(owner, held));
    if (this.total >= this.limits.max) throw this.refusal(this.limits.full(this.total));
    this.total++;
    this.byOwner.set(owner, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byOwner.get(owner) ?? 1) - 1;
      if (left > 0) this.byOwner.set(owner, left);
      else this.byOwner.delete(owner);
    };
  }

  private refusal(detail: string): ProblemError {
    return new ProblemError('rate_limited', detail, {}, { 'retry-after': String(this.limits.retryAfterSeconds) });
  }
}
