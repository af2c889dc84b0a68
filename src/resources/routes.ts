// Views by resource rather than by lease: what holds a path, and the fencing check that
// resource servers use to refuse writes from holders that lost their lease.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.js';
import type { LeaseStore } from '../store/lease-store.js';
import { leaseView } from '../leases/present.js';
import { FENCING_EXAMPLE, RESOURCE_EXAMPLE } from '../http/examples.js';
import { Holder, LeaseId, LeaseView, problemResponses, requestSchemas, ResourcePath } from '../leases/schemas.js';

export interface ResourceRoutesOptions {
  config: Config;
  store: LeaseStore;
}

const BELOW_LISTED = 100;

export const resourceRoutes: FastifyPluginAsync<ResourceRoutesOptions> = async (fastify, { config, store }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { FencingCheckBody } = requestSchemas(config);

  app.get(
    '/v1/resources/*',
    {
      schema: {
        tags: ['resources'],
        summary: 'What holds a resource path',
        description:
          'coveredBy: the active and orphaned leases on the path or an ancestor of it. below: the leases strictly below it ' +
          `(the first ${BELOW_LISTED}) and how many there are; the count also includes ended leases still in their lock delay. ` +
          'The path may be given with its slashes or URL-encoded.',
        params: Type.Object({ '*': { ...ResourcePath, examples: ['instances/i-42/volumes/v-7'] } }),
        response: {
          200: Type.Object(
            {
              path: ResourcePath,
              coveredBy: Type.Array(LeaseView, { description: 'Leases on this path or an ancestor: whoever holds it now.' }),
              below: Type.Object(
                {
                  count: Type.Integer({ description: 'How many leases hold something below the path.' }),
                  items: Type.Array(LeaseView, { description: `The first ${BELOW_LISTED} of them, in grant order.` }),
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
      const path = request.params['*'];
      const view = await store.resource(path, BELOW_LISTED);
      return reply.send({
        path,
        coveredBy: view.coveredBy.map((lease) => leaseView(lease, view.now)),
        below: { count: view.belowCount, items: view.below.map((lease) => leaseView(lease, view.now)) },
      });
    },
  );

  app.post(
    '/v1/fencing/check',
    {
      schema: {
        tags: ['resources'],
        summary: 'Check a fencing token (for resource servers)',
        description:
          'valid is true exactly when an active lease covering path carries fencingToken right now; current lists the active leases ' +
          'covering path. Like Chubby\'s CheckSequencer: refuse a write whose token is not valid.',
        body: FencingCheckBody,
        response: {
          200: Type.Object(
            {
              valid: Type.Boolean({ description: 'true: accept the write. false: refuse it, the writer\'s lease is gone or was never on this path.' }),
              current: Type.Array(
                Type.Object({
                  leaseId: LeaseId,
                  holder: Holder,
                  fencingToken: Type.Integer({ description: 'The token a valid writer presents.' }),
                  state: Type.Literal('active'),
                }),
                { description: 'The active leases covering the path now.' },
              ),
            },
            { description: 'Whether the token may write to the path now.', examples: [FENCING_EXAMPLE] },
          ),
          ...problemResponses(400, 415, 503),
        },
      },
    },
    async (request, reply) => {
      const { path, fencingToken } = request.body;
      const result = await store.checkFencing(path, String(fencingToken));
      return reply.send({
        valid: result.valid,
        current: result.current.map((lease) => ({ ...lease, fencingToken: Number(lease.fencingToken), state: 'active' as const })),
      });
    },
  );
};
