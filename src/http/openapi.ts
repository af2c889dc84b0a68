// The OpenAPI document is generated from the route schemas (there is no other copy to keep
// in step by hand); Swagger UI at /docs, the document at /openapi.json.
import { STATUS_CODES } from 'node:http';
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

Namespaces: every /v1 route also exists as /v1/namespaces/{namespace}/... (a tenant, a cell or a region); the routes
without that prefix are the namespace "default". Leases, orphans, waiters, events and fencing tokens of one namespace never
meet another's: the same path in two namespaces never conflicts, an id of another namespace is 404, and fencing tokens
increase within a namespace. A namespace needs no creation step (the first acquire in it registers it; at most
NAMESPACES_MAX exist, past that an acquire in a new one is 429 rate_limited). With access control on, a new
namespace is created only by an operator's token or by one that names it; a token for every namespace that is not
an operator's gets 403 forbidden in one that does not exist yet. Each namespace is one Redis Cluster slot: in Cluster mode
namespaces spread over the primaries, and each request works in one namespace, atomically. Nothing fans out over
namespaces: holder renew, listings, the event stream and orphan claims take the one their route names (a conductor with
leases in several namespaces renews in each).

Errors are application/problem+json (RFC 9457) with a stable \`code\`. When Redis cannot be reached or does not answer
within the command timeout the service answers 503 backend_unavailable with Retry-After. Every call carries a deadline on
Redis' clock: one that reaches a paused Redis only after its caller was told 503 changes nothing when Redis wakes up.

Any request may also be refused before it reaches a route: 408 request_timeout when it does not arrive whole within
HTTP_REQUEST_TIMEOUT_MS, 431 headers_too_large, and 503 backend_unavailable while a replica sheds load (its event loop
lags). Every request's cost to Redis is bounded: listings are paged and cut, and what a route reads at most is in its
description and the README.`;

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    // A schema added with app.addSchema becomes components.schemas under its $id (Lease, Holder).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: (document) =>
      'openapiObject' in document ? (shareResponses(document.openapiObject as OpenApiObject) as typeof document.openapiObject) : document.swaggerObject,
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Lease service', version, description: API_DESCRIPTION },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'With access control on (AUTH=on): a service token (lst_..., made with `lease tokens create`) or a JWT. Swagger UI\'s Authorize button takes either.',
          },
        },
      },
      tags: [
        { name: 'leases', description: 'Acquire, renew, release and inspect leases.' },
        { name: 'resources', description: 'What holds a resource; fencing checks for resource servers.' },
        { name: 'orphans', description: 'Actions whose holder died, gave up or was revoked: claim one to finish it, or resolve it.' },
        { name: 'events', description: 'The lifecycle of every lease and orphan as Server-Sent Events.' },
        { name: 'health', description: 'Liveness, readiness and metrics.' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', theme: { title: 'Lease service' }, uiConfig: { persistAuthorization: true } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

type ResponseObject = { content?: Record<string, { example?: { code?: unknown } }> };
type OpenApiObject = {
  paths?: Record<string, Record<string, { responses?: Record<string, ResponseObject | { $ref: string } | undefined> }>>;
  components?: { responses?: Record<string, ResponseObject> };
};

const pascal = (words: string) => words.replace(/(?:^|[\s_-]+)(\w)/g, (_match, letter: string) => letter.toUpperCase());

/**
 * An error response that several operations answer alike (the same description and example:
 * 400, 503, a lease's 404 and 410) is written once, under components.responses, and referred
 * to: @fastify/swagger inlines every response. Each is named by its status (BadRequest), or,
 * when a status has more than one, by the code of its example (LeaseNotFound, OrphanNotFound).
 */
export function shareResponses(document: OpenApiObject): OpenApiObject {
  const uses = new Map<string, { status: string; response: ResponseObject; count: number }>();
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        if (Number(status) < 400 || response === undefined || '$ref' in response) continue;
        const key = JSON.stringify(response);
        const use = uses.get(key) ?? { status, response, count: 0 };
        use.count++;
        uses.set(key, use);
      }
    }
  }
  const shared = [...uses.entries()].filter(([, use]) => use.count > 1);
  const names = new Map<string, string>();
  for (const [key, { status, response }] of shared) {
    const alone = shared.filter(([, other]) => other.status === status).length === 1;
    const code = Object.values(response.content ?? {})[0]?.example?.code;
    const name = pascal(alone || typeof code !== 'string' ? (STATUS_CODES[Number(status)] ?? `status ${status}`) : code);
    names.set(key, [...names.values()].includes(name) ? `${name}${status}` : name);
  }
  if (names.size === 0) return document;
  const responses: Record<string, ResponseObject> = { ...document.components?.responses };
  for (const [key, name] of names) responses[name] = uses.get(key)!.response;
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const name = names.get(JSON.stringify(response));
        if (name !== undefined) operation.responses![status] = { $ref: `#/components/responses/${name}` };
      }
    }
  }
  return { ...document, components: { ...document.components, responses } };
}
