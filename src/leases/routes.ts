// /v1/leases and /v1/holders (and the same under /v1/namespaces/{namespace}, see http/namespaced.ts): acquire, renew (the heartbeat), release, revoke, read, list.
// Handlers validate what a schema cannot say (overlaps, JSON sizes), make one store call,
// and map its answer onto the contract's statuses.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.js';
import { ProblemError, type ProblemCode } from '../errors.js';
import type { AcquireResult, LeaseChange, RenewResult } from '../store/lease-store.js';
import type { Namespaces } from '../namespaces/namespaces.js';
import { namespaceOf, storeOf, writableStoreOf } from '../namespaces/routing.js';
import { ensureGrantStillValid, holdersOf, overQuota } from '../auth/access-control.js';
import type { LeaseRecord, Outcome } from '../store/records.js';
import type { ResourceClaim } from '../store/resource-codec.js';
import { modeLabel, type AcquireOutcome, type ReleaseOutcome, type RenewOutcome, type ServiceMetrics } from '../observability/metrics.js';
import { decodeCursor, encodeCursor } from '../http/cursor.js';
import { acquireFingerprint } from './fingerprint.js';
import { newLeaseId } from '../http/lease-ids.js';
import { jsonWithinLimits } from './json-limits.js';
import { disconnectSignal } from '../http/disconnect.js';
import type { Notifications } from '../notify/notifications.js';
import type { Slots } from '../http/slots.js';
import { waiterOf } from '../notify/waiter-slots.js';
import { findOverlap } from '../http/paths.js';
import { leaseView } from '../http/present-lease.js';
import { holdsResources, tombstoneView } from './present.js';
import { acquireWaiting } from './wait.js';
import { LEASE_EXAMPLE } from '../http/examples.js';
import { ref, refResponse } from '../http/schemas/components.js';
import { LeaseId } from '../http/schemas/ids.js';
import { LeaseView } from '../http/schemas/lease-view.js';
import { Page, pageSize } from '../http/schemas/paging.js';
import { Timestamp } from '../http/schemas/values.js';
import { HOLDER_RENEW_EXAMPLE } from './examples.js';
import { HolderParams, LeaseIdParams, leaseProblemResponses, requestSchemas, TombstoneView } from './schemas.js';

export interface LeaseRoutesOptions {
  config: Config;
  namespaces: Namespaces;
  notifications: Notifications;
  metrics: ServiceMetrics;
  /** Requests that wait (waitMs), per holder and in all. */
  waiters: Slots;
}

const CONFLICTS_REPORTED = 10;
const GONE_CODE: Record<string, ProblemCode> = {
  released: 'lease_released',
  expired: 'lease_expired',
  revoked: 'lease_revoked',
};

