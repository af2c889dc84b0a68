// /v1/orphans: the queue of actions whose holders died, gave up or were revoked. Conductors
// claim them (with the dead holder's last progress); operators list and resolve them.
import { performance } from 'node:perf_hooks';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';
import { disconnectSignal } from '../http/disconnect.js';
import { decodeCursor, encodeCursor } from '../http/cursor.js';
import { leaseView } from '../http/present-lease.js';
import { ref, refResponse } from '../http/schemas/components.js';
import { Page, pageSize } from '../http/schemas/paging.js';
import { problemResponse, problemResponses } from '../http/schemas/problems.js';
import { ORPHAN_EXAMPLE, ORPHAN_PROBLEM_EXAMPLES, RESOLVED_ORPHAN_EXAMPLE } from './examples.js';
import type { Notifications } from '../notify/notifications.js';
import type { Slots } from '../http/slots.js';
import { waiterOf } from '../notify/waiter-slots.js';
import type { Namespaces } from '../namespaces/namespaces.js';
import { namespaceOf, storeOf } from '../namespaces/routing.js';
import { claimKinds, overQuota } from '../auth/access-control.js';
import { orphanView } from './present.js';
import { ClaimView, OrphanIdParams, orphanRequestSchemas, OrphanView } from './schemas.js';
import { newLeaseId } from '../http/lease-ids.js';

export interface OrphanRoutesOptions {
  config: Config;
  namespaces: Namespaces;
  notifications: Notifications;
  /** Requests that wait (waitMs), per holder and in all. */
  waiters: Slots;
}

const orphanNotFoundResponse = problemResponse('orphan_not_found: no such orphan, or it was resolved more than TOMBSTONE_TTL_MS ago.', ORPHAN_PROBLEM_EXAMPLES[404]);

