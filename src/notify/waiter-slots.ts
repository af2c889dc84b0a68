// The budget of requests that wait (acquires and orphan claims with waitMs) on one replica:
// a waiter costs a socket and a timer here and, each time what it waits on changes, one
// script run in Redis.
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { Slots } from '../http/slots.js';

/**
 * Whose budget a waiting request takes: its token's with access control on (a token that acts
 * as many holders has one budget), else its holder's in its namespace.
 */
export function waiterOf(request: FastifyRequest, namespace: string, holder: string): string {
  return request.grant ? `token ${request.grant.actor}` : `holder ${holder} in ${namespace}`;
}

export function waiterSlots(config: Config): Slots {
  return new Slots({
    max: config.WAITERS_MAX,
    maxPerOwner: config.WAITERS_MAX_PER_HOLDER,
    retryAfterSeconds: 1,
    full: (open) => `This replica already holds ${open} waiting requests (WAITERS_MAX); retry later, or without waitMs.`,
    ownerFull: (owner, open) =>
      `This replica already holds ${open} waiting requests of ${owner} (WAITERS_MAX_PER_HOLDER); retry later, or without waitMs.`,
  });
}
