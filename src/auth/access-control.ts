// Access control on the HTTP side. With it on, every /v1 request (and /metrics, /docs when
// configured so) needs a bearer token: onRequest turns it into a grant or answers 401, and
// preHandler, once the body is parsed, answers 403 to a call the grant does not allow
// (role, namespace, the holder a conductor acts as, the kinds it claims). Checks that need
// the lease (renew, release, read by id) are made by the route's script, before it writes
// or settles anything. Readers see no payload or progress unless their grant says so. With access
// control off, nothing here runs.
import type { FastifyInstance, FastifyRequest, FastifySchema, RouteOptions } from 'fastify';
import { problem, ProblemError } from '../errors.js';
import { problemResponse } from '../http/schemas/problems.js';
import { namespaceOf } from '../namespaces/routing.js';
import type { Authenticator } from './authenticator.js';
import { claimableKinds, mayActAs, mayUseNamespace, type Grant } from './grants.js';
import { ACCESS, describeAccess, type Access, type AccessRule } from './policy.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's grant, with access control on (null with it off, or on open routes). */
    grant: Grant | null;
    /**
     * Whether the request's token still grants what it did (not revoked, not expired since):
     * for what outlives the request's start, such as an event stream. Always true with access
     * control off.
     */
    grantStillValid: () => Promise<boolean>;
  }
  interface FastifyContextConfig {
    /** What the route does, for access control (auth/policy.ts). Every /v1 route names one. */
    access?: Access;
  }
}

export interface AccessControlOptions {
  /** null: access control is off. */
  authenticator: Authenticator | null;
  /** Whether /metrics needs a token (any valid one) when access control is on. */
  protectMetrics: boolean;
  /** Whether /docs and /openapi.json need a token when access control is on. */
  protectDocs: boolean;
}

const REALM = 'Bearer realm="lease-service"';

export function installAccessControl(app: FastifyInstance, { authenticator, protectMetrics, protectDocs }: AccessControlOptions): void {
  app.decorateRequest('grant', null);
  app.decorateRequest('grantStillValid', async () => true);
  // Every /v1 operation documents who may call it, and its 401 and 403.
  app.addHook('onRoute', (route: RouteOptions) => {
    const access = route.config?.access;
    if (access === undefined || route.schema === undefined) return;
    const schema: FastifySchema & { description?: string; security?: unknown } = route.schema;
    route.schema = {
      ...schema,
      description: `${schema.description ?? ''} ${describeAccess(access)}`.trim(),
      security: [{ bearerAuth: [] }],
      response: {
        ...(schema.response as Record<number, unknown> | undefined),
        401: problemResponse('unauthorized: access control is on, and the request has no valid bearer token.', problem('unauthorized', 'The token is unknown, revoked or expired.')),
        403: problemResponse(
          'forbidden: the token\'s role, namespaces, holders or orphan kinds do not allow this call; nothing changed.',
          problem('forbidden', 'This token may act as holders conductor-a-*, not as conductor-b-1.'),
        ),
      },
    };
  });
  if (!authenticator) return;

  // By the route that matched (its pattern), not the raw URL: /%761/leases is /v1/leases to
  // the router. A request that matched no route is judged by its decoded path.
  const needsToken = (request: FastifyRequest) => {
    const path = request.routeOptions.url ?? decodedPath(request.url);
    if (path === '/v1' || path.startsWith('/v1/')) return true;
    if (path === '/metrics') return protectMetrics;
    if (path === '/openapi.json' || path === '/docs' || path.startsWith('/docs/')) return protectDocs;
    return false;
  };

  app.addHook('onRequest', async (request) => {
    if (!needsToken(request)) return;
    const result = await authenticator.authenticate(request.headers.authorization);
    if (!result.ok) {
      const challenge = request.headers.authorization === undefined ? REALM : `${REALM}, error="${result.error}"`;
      throw new ProblemError('unauthorized', result.detail, {}, { 'www-authenticate': challenge });
    }
    request.grant = result.grant;
    const header = request.headers.authorization;
    request.grantStillValid = async () => (await authenticator.authenticate(header)).ok;
  });

  app.addHook('preHandler', async (request) => {
    const access = request.routeOptions.config.access;
    const grant = request.grant;
    if (access === undefined || grant === null) return;
    const namespace = namespaceOf(request);
    if (!mayUseNamespace(grant, namespace)) throw forbidden(`This token may not use the namespace "${namespace}".`);
    const rule: AccessRule = ACCESS[access];
    if (!rule.roles.includes(grant.role)) throw forbidden(`A ${grant.role} token may not ${rule.what}; roles that may: ${rule.roles.join(', ')}.`);
    if (grant.role !== 'conductor') return;
    const holder = holderNamed(request, rule);
    if (holder === null) throw forbidden('A conductor token lists only its own leases: name one of its holders with holder=.');
    if (holder !== undefined && !mayActAs(grant, holder)) throw forbidden(`This token may act as holders ${grant.holders ?? '(none)'}, not as ${holder}.`);
    if (access === 'claim') {
      const allowed = claimableKinds(grant);
      const asked = (request.body as { kinds?: string[] }).kinds;
      const refused = allowed && asked?.filter((kind) => !allowed.includes(kind));
      if (refused && refused.length > 0) throw forbidden(`This token may claim orphans of kinds ${allowed.join(', ')}, not ${refused.join(', ')}.`);
    }
  });

  app.addHook('preSerialization', async (request, _reply, payload) => {
    const grant = request.grant;
    if (grant?.role !== 'reader' || grant.payload === true) return payload;
    return withoutPayloads(payload);
  });
}

