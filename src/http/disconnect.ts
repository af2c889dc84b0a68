// A request that waits (waitMs) must stop waiting, and leave any queue it joined, when its
// client goes away; otherwise a disconnected client could still be granted a lease.
import type { FastifyReply } from 'fastify';

/** Aborts when the client's connection closes before the answer was sent. */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
