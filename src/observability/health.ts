// /healthz says the process answers; /readyz says it can serve: Redis answers within the
// command timeout and holds our scripts (it loads them again after a Redis restart).
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { Type } from '@sinclair/typebox';
import type { LuaScript } from '../store/scripts.js';
import { ensureScriptsLoaded } from '../store/scripts.js';
import { problem } from '../errors.js';
import { sendProblem } from '../http/problems.js';
import { ProblemView } from '../leases/schemas.js';

export interface HealthOptions {
  redis: Redis;
  scripts: LuaScript[];
}

const Status = Type.Object({ status: Type.String() });

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { redis, scripts }) => {
  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'The process is up', response: { 200: Status } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Redis is reachable and the scripts are loaded',
        response: { 200: Status, 503: { ...ProblemView, description: 'backend_unavailable: not ready to serve.' } },
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