/**
 * Throws 401 when the request's token no longer grants what it did when the request began
 * (revoked, or expired since): for what waits, such as an acquire with waitMs.
 */
export async function ensureGrantStillValid(request: FastifyRequest): Promise<void> {
  if (await request.grantStillValid()) return;
  throw new ProblemError('unauthorized', 'The token was revoked or expired while this request waited; nothing was granted.', {}, {
    'www-authenticate': `${REALM}, error="invalid_token"`,
  });
}

/** The holder a conductor's request names (undefined: none to check here; null: a listing that names none). */
function holderNamed(request: FastifyRequest, rule: AccessRule): string | null | undefined {
  switch (rule.holder) {
    case 'body':
      return (request.body as { holder: string }).holder;
    case 'params':
      return (request.params as { holder: string }).holder;
    case 'query':
      return (request.query as { holder?: string }).holder ?? null;
    default:
      return undefined;
  }
}

/** The path of a URL, percent-decoded ("/v1" for one that cannot be: it is refused as a /v1 path). */
function decodedPath(url: string): string {
  try {
    return decodeURIComponent(url.split('?', 1)[0]!);
  } catch {
    return '/v1';
  }
}

function forbidden(detail: string): ProblemError {
  return new ProblemError('forbidden', detail);
}

/**
 * The holders the caller may act as, for the scripts that check a lease's holder before
 * changing it: null for anyone (an operator, or access control off); "" matches no holder.
 */
export function holdersOf(request: FastifyRequest): string | null {
  const grant = request.grant;
  if (grant === null || grant.role !== 'conductor') return null;
  return grant.holders ?? '';
}

/** The orphan kinds a claim looks at: those asked for, or, for a conductor limited to some kinds, those. */
export function claimKinds(request: FastifyRequest, asked: string[] | undefined): string[] | null {
  const allowed = request.grant === null ? null : claimableKinds(request.grant);
  return asked ?? allowed;
}

/** The 429 of an acquire or claim past the token's quota of active leases. */
export function overQuota(quota: number): ProblemError {
  return new ProblemError(
    'rate_limited',
    `This token holds ${quota} active leases in this namespace, as many as it may (LEASES_MAX_PER_TOKEN); release one first.`,
    {},
    { 'retry-after': '1' },
  );
}

/** The token id that makes the request, when access control names one. */
export function actorOf(request: FastifyRequest): string | null {
  return request.grant?.actor ?? null;
}

/** A response with every payload and progress set to null (for readers not granted them). */
function withoutPayloads(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutPayloads);
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) copy[key] = key === 'payload' || key === 'progress' ? null : withoutPayloads(field);
  return copy;
}
