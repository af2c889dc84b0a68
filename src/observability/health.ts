// /healthz says the process answers; /readyz says it can serve: Redis answers within the
// command timeout and holds our Lua functions library (it loads it again when Redis lost it). In
// Cluster mode a shard that is down does not make the replica unready: every replica sees
// the same cluster, and taking them all out of the load balancer would stop the namespaces
// of the healthy shards too. The answer names the primaries that did not answer.
import type { FastifyPluginAsync } from 'fastify';
import type { RedisClient } from '../redis/connection.js';
import { Type } from '@sinclair/typebox';
import { ensureLibraryLoaded, type LuaLibrary } from '../store/scripts.js';
import { problem } from '../errors.js';
import { sendProblem } from '../http/problems.js';
import { problemResponse } from '../http/schemas/problems.js';

export interface HealthOptions {
  redis: RedisClient;
  library: LuaLibrary;
}

const Status = (status: string, description: string) =>
  Type.Object({ status: Type.Literal(status) }, { description, examples: [{ status }] });

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { redis, library }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'The process is up',
        description: 'Liveness: answers 200 while the process serves HTTP, whether or not Redis answers. Restart the process when it does not.',
        response: { 200: Status('ok', 'The process answers.') },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Redis is reachable and holds the Lua library',
        description:
          'Readiness: 200 when Redis answers within REDIS_COMMAND_TIMEOUT_MS and holds the service\'s Lua functions library (it is loaded ' +
          'again when Redis lacks it: after a FUNCTION FLUSH, on a new primary); 503 otherwise. Take the replica out of a load balancer while it answers 503. In Cluster mode, 200 while ' +
          'any primary answers (each is given the library), naming those that do not in unreachablePrimaries.',
        response: {
          200: Type.Object(
            {
              status: Type.Literal('ready'),
              unreachablePrimaries: Type.Optional(
                Type.Array(Type.String(), {
                  description: 'Cluster mode: primaries of the slot map that did not answer (their namespaces answer 503 until a replica takes over).',
                }),
              ),
            },
            { description: 'Redis answers and holds the library (in Cluster mode: at least one primary does).', examples: [{ status: 'ready' }] },
          ),
          503: problemResponse('backend_unavailable: not ready to serve.', problem('backend_unavailable', 'Not ready: Redis connection is reconnecting')),
        },
      },
    },
    async (request, reply) => {
      try {
        if (redis.status !== 'ready') throw new Error(`Redis connection is ${redis.status}`);
        const { unreachable } = await ensureLibraryLoaded(redis, library);
        return unreachable.length > 0 ? { status: 'ready', unreachablePrimaries: unreachable } : { status: 'ready' };
      } catch (error) {
        return sendProblem(reply, problem('backend_unavailable', `Not ready: ${(error as Error).message}`), { 'retry-after': '1' });
      }
    },
  );
};