export const orphanRoutes: FastifyPluginAsync<OrphanRoutesOptions> = async (fastify, { config, namespaces, notifications, waiters }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { ClaimBody, ResolveBody, OrphanListQuery } = orphanRequestSchemas(config);
  const tags = ['orphans'];

  app.post(
    '/orphans/claim',
    {
      config: { access: 'claim' },
      schema: {
        tags,
        summary: 'Claim the oldest pending orphan',
        description:
          'Hands the oldest pending orphan (of the given kinds; oldest = first orphaned) to exactly one caller, with a new active lease on ' +
          'the same resources: a greater fencing token, action.attempt increased by one, and the dead holder\'s last progress. ' +
          'The resources are never free in between. If the claim\'s lease expires, is abandoned or revoked, the orphan comes back ' +
          'pending with the next attempt (or goes to dead_letter after maxAttempts); released completed or failed, it is resolved. ' +
          'Answers 204 when none is pending within waitMs. A claim whose answer is lost costs an attempt: its lease expires unrenewed.',
        body: ClaimBody,
        response: {
          200: ClaimView,
          204: Type.Null({ description: 'No pending orphan (of those kinds) within waitMs.' }),
          ...problemResponses(400, 413, 415, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { holder, ttlMs, waitMs } = request.body;
      const kinds = claimKinds(request, request.body.kinds);
      const deadline = performance.now() + (waitMs ?? 0);
      const gone = disconnectSignal(reply);
      const namespace = namespaceOf(request);
      const freeSlot = waitMs ? waiters.take(waiterOf(request, namespace, holder)) : () => {};
      // Listening starts before the first look, so an orphan published while Redis' answer
      // is on its way back still wakes us. A claim that does not wait listens to nothing.
      const watch = waitMs
        ? notifications.watch(namespace, (wakeup) => wakeup.type === 'pending' && wakeup.namespace === namespace && (!kinds || kinds.includes(wakeup.kind)))
        : null;
      try {
        await watch?.subscribedWithin(waitMs ?? 0, gone);
        // The client left while the subscription was being confirmed (up to seconds when
        // Redis is slow): claim nothing for it.
        if (gone.aborted) return reply.code(204).send(null);
        for (;;) {
          const result = await store.claim({
            id: newLeaseId(),
            holder,
            ttlMs: ttlMs ?? config.TTL_DEFAULT_MS,
            maxHoldMs: config.MAX_HOLD_DEFAULT_MS,
            kinds: kinds ?? null,
          });
          if (result.kind === 'over_quota') throw overQuota(config.LEASES_MAX_PER_TOKEN);
          if (result.kind === 'claimed' && gone.aborted) {
            // Claimed in the very moment the client left: nobody will work on it. Abandoned at
            // once, it is pending again now rather than when the lease's ttlMs runs out (the
            // attempt stays counted, as for any claim whose answer is lost).
            await store.release(result.lease.id, 'abandoned').catch(() => undefined);
            return reply.code(204).send(null);
          }
          if (result.kind === 'claimed') {
            request.log.info(
              { orphanId: result.orphan.id, leaseId: result.lease.id, holder, attempt: result.lease.action?.attempt },
              'orphan claimed',
            );
            return reply.send({ orphan: orphanView(result.orphan), lease: leaseView(result.lease, result.now) });
          }
          const left = deadline - performance.now();
          if (!watch || left <= 0 || gone.aborted || notifications.isClosed) return reply.code(204).send(null);
          // Woken by a newly pending orphan of these kinds (the reaper publishes expired
          // claims too), or at the deadline: no polling.
          await watch.wait(left, gone);
          // Woken because the client left: claim nothing for it.
          if (gone.aborted) return reply.code(204).send(null);
        }
      } finally {
        watch?.close();
        freeSlot();
      }
    },
  );

  app.post(
    '/orphans/:id/resolve',
    {
      config: { access: 'resolve' },
      schema: {
        tags,
        summary: 'Resolve an orphan (an operator gives the action up)',
        description:
          'A pending or dead_letter orphan becomes resolved and its resources are freed at once. Resolving it again the same way answers ' +
          'the same orphan (retries are safe). 409 orphan_claimed: a conductor is working on it (revoke its lease first, and it comes back ' +
          'pending); 409 orphan_resolved: it was already resolved otherwise.',
        params: OrphanIdParams,
        body: ResolveBody,
        response: {
          200: refResponse(OrphanView, { examples: [RESOLVED_ORPHAN_EXAMPLE] }),
          ...problemResponses(400, 413, 415, 503),
          404: orphanNotFoundResponse,
          409: problemResponse(
            'orphan_claimed: a conductor is working on it (revoke its lease first); orphan_resolved: it was resolved otherwise. The orphan is in `orphan`.',
            ORPHAN_PROBLEM_EXAMPLES[409],
          ),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { id } = request.params;
      const result = await store.resolve(id, request.body.resolution);
      switch (result.kind) {
        case 'missing':
          throw orphanNotFound(id);
        case 'claimed':
          throw new ProblemError(
            'orphan_claimed',
            `Orphan ${id} is claimed by ${result.orphan.claimedBy} (lease ${result.orphan.claimedLeaseId}); revoke that lease first.`,
            { orphan: orphanView(result.orphan) },
          );
        case 'already_resolved':
          throw new ProblemError('orphan_resolved', `Orphan ${id} was already resolved (${result.orphan.resolution}).`, {
            orphan: orphanView(result.orphan),
          });
        case 'resolved':
          request.log.warn({ orphanId: id, resolution: request.body.resolution }, 'orphan resolved');
          return reply.send(orphanView(result.orphan));
      }
    },
  );

  app.get(
    '/orphans/:id',
    {
      config: { access: 'read-orphans' },
      schema: {
        tags,
        summary: 'Read an orphan',
        description: 'Pending, claimed and dead_letter orphans, and resolved ones for TOMBSTONE_TTL_MS after they were resolved.',
        params: OrphanIdParams,
        response: { 200: refResponse(OrphanView), ...problemResponses(400, 503), 404: orphanNotFoundResponse },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { orphan } = await store.getOrphan(request.params.id);
      if (!orphan) throw orphanNotFound(request.params.id);
      return reply.send(orphanView(orphan));
    },
  );

  app.get(
    '/orphans',
    {
      config: { access: 'read-orphans' },
      schema: {
        tags,
        summary: 'List orphans',
        description:
          'Orphans in the order they were first orphaned, filtered by action kind and state. A page may hold fewer than limit items ' +
          'when filters match little; follow nextCursor until it is null. In Swagger UI, Try it out fills every filter with its ' +
          'example: clear those you do not want.',
        querystring: OrphanListQuery,
        response: {
          200: Page(ref(OrphanView), 'A page of orphans, oldest first.', ORPHAN_EXAMPLE),
          ...problemResponses(400, 503),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { kind, state, limit, cursor, include } = request.query;
      const size = pageSize(config, limit, include);
      const page = await store.listOrphans({
        kind: kind ?? null,
        state: state ?? null,
        afterSeq: cursor === undefined ? null : decodeCursor(cursor),
        limit: size,
        // Entries a page looks at, matching or not: its cost stays near that of a full page.
        scanBudget: size + 200,
        withPayload: include === 'payload',
      });
      return reply.send({
        items: page.items.map(orphanView),
        nextCursor: page.nextSeq === null ? null : encodeCursor(page.nextSeq),
      });
    },
  );
};

function orphanNotFound(id: string): ProblemError {
  return new ProblemError('orphan_not_found', `No orphan ${id} (resolved orphans are kept an hour).`);
}
