// An app built exactly as main.ts builds it, against a real Redis, with its own key
// prefix so tests of one file never see each other's leases.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Redis } from 'ioredis';
import { buildApp } from '../../src/app.js';
import type { Lease } from '../../src/client/types.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createRedisClient, waitUntilReady } from '../../src/redis/connection.js';
import { startTestRedis, type TestRedis } from './redis.js';

export interface TestApp {
  app: FastifyInstance;
  redis: Redis;
  config: Config;
  /** Real HTTP base URL (listen() was called), for tests that need sockets. */
  baseUrl: string;
  post(url: string, body?: unknown): Promise<LightMyRequestResponse>;
  get(url: string): Promise<LightMyRequestResponse>;
  del(url: string): Promise<LightMyRequestResponse>;
  /** Every Redis key of this app's prefix (but the reaper's lock) with its type and content, to prove nothing changed. */
  snapshotKeys(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startTestApp(
  redisUrl: string,
  env: Record<string, string> = {},
  { sweep = true, logger = false }: { sweep?: boolean; logger?: false | object } = {},
): Promise<TestApp> {
  const config = loadConfig({
    REDIS_URL: redisUrl,
    KEY_PREFIX: `t${randomBytes(4).toString('hex')}`,
    LOG_LEVEL: 'silent',
    REAPER_INTERVAL_MS: '100',
    // Load shedding off unless a test turns it on (see test/helpers/service.ts).
    LOAD_SHED_EVENT_LOOP_DELAY_MS: '60000',
    ...env,
  });
  const redis = createRedisClient({ target: { mode: 'single', url: redisUrl }, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  redis.on('error', () => {});
  await waitUntilReady(redis, 10000);
  const app = await buildApp({ config, redis, logger, sweep });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const json = (method: 'POST' | 'GET' | 'DELETE', url: string, body?: unknown) =>
    app.inject({ method, url, ...(body === undefined ? {} : { payload: body as object }) });
  return {
    app,
    redis,
    config,
    baseUrl: `http://127.0.0.1:${port}`,
    post: (url, body) => json('POST', url, body),
    get: (url) => json('GET', url),
    del: (url) => json('DELETE', url),
    async snapshotKeys() {
      // Not the reaper's lock: the leader election takes and renews it whatever requests do.
      const reaperLock = `{${config.KEY_PREFIX}}:reaper`;
      const keys = (await redis.keys(`{${config.KEY_PREFIX}}:*`)).filter((key) => key !== reaperLock).sort();
      const out: Record<string, unknown> = {};
      for (const key of keys) {
        const type = await redis.type(key);
        if (type === 'hash') out[key] = await redis.hgetall(key);
        else if (type === 'zset') out[key] = await redis.zrange(key, 0, -1, 'WITHSCORES');
        else if (type === 'string') out[key] = await redis.get(key);
        else out[key] = type;
      }
      return out;
    },
    async close() {
      await app.close();
      redis.disconnect();
    },
  };
}

/** Acquires, asserting the 201, and returns the lease. */
export async function acquireLease(app: TestApp, holder: string, paths: Parameters<typeof acquireBody>[1], extra: Record<string, unknown> = {}): Promise<Lease> {
  const res = await app.post('/v1/leases', acquireBody(holder, paths, extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Lease>();
}

/** An acquire body with defaults for what a test does not care about. */
export function acquireBody(holder: string, paths: (string | { path: string; mode?: string })[], extra: Record<string, unknown> = {}) {
  const resources = paths.map((p) => (typeof p === 'string' ? { path: p } : p));
  return { holder, resources, ...extra };
}

export interface FixtureOptions {
  env?: Record<string, string>;
  sweep?: boolean;
  redisArgs?: string[];
}

/**
 * Registers before/after hooks that start a real redis-server and an app for this test
 * file, and returns handles that are filled in once `before` has run.
 */
export function useTestApp({ env = {}, sweep = true, redisArgs = [] }: FixtureOptions = {}): { t: TestApp; redis: TestRedis } {
  const t = {} as TestApp;
  const redis = {} as TestRedis;
  before(async () => {
    Object.assign(redis, await startTestRedis(redisArgs));
    Object.assign(t, await startTestApp(redis.url, env, { sweep }));
  });
  after(async () => {
    await t.close?.();
    await redis.stop?.();
  });
  return { t, redis };
}
