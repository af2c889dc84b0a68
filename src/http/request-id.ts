// Every request has an id that is on each of its log lines (Fastify's reqId) and in the
// answer's X-Request-Id. A caller (or a proxy in front) may pass its own in X-Request-Id to
// follow a request across systems; one that is not short and plain is replaced, since it
// would otherwise be copied into every log line of the request.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

export const REQUEST_ID_HEADER = 'x-request-id';
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTABLE_ID.test(given) ? given : randomUUID();
}

export function echoRequestId(app: FastifyInstance): void {
  // (Callback hooks, here and in the other hooks every request runs: an async one costs a
  // promise and a trip through the microtask queue per request.)
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}
