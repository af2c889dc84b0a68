// The OpenAPI document is generated from the route schemas (there is no other copy to keep
// in step by hand); Swagger UI at /docs, the document at /openapi.json.
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

export const API_DESCRIPTION = `Hierarchical, fenced leases on cloud resources, backed by Redis.

A conductor acquires a lease before it acts on a resource (an instance and the volumes and networks below it),
renews it as a heartbeat while it works (at about a third of ttlMs), and releases it when done. A lease on a path covers
every path below it. Every grant carries a fencing token that is greater than that of any earlier conflicting lease,
also across Redis restarts; resource servers reject writes with stale tokens.

Expiry is decided by Redis' clock only and is exact: no acquire ever conflicts with an expired lease. A holder must treat
its lease as lost ttlMs after it *sent* the request that granted or renewed it.

Errors are application/problem+json (RFC 9457) with a stable \`code\`. When Redis cannot be reached or does not answer
within the command timeout the service answers 503 backend_unavailable with Retry-After. Every call carries a deadline on
Redis' clock: one that reaches a paused Redis only after its caller was told 503 changes nothing when Redis wakes up.

Any request may also be refused before it reaches a route: 408 request_timeout when it does not arrive whole within
HTTP_REQUEST_TIMEOUT_MS, 431 headers_too_large, and 503 backend_unavailable while a replica sheds load (its event loop
lags). Every request's cost to Redis is bounded: listings are paged and cut, and what a route reads at most is in its
description and the README.`;

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Lease service', version, description: API_DESCRIPTION },
      tags: [
        { name: 'leases', description: 'Acquire, renew, release and inspect leases.' },
        { name: 'resources', description: 'What holds a resource; fencing checks for resource servers.' },
        { name: 'orphans', description: 'Actions whose holder died, gave up or was revoked: claim one to finish it, or resolve it.' },
        { name: 'events', description: 'The lifecycle of every lease and orphan as Server-Sent Events.' },
        { name: 'health', description: 'Liveness, readiness and metrics.' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', theme: { title: 'Lease service' } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
