// Views by resource rather than by lease: what holds a path, and the fencing check that
// resource servers use to refuse writes from holders that lost their lease.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.js';
import type { LeaseStore } from '../store/lease-store.js';
import { leaseView } from '../leases/present.js';
import { LeaseView, problemResponses, requestSchemas, ResourcePath } from '../leases/schemas.js';

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
        params: Type.Object({ '*': ResourcePath }),
        response: {
          200: Type.Object({
            path: ResourcePath,
            coveredBy: Type.Array(LeaseView),
            below: Type.Object({ count: Type.Integer(), items: Type.Array(LeaseView) }),
          }),
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
          200: Type.Object({
            valid: Type.Boolean(),
            current: Type.Array(
              Type.Object({ leaseId: Type.String(), holder: Type.String(), fencingToken: Type.Integer(), state: Type.String() }),
            ),
          }),
          ...problemResponses(400, 415, 503),
        },
      },
    },
    async (request, reply) => {
      const { path, fencingToken } = request.body;
      const result = await store.checkFencing(path, String(fencingToken));
      return reply.send({
        valid: result.valid,
        current: result.current.map((lease) => ({ ...lease, fencingToken: Number(lease.fencingToken), state: 'active' })),
      });
    },
  );
};
