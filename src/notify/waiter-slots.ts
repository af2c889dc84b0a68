// The budget of requests that wait (acquires and orphan claims with waitMs) on one replica:
// a waiter costs a socket and a timer here and, each time what it waits on changes, one
// script run in Redis.
import type { Config } from '../config.js';
import { Slots } from '../http/slots.js';

export function waiterSlots(config: Config): Slots {
  return new Slots({
    max: config.WAITERS_MAX,
    maxPerOwner: config.WAITERS_MAX_PER_HOLDER,
    retryAfterSeconds: 1,
    full: (open) => `This replica already holds ${open} waiting requests (WAITERS_MAX); retry later, or without waitMs.`,
    ownerFull: (holder, open) =>
      `This replica already holds ${open} waiting requests of holder ${holder} (WAITERS_MAX_PER_HOLDER); retry later, or without waitMs.`,
  });
}
