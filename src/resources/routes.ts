// Views by resource rather than by lease: what holds a path, and the fencing check that
// resource servers use to refuse writes from holders that lost their lease.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Namespaces } from '../namespaces/namespaces.js';
import { storeOf } from '../namespaces/routing.js';
import { leaseView } from '../http/present-lease.js';
import { ref } from '../http/schemas/components.js';
import { Holder, LeaseId } from '../http/schemas/ids.js';
import { LeaseView } from '../http/schemas/lease-view.js';
import { IncludePayload } from '../http/schemas/paging.js';
import { ResourcePath } from '../http/schemas/paths.js';
import { problemResponses } from '../http/schemas/problems.js';
import { FENCING_EXAMPLE, RESOURCE_EXAMPLE } from './examples.js';
import { FencingCheckBody } from './schemas.js';

export interface ResourceRoutesOptions {
  namespaces: Namespaces;
}

/** Leases listed covering a path, and below it; and current leases in a fencing check. */
const LISTED = 100;
/** Index entries one resource view reads at most (lock-delayed tombstones are read past). */
const RESOURCE_READ_BUDGET = 1000;

export const resourceRoutes: FastifyPluginAsync<ResourceRoutesOptions> = async (fastify, { namespaces }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/resources/*',
    {
      config: { access: 'read-resource' },
      schema: {
        tags: ['resources'],
        summary: 'What holds a resource path',
        description:
          `coveredBy: the active and orphaned leases on the path or an ancestor of it (the first ${LISTED}), and coveredByCount, how many ` +
          `there are. below: the leases strictly below it (the first ${LISTED}) and how many there are. Both counts also include ended ` +
          'leases still in their lock delay. Below a path of four or more segments the count is exact up to 100 leases of each mode; ' +
          'past that, the rest are counted per resource as the index holds them, ended leases the reaper has not settled yet included ' +
          '(an upper bound). Each list also stops once its records pass 128 KiB (a page of 256 KiB in all; wide leases, or payloads ' +
          'with include=payload, fill it sooner), so a list shorter than its count was cut: GET /v1/leases?prefix= pages through ' +
          'all the leases at or below a path, and GET /v1/leases/{id} reads one. Payload and ' +
          'progress are null unless include=payload. The path may be given with its slashes or URL-encoded.',
        params: Type.Object({ '*': { ...ResourcePath, examples: ['instances/i-42/volumes/v-7'] } }),
        querystring: Type.Object({ include: Type.Optional(IncludePayload) }, { additionalProperties: false }),
        response: {
          200: Type.Object(
            {
              path: ref(ResourcePath),
              coveredBy: Type.Array(ref(LeaseView), {
                description: `Leases on this path or an ancestor: whoever holds it now (the first ${LISTED}, fewer once their records pass 128 KiB; compare with coveredByCount).`,
              }),
              coveredByCount: Type.Integer({ description: 'How many leases cover the path (lock-delayed tombstones included).' }),
              below: Type.Object(
                {
                  count: Type.Integer({
                    description: 'How many leases hold something below the path (below a path of four or more segments, exact up to 100 per mode, then an upper bound).',
                  }),
                  items: Type.Array(ref(LeaseView), {
                    description: `The first ${LISTED} of them (fewer once their records pass 128 KiB; compare with count): exclusive ones first, then shared ones.`,
                  }),
                },
                { description: 'Leases strictly below the path (a volume of this instance, say).' },
              ),
            },
            { description: 'Who holds the path, from above and from below.', examples: [RESOURCE_EXAMPLE] },
          ),
          ...problemResponses(400, 503),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const path = request.params['*'];
      const view = await store.resource(path, LISTED, request.query.include === 'payload', RESOURCE_READ_BUDGET);
      return reply.send({
        path,
        coveredBy: view.coveredBy.map((lease) => leaseView(lease, view.now)),
        coveredByCount: view.coveringCount,
        below: { count: view.belowCount, items: view.below.map((lease) => leaseView(lease, view.now)) },
      });
    },
  );

  app.post(
    '/fencing/check',
    {
      config: { access: 'check-fencing' },
      schema: {
        tags: ['resources'],
        summary: 'Check a fencing token (for resource servers)',
        description:
          'valid is true exactly when an active lease covering path carries fencingToken right now, however many leases cover it; ' +
          `current lists the active leases covering path (the first ${LISTED}), coveringCount how many leases cover it (active, orphaned ` +
          'or in lock delay). Like Chubby\'s CheckSequencer: refuse a write whose token is not valid.',
        body: FencingCheckBody,
        response: {
          200: Type.Object(
            {
              valid: Type.Boolean({ description: 'true: accept the write. false: refuse it, the writer\'s lease is gone or was never on this path.' }),
              current: Type.Array(
                Type.Object({
                  leaseId: ref(LeaseId),
                  holder: ref(Holder),
                  fencingToken: Type.Integer({ description: 'The token a valid writer presents.' }),
                  state: Type.Literal('active'),
                }),
                { description: `The active leases covering the path now (the first ${LISTED}; GET /v1/resources/{path} shows them all).` },
              ),
              coveringCount: Type.Integer({ description: 'How many leases cover the path: active, orphaned, or ended and still in their lock delay.' }),
            },
            { description: 'Whether the token may write to the path now.', examples: [FENCING_EXAMPLE] },
          ),
          ...problemResponses(400, 413, 415, 503),
        },
      },
    },
    async (request, reply) => {
      const store = storeOf(namespaces, request);
      const { path, fencingToken } = request.body;
      const result = await store.checkFencing(path, String(fencingToken), LISTED);
      return reply.send({
        valid: result.valid,
        current: result.current.map((lease) => ({ ...lease, fencingToken: Number(lease.fencingToken), state: 'active' as const })),
        coveringCount: result.coveringCount,
      });
    },
  );
};
