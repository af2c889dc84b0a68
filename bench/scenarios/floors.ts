// The baselines every target divides by, measured in the same run on the same machine:
// - http-floor: what Fastify alone costs for an acquire-sized JSON POST (no Redis);
// - redis-floor: one Redis round trip from Node (PING, and EVALSHA of a trivial script);
// - redlock: what a user would do without the service, redlock acquire + release directly
//   against Redis.
// Each runs with the same number of callers as the service's phases (Context.options.connections).
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import Redlock from 'redlock';
import { createRedisClient, waitUntilReady } from '../../src/redis/connection.js';
import { FLOOR_PATH, nextSerial, singleAcquireBody } from '../lib/bodies.js';
import type { Context } from '../lib/context.js';
import { latencyOf, type LoadRequest } from '../lib/http-load.js';
import { startHttpFloor } from '../lib/service-process.js';
import { describeUsage } from '../lib/usage.js';
import { figure, type Scenario } from './types.js';

/** The uncontended acquire's request, aimed at `path` (the service's route or the floor's). */
export function uncontendedAcquire(path: string): LoadRequest {
  return {
    method: 'POST',
    path,
    setupRequest: (request) => {
      const n = nextSerial();
      return { ...request, body: singleAcquireBody(`instances/i-${n}`, n) };
    },
  };
}

export const httpFloor: Scenario = {
  name: 'http-floor',
  summary: 'Fastify hello-world POST: acquire-sized body, the service\'s acquire schema and server options, in a child process like the service',
  async run(ctx: Context) {
    const server = await startHttpFloor(ctx.serverEnv);
    try {
      const spec = { url: server.url, connections: ctx.options.connections, requests: [uncontendedAcquire(FLOOR_PATH)], expect: [201] };
      const { load, usage } = await ctx.phase('floor POST', spec, server, { serverName: 'floor' });
      const latency = latencyOf(load, 201);
      return {
        figures: {
          rps: figure('POST req/s', load.rps, 'req/s'),
          p50: figure('latency p50', latency.p50, 'ms'),
          p99: figure('latency p99', latency.p99, 'ms'),
          cpu: figure('CPU per request', Number.NaN, 'text', describeUsage(usage, 'floor')),
        },
        details: { load, usage },
      };
    } finally {
      await server.stop();
    }
  },
};

export const redisFloor: Scenario = {
  name: 'redis-floor',
  summary: 'one Redis round trip from Node through one ioredis client (as the service has): PING, and EVALSHA of a trivial script',
  async run(ctx: Context) {
    // The service's own client settings (fail fast, no offline queue).
    const client = createRedisClient({ target: { mode: 'single', url: ctx.redis.url }, commandTimeoutMs: ctx.serviceConfig.REDIS_COMMAND_TIMEOUT_MS });
    client.on('error', () => {});
    try {
      await waitUntilReady(client, 10_000);
      const ping = await ctx.closedPhase('PING', () => client.ping());
      const sha = (await client.script('LOAD', 'return 1')) as string;
      const key = `${ctx.prefix}bench-floor`; // one key, like the service's scripts (KEYS[1] routes the call)
      const evalsha = await ctx.closedPhase('EVALSHA return 1', () => client.evalsha(sha, 1, key));
      return {
        figures: {
          ping: figure('PING ops/s', ping.result.opsPerS, 'ops/s'),
          pingP50: figure('PING p50', ping.result.latency.p50, 'ms'),
          evalsha: figure('EVALSHA ops/s', evalsha.result.opsPerS, 'ops/s'),
          evalshaP50: figure('EVALSHA p50', evalsha.result.latency.p50, 'ms'),
          evalshaP99: figure('EVALSHA p99', evalsha.result.latency.p99, 'ms'),
        },
        details: { ping, evalsha },
      };
    } finally {
      client.disconnect();
    }
  },
};

export const redlockDirect: Scenario = {
  name: 'redlock',
  summary: 'what a user would do without the service: redlock 5 acquire + release of a random resource, from Node, one ioredis client',
  async run(ctx: Context) {
    // A client as a user would make it (ioredis defaults), and redlock failing at once on a
    // held resource, as the service's acquire does without waitMs (none is ever held here).
    const client = new Redis(ctx.redis.url);
    client.on('error', () => {});
    const redlock = new Redlock([client], { retryCount: 0 });
    try {
      const pair = await ctx.closedPhase('redlock acquire + release', async () => {
        const lock = await redlock.acquire([`bench:redlock:${randomUUID()}`], 30_000);
        await lock.release();
      });
      return {
        figures: {
          pairs: figure('acquire+release pairs/s', pair.result.opsPerS, 'pairs/s'),
          p50: figure('pair latency p50', pair.result.latency.p50, 'ms'),
          p99: figure('pair latency p99', pair.result.latency.p99, 'ms'),
        },
        details: { pair },
      };
    } finally {
      client.disconnect();
    }
  },
};
