// Every /v1 route exists twice: at /v1/... for the namespace "default", as it always did,
// and at /v1/namespaces/{namespace}/... for any namespace. A route plugin is written once,
// with paths relative to either prefix, and asks namespaceOf(request) which one it serves.
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, FastifySchema, RouteOptions } from 'fastify';
import { ProblemError } from '../errors.js';
import { DEFAULT_NAMESPACE, NamespaceName } from './names.js';
import type { Namespaces } from './namespaces.js';
import { NamespaceFullError, NamespaceUnknownError } from './registry.js';
import type { LeaseStore } from '../store/lease-store.js';

export const NAMESPACED_PREFIX = '/v1/namespaces/:namespace';

/** The namespace a request is in: its {namespace} (checked by the route's schema) or "default". */
export function namespaceOf(request: FastifyRequest): string {
  return (request.params as { namespace?: string } | undefined)?.namespace ?? DEFAULT_NAMESPACE;
}

/**
 * The store of the request's namespace, for a request that only reads or changes what
 * exists; with access control on, its events and leases name the caller's token.
 */
export function storeOf(namespaces: Namespaces, request: FastifyRequest): LeaseStore {
  return asCaller(namespaces, namespaces.store(namespaceOf(request)), request);
}

function asCaller(namespaces: Namespaces, store: LeaseStore, request: FastifyRequest): LeaseStore {
  const actor = request.grant?.actor;
  return actor === undefined ? store : store.as(actor, namespaces.leaseQuota);
}

/**
 * The store of the request's namespace, for a request that may create state in it (an
 * acquire): the namespace is registered first, or the request is 429 past NAMESPACES_MAX.
 * With access control on, only a token that names the namespace, or an operator's, creates
 * one: a token for every namespace ("*") that is not an operator's uses those that exist, so
 * it cannot fill the registry with names of its own (403 for a new one).
 */
export async function writableStoreOf(namespaces: Namespaces, request: FastifyRequest): Promise<LeaseStore> {
  const namespace = namespaceOf(request);
  const grant = request.grant;
  const mayCreate = grant === null || grant.role === 'operator' || grant.namespaces !== '*';
  try {
    await namespaces.admit(namespace, mayCreate);
  } catch (error) {
    if (error instanceof NamespaceUnknownError) {
      throw new ProblemError('forbidden', `${error.message} An operator's first acquire in it, or one with a token that names it, creates it.`);
    }
    if (!(error instanceof NamespaceFullError)) throw error;
    throw new ProblemError('rate_limited', `${error.message} Use an existing namespace.`, {}, { 'retry-after': '60' });
  }
  return asCaller(namespaces, namespaces.store(namespace), request);
}

/** Registers a plugin of /v1 routes at /v1 and at /v1/namespaces/{namespace}. */
export async function registerInEveryNamespace<Options extends object>(
  app: FastifyInstance,
  plugin: FastifyPluginAsync<Options>,
  options: Options,
): Promise<void> {
  await app.register(plugin, { ...options, prefix: '/v1' });
  await app.register(
    async (scope) => {
      scope.addHook('onRoute', (route: RouteOptions) => {
        route.schema = withNamespaceParam(route.schema);
      });
      await scope.register(plugin, options);
    },
    { prefix: NAMESPACED_PREFIX },
  );
}

type ObjectSchema = { properties?: Record<string, unknown>; required?: string[] } & Record<string, unknown>;

/** The route's schema with {namespace} among its path parameters (first, as in the path). */
function withNamespaceParam(schema: FastifySchema | undefined): FastifySchema {
  const params = (schema?.params ?? {}) as ObjectSchema;
  return {
    ...schema,
    params: {
      ...params,
      type: 'object',
      properties: { namespace: NamespaceName, ...params.properties },
      required: ['namespace', ...(params.required ?? [])],
    },
  };
}