export const leaseRoutes: FastifyPluginAsync<LeaseRoutesOptions> = async (fastify, { config, namespaces, notifications, metrics, waiters }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const ticketGraceMs = config.REDIS_COMMAND_TIMEOUT_MS + 1000;
  const schemas = requestSchemas(config);
  const tags = ['leases'];

  app.post(
    '/leases',
    {
      config: { access: 'acquire' },
      schema: {
        tags,
        summary: 'Acquire a lease on one or more resources',
        description:
          'Grants all resources together or none. A lease on a path covers every path below it; two leases conflict when one ' +
          'covers the other and either is exclusive. Answers 201 with a new lease, 200 with the same lease for a retried requestId, ' +
          'or 409 with the conflicting leases. A holder must treat the lease as lost ttlMs after it sent this request. ' +
          'With waitMs, a conflicting request waits for the conflict to clear (release, expiry, orphan resolution), woken by Redis ' +
          'pub/sub rather than polling, and answers 201, or 409 at the deadline. Waiting requests on overlapping resources are served in ' +
          'arrival order on every replica: a request, waiting or not, never passes an earlier waiting one it overlaps (its conflict ' +
          'shows state waiting), so a stream of shared requests cannot starve a waiting exclusive one. A waiter whose client ' +
          'disconnects leaves the queue; one whose replica dies stops blocking others when its waitMs has passed.',
        body: schemas.AcquireBody,
        response: {
          201: refResponse(LeaseView, { description: 'Granted: a new lease.' }),
          200: refResponse(LeaseView, { description: 'The lease this holder\'s requestId was already granted (a retried request); nothing new was granted.' }),
          ...leaseProblemResponses(400, 409, 413, 415, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const namespace = namespaceOf(request);
      const resources = body.resources as ResourceClaim[];
      const overlap = findOverlap(resources.map((r) => r.path));
      if (overlap) {
        throw new ProblemError('overlapping_resources', `"${overlap[0]}" and "${overlap[1]}" cover each other; request the covering one only.`);
      }
      const payload = body.action?.payload ?? null;
      const payloadJson = payload === null ? null : jsonWithinLimits(payload, config.PAYLOAD_LIMIT_BYTES, 'action.payload');
      const action = body.action ? { kind: body.action.kind, maxAttempts: body.action.maxAttempts ?? config.MAX_ATTEMPTS_DEFAULT } : null;
      const limits = {
        ttlMs: body.ttlMs ?? config.TTL_DEFAULT_MS,
        maxHoldMs: body.maxHoldMs ?? config.MAX_HOLD_DEFAULT_MS,
        lockDelayMs: body.lockDelayMs ?? 0,
      };
      const input = {
        id: newLeaseId(),
        holder: body.holder,
        resources,
        ...limits,
        action: action && { ...action, payloadJson },
        requestId: body.requestId ?? null,
        // Only a requestId's retry is compared with the request it repeats.
        fingerprint:
          body.requestId === undefined ? '' : acquireFingerprint({ resources, action: action && { ...action, payload, attempt: 1 }, ...limits }),
        conflictLimit: CONFLICTS_REPORTED,
      };
      const waitMs = body.waitMs ?? 0;
      const mode = modeLabel(resources);
      let outcome: AcquireOutcome = 'error';
      let queued = false;
      let result: AcquireResult;
      const store = await writableStoreOf(namespaces, request);
      const freeSlot = waitMs > 0 ? waiters.take(waiterOf(request, namespace, body.holder)) : () => {};
      try {
        ({ result, queued } =
          waitMs > 0
            ? await acquireWaiting(
                { store, namespace, notifications, ticketGraceMs, ensureStillAllowed: () => ensureGrantStillValid(request) },
                input,
                waitMs,
                disconnectSignal(reply),
              )
            : { result: await store.acquire({ ...input, wait: null }), queued: false });
        outcome = acquireOutcome(result, queued);
      } finally {
        freeSlot();
        metrics.acquires.inc({ outcome, mode });
        metrics.acquireDuration.observe({ waited: String(queued) }, reply.elapsedTime / 1000);
      }
      switch (result.kind) {
        case 'granted':
          request.log.info({ leaseId: result.lease.id, holder: body.holder }, 'lease granted');
          return reply.code(201).send(leaseView(result.lease, result.now));
        case 'existing':
          return reply.code(200).send(leaseView(result.lease, result.now));
        case 'conflict':
        case 'waiting': // only when the client left mid-wait: the answer goes nowhere
          request.log.debug({ holder: body.holder, conflicts: result.conflicts.length, queued }, 'acquire conflicts');
          throw new ProblemError('conflict', describeConflict(result.conflicts.length), { conflicts: result.conflicts });
        case 'over_quota':
          throw overQuota(config.LEASES_MAX_PER_TOKEN);
        case 'undecided':
          throw new ProblemError(
            'backend_unavailable',
            'Nothing was granted: more leases than one request reads lie below a requested path, ended and waiting for the reaper to settle them. Retry after Retry-After seconds.',
            {},
            { 'retry-after': '1' },
          );
        case 'request_id_reused':
          throw new ProblemError(
            'request_id_reused',
            `requestId "${body.requestId}" of holder "${body.holder}" already granted lease ${result.leaseId} for other resources, another action or other limits.`,
          );
      }
    },
  );

  app.post(
    '/leases/:id/renew',
    {
      config: { access: 'renew' },
      schema: {
        tags,
        summary: 'Renew a lease (the heartbeat)',
        description:
          'Extends the lease to now + ttlMs (never past holdDeadline) and stores the progress checkpoint. ' +
          'A 410 means the lease is lost: stop the work that needs it, its fencing token is stale.',
        params: LeaseIdParams,
        body: schemas.RenewBody,
        response: { 200: refResponse(LeaseView), ...leaseProblemResponses(400, 404, 410, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { progress, ttlMs } = request.body;
      const progressJson = progress === undefined ? null : jsonWithinLimits(progress, config.PROGRESS_LIMIT_BYTES, 'progress');
      const result = await counted(metrics.renewals, renewOutcome, () => store.renew(request.params.id, ttlMs ?? null, progressJson, holdersOf(request)));
      if (result.kind === 'ended') request.log.info({ leaseId: request.params.id, holder: result.lease.holder, state: result.lease.state }, 'renew of a lost lease');
      if (result.kind === 'no_action') {
        throw new ProblemError('invalid_request', 'progress is kept only for leases that carry an action; this one has none.');
      }
      const lease = present(result, request.params.id);
      return reply.send(leaseView(lease, result.now));
    },
  );

  app.post(
    '/leases/:id/release',
    {
      config: { access: 'release' },
      schema: {
        tags,
        summary: 'Release a lease',
        description:
          'completed (default) and failed free the resources at once; abandoned turns a lease with an action into an orphan. ' +
          'Releasing again with the same outcome answers the same tombstone; a lease that ended otherwise answers 410.',
        params: LeaseIdParams,
        body: schemas.ReleaseBody,
        response: { 200: refResponse(TombstoneView), ...leaseProblemResponses(400, 404, 410, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const asked = request.body.outcome ?? 'completed';
      const result = await counted(metrics.releases, (r) => releaseOutcome(r, asked), () => store.release(request.params.id, asked, holdersOf(request)));
      const lease = present(result, request.params.id);
      request.log.info({ leaseId: lease.id, holder: lease.holder, outcome: lease.outcome }, 'lease released');
      return reply.send(tombstoneView(lease));
    },
  );

  app.get(
    '/leases/:id',
    {
      config: { access: 'read-lease' },
      schema: {
        tags,
        summary: 'Read a lease',
        description: 'An active or orphaned lease answers 200; an ended one answers 410 with its tombstone for at least an hour.',
        params: LeaseIdParams,
        response: { 200: refResponse(LeaseView), ...leaseProblemResponses(400, 404, 410, 503) },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const result = await store.get(request.params.id, holdersOf(request));
      if (result.kind === 'done' && !holdsResources(result.lease)) throw gone(result.lease);
      return reply.send(leaseView(present(result, request.params.id), result.now));
    },
  );

  app.delete(
    '/leases/:id',
    {
      config: { access: 'revoke' },
      schema: {
        tags,
        summary: 'Revoke a lease (an operator\'s force-end)',
        description:
          'Ends an active lease now. With an action it becomes an orphan; without one its resources stay blocked for its lockDelayMs. ' +
          'A lease that has already ended answers 410. It takes no body; one that is sent is still read as JSON (400, 413 or 415 ' +
          'when it is not), and otherwise ignored.',
        params: LeaseIdParams,
        response: { 200: refResponse(TombstoneView), ...leaseProblemResponses(400, 404, 410, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const result = await store.revoke(request.params.id);
      const lease = present(result, request.params.id);
      request.log.warn({ leaseId: lease.id, holder: lease.holder }, 'lease revoked');
      return reply.send(tombstoneView(lease));
    },
  );

  app.get(
    '/leases',
    {
      config: { access: 'list-leases' },
      schema: {
        tags,
        summary: 'List leases that hold resources',
        description:
          'Active and orphaned leases in grant order, filtered by holder, path prefix (the path itself or anything below it) and state. ' +
          'A page may hold fewer than limit items when filters match little; follow nextCursor until it is null. ' +
          'In Swagger UI, Try it out fills every filter with its example: clear those you do not want.',
        querystring: schemas.ListQuery,
        response: {
          200: Page(ref(LeaseView), 'A page of leases, in grant order.', LEASE_EXAMPLE),
          ...leaseProblemResponses(400, 503),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { holder, prefix, state, limit, cursor, include } = request.query;
      const size = pageSize(config, limit, include);
      const page = await store.list({
        holder: holder ?? null,
        prefix: prefix ?? null,
        state: state ?? null,
        afterToken: cursor === undefined ? null : decodeCursor(cursor),
        limit: size,
        // Entries a page looks at, matching or not: its cost stays near that of a full page.
        scanBudget: size + 200,
        withPayload: include === 'payload',
      });
      return reply.send({
        items: page.items.map((lease) => leaseView(lease, page.now)),
        nextCursor: page.nextToken === null ? null : encodeCursor(page.nextToken),
      });
    },
  );

  app.post(
    '/holders/:holder/renew',
    {
      config: { access: 'renew-holder' },
      schema: {
        tags,
        summary: 'Renew every active lease of a holder',
        description:
          `One heartbeat for a conductor that holds many leases, in grant order, at most ${config.HOLDER_RENEW_MAX} per call (HOLDER_RENEW_MAX): ` +
          'when the holder has more, nextCursor is set and remaining says how many of its leases come after; send nextCursor as cursor to renew ' +
          'the rest. Leases that have already ended are not renewed and not listed. The renewed event names at most the first 100 paths.',
        params: HolderParams,
        body: schemas.HolderRenewBody,
        response: {
          200: Type.Object(
            {
              renewed: Type.Array(
                Type.Object({ id: ref(LeaseId), expiresAt: Timestamp('Its new expiresAt (Redis clock).') }),
                { description: 'The leases renewed: the holder\'s active leases (of this call\'s share).' },
              ),
              nextCursor: Type.Union([Type.String(), Type.Null()], {
                description: 'Pass as cursor to renew the holder\'s leases after these; null when every lease of the holder was looked at.',
              }),
              remaining: Type.Integer({ description: 'How many of the holder\'s leases (active or orphaned) come after nextCursor; 0 when it is null.' }),
            },
            { description: 'What was renewed.', examples: [HOLDER_RENEW_EXAMPLE] },
          ),
          ...leaseProblemResponses(400, 413, 415, 503),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      // One renewal counted per lease renewed.
      const { ttlMs, cursor } = request.body;
      const result = await counted(
        metrics.renewals,
        () => 'renewed' as const,
        () => store.renewHolder(request.params.holder, ttlMs ?? null, cursor === undefined ? null : decodeCursor(cursor), config.HOLDER_RENEW_MAX),
        (r) => r.renewed.length,
      );
      return reply.send({
        renewed: result.renewed.map(({ id, expiresAt }) => ({ id, expiresAt: new Date(expiresAt).toISOString() })),
        nextCursor: result.nextToken === null ? null : encodeCursor(result.nextToken),
        remaining: result.remaining,
      });
    },
  );
};

function acquireOutcome(result: AcquireResult, queued: boolean): AcquireOutcome {
  switch (result.kind) {
    case 'granted':
      return queued ? 'waited' : 'granted';
    case 'existing':
      return 'granted';
    case 'conflict':
    case 'waiting':
      return 'conflict';
    case 'request_id_reused':
    case 'over_quota':
    case 'undecided':
      return 'error';
  }
}

function renewOutcome(result: RenewResult): RenewOutcome {
  return ({ done: 'renewed', ended: 'lost', missing: 'not_found', forbidden: 'forbidden', no_action: 'error' } as const)[result.kind];
}

function releaseOutcome(result: LeaseChange, asked: Outcome): ReleaseOutcome {
  return result.kind === 'done' ? asked : result.kind === 'ended' ? 'lost' : result.kind === 'forbidden' ? 'forbidden' : 'not_found';
}

/** Runs a store call and counts its outcome (error, once, when it throws). */
async function counted<T, O extends string>(
  counter: { inc(labels: { outcome: O | 'error' }, value?: number): void },
  outcomeOf: (result: T) => O,
  call: () => Promise<T>,
  amountOf: (result: T) => number = () => 1,
): Promise<T> {
  let result: T;
  try {
    result = await call();
  } catch (error) {
    counter.inc({ outcome: 'error' });
    throw error;
  }
  counter.inc({ outcome: outcomeOf(result) }, amountOf(result));
  return result;
}

/** The lease of a store answer, or the 404/410 problem it stands for. */
function present(result: LeaseChange, id: string): LeaseRecord {
  if (result.kind === 'missing') throw new ProblemError('lease_not_found', `No lease ${id}, and no tombstone of one (tombstones are kept an hour).`);
  if (result.kind === 'forbidden') throw new ProblemError('forbidden', `Lease ${id} is not held by a holder this token may act as; nothing changed.`);
  if (result.kind === 'ended') throw gone(result.lease);
  return result.lease;
}

function gone(lease: LeaseRecord): ProblemError {
  const tombstone = tombstoneView(lease);
  const code = GONE_CODE[tombstone.state] ?? 'lease_expired';
  return new ProblemError(code, `Lease ${lease.id} ${tombstone.state} at ${tombstone.endedAt}; its holder has lost it.`, tombstone);
}

function describeConflict(count: number): string {
  return `${count === 1 ? 'A lease holds' : 'Leases hold'} a resource of this request; see conflicts.`;
}
