// Requests per second, per caller and namespace (@fastify/rate-limit on Redis, so the count
// is shared by every replica): a caller is a token with access control on, else a client
// address. Over the limit: 429 rate_limited with Retry-After. Each counted request costs
// Redis one small script (INCR, PEXPIRE) on a key in its namespace's slot.
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import rateLimit from '@fastify/rate-limit';
import { isBackendUnavailable, type RedisClient } from '../redis/connection.js';
import { problem, ProblemError } from '../errors.js';
import { problemResponse } from '../http/schemas/problems.js';
import type { Namespaces } from '../namespaces/namespaces.js';
import { DEFAULT_NAMESPACE, NAMESPACE_PATTERN } from '../namespaces/names.js';
import { namespaceOf } from '../namespaces/routing.js';

const WELL_FORMED = new RegExp(NAMESPACE_PATTERN);

const RATE_LIMITED =
  'rate_limited: with RATE_LIMIT_PER_SECOND set, more than that many requests a second came from this caller (its token, else its address) in this namespace (in the namespace default, for one that does not exist). Retry after Retry-After seconds.';

/**
 * Every /v1 operation documents the 429 of the rate limit (whether or not it is set here, as
 * 401 and 403 are documented whether or not access control is on); one that has a 429 of its
 * own (a cap on waiters or streams) says both.
 */
export function documentRateLimit(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.config?.access === undefined || route.schema === undefined) return;
    const schema: FastifySchema = route.schema;
    const responses = (schema.response ?? {}) as Record<number, TSchema>;
    const own = responses[429];
    const documented = own
      ? { ...own, description: `${String(own.description)} Also ${RATE_LIMITED}` }
      : problemResponse(RATE_LIMITED, problem('rate_limited', 'More than 100 requests a second from this caller in this namespace (RATE_LIMIT_PER_SECOND); retry after 1 s.'));
    route.schema = { ...schema, response: { ...responses, 429: documented } };
  });
}

/** Whether the namespace is registered; true too when the registry cannot be asked (Redis trouble). */
async function registeredOrUnknown(namespaces: Namespaces, namespace: string): Promise<boolean> {
  try {
    return await namespaces.isRegistered(namespace);
  } catch (error) {
    if (isBackendUnavailable(error)) return true;
    throw error;
  }
}

export async function registerRateLimit(app: FastifyInstance, redis: RedisClient, namespaces: Namespaces, perSecond: number): Promise<void> {
  if (perSecond === 0) return;
  await app.register(rateLimit, {
    global: true,
    max: perSecond,
    timeWindow: 1000,
    redis,
    // The whole key comes from keyGenerator, which starts with the namespace's hash tag.
    nameSpace: '',
    // The limiter runs before the route's schema checks the namespace: a malformed one (it
    // would reach a key name, and could forge another key's) counts in the default's bucket.
    // So does a well-formed one that does not exist (yet): a caller that may read every
    // namespace would otherwise get a fresh budget for each name it makes up. (A namespace
    // this replica has not seen costs one SISMEMBER to ask; one that exists is remembered.
    // The registry lives on the namespace default's shard: while that one cannot answer, a
    // namespace counts in its own bucket, on its own shard, as before there was this check.)
    keyGenerator: async (request) => {
      const namespace = namespaceOf(request);
      const own = WELL_FORMED.test(namespace) && (await registeredOrUnknown(namespaces, namespace));
      return `${namespaces.prefix(own ? namespace : DEFAULT_NAMESPACE)}rate:${request.grant?.actor ?? `ip:${request.ip}`}`;
    },
    // /v1 only: health, metrics and docs are never limited.
    allowList: (request) => request.routeOptions.config.access === undefined,
    // Redis trouble is a 503 like any other, not a free pass.
    skipOnError: false,
    errorResponseBuilder: (_request, context) =>
      new ProblemError(
        'rate_limited',
        `More than ${context.max} requests a second from this caller in this namespace (RATE_LIMIT_PER_SECOND); retry after ${context.after}.`,
        {},
        { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) },
      ),
  });
}
