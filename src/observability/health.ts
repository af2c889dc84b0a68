// /healthz says the process answers; /readyz says it can serve: Redis answers within the
// command timeout and holds our scripts (it loads them again after a Redis restart).
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { Type } from '@sinclair/typebox';
import type { LuaScript } from '../store/scripts.js';
import { ensureScriptsLoaded } from '../store/scripts.js';
import { problem } from '../errors.js';
import { sendProblem } from '../http/problems.js';
import { problemResponse } from '../http/schemas/problems.js';

export interface HealthOptions {
  redis: Redis;
  scripts: LuaScript[];
}

const Status = (status: string, description: string) =>
  Type.Object({ status: Type.Literal(status) }, { description, examples: [{ status }] });

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { redis, scripts }) => {
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
        summary: 'Redis is reachable and the scripts are loaded',
        description:
          'Readiness: 200 when Redis answers within REDIS_COMMAND_TIMEOUT_MS and holds the Lua scripts (they are loaded again after a ' +
          'Redis restart); 503 otherwise. Take the replica out of a load balancer while it answers 503.',
        response: {
          200: Status('ready', 'Redis answers and holds the scripts.'),
          503: problemResponse('backend_unavailable: not ready to serve.', problem('backend_unavailable', 'Not ready: Redis connection is reconnecting')),
        },
      },
    },
    async (request, reply) => {
      try {
        if (redis.status !== 'ready') throw new Error(`Redis connection is ${redis.status}`);
        await ensureScriptsLoaded(redis, scripts);
        return { status: 'ready' };
      } catch (error) {
        return sendProblem(reply, problem('backend_unavailable', `Not ready: ${(error as Error).message}`), { 'retry-after': '1' });
      }
    },
  );
};
