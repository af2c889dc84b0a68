// The ways to reach Redis, as the configuration chooses them: each mistake is named at start
// (the process exits 2 with the message), never found later as a hang or a silent fallback.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { createRedisClient, describeTarget, isBackendUnavailable, redisTargetOf } from '../src/redis/connection.js';
import type { Redis } from 'ioredis';

const SENTINEL = { REDIS_SENTINELS: '10.0.0.1:26379,sentinel-b:26380', REDIS_SENTINEL_MASTER: 'lease-primary' };

test('Sentinel mode: the sentinels, the master name and both passwords make the target', () => {
  const config = loadConfig({ ...SENTINEL, REDIS_PASSWORD: 'redis-secret', REDIS_SENTINEL_PASSWORD: 'sentinel-secret' });
  const target = redisTargetOf(config);
  assert.deepEqual(target, {
    mode: 'sentinel',
    sentinels: [
      { host: '10.0.0.1', port: 26379 },
      { host: 'sentinel-b', port: 26380 },
    ],
    master: 'lease-primary',
    password: 'redis-secret',
    sentinelPassword: 'sentinel-secret',
  });
  // Logs and metrics name where Redis is, never a password.
  assert.equal(describeTarget(target), 'sentinel lease-primary via 10.0.0.1:26379,sentinel-b:26380');
  const client = createRedisClient({ target, commandTimeoutMs: 1000 }) as Redis;
  assert.equal(client.options.name, 'lease-primary');
  assert.equal(client.options.role, 'master');
  assert.equal(client.options.failoverDetector, true);
  client.disconnect();
});

test('single mode: REDIS_URL, with REDIS_PASSWORD when the URL has none; else the managed redis-server', () => {
  assert.deepEqual(redisTargetOf(loadConfig({ REDIS_URL: 'redis://db:6379', REDIS_PASSWORD: 'p' })), { mode: 'single', url: 'redis://db:6379', password: 'p' });
  assert.deepEqual(redisTargetOf(loadConfig({}), 'redis://:managed@127.0.0.1:1234'), { mode: 'single', url: 'redis://:managed@127.0.0.1:1234', password: undefined });
  assert.equal(describeTarget(redisTargetOf(loadConfig({ REDIS_URL: 'redis://:secret@db:6379' }))), 'redis://db:6379');
});

test('a half-configured or contradictory Redis is refused at start, naming the variable', () => {
  const refused = (env: Record<string, string>, message: RegExp) => assert.throws(() => loadConfig(env), (error: unknown) => error instanceof ConfigError && message.test(error.message));
  refused({ REDIS_SENTINELS: '127.0.0.1:26379' }, /missing REDIS_SENTINEL_MASTER/);
  refused({ REDIS_SENTINEL_MASTER: 'm' }, /missing REDIS_SENTINELS/);
  refused({ ...SENTINEL, REDIS_URL: 'redis://x:6379' }, /one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES/);
  refused({ REDIS_SENTINELS: '127.0.0.1', REDIS_SENTINEL_MASTER: 'm' }, /REDIS_SENTINELS/);
  refused({ REDIS_SENTINELS: '127.0.0.1:26379,', REDIS_SENTINEL_MASTER: 'm' }, /REDIS_SENTINELS/);
  refused({ ...SENTINEL, REDIS_CLUSTER_NODES: '127.0.0.1:7000' }, /not REDIS_SENTINELS and REDIS_CLUSTER_NODES/);
  refused({ REDIS_URL: 'redis://x:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000' }, /invalid REDIS_CLUSTER_NODES/);
  refused({ REDIS_CLUSTER_NODES: '127.0.0.1' }, /REDIS_CLUSTER_NODES/);
  // The managed redis-server has no replica: every state change would be 503.
  refused({ REDIS_MIN_REPLICAS: '1' }, /REDIS_MIN_REPLICAS=1: the managed redis-server has no replicas/);
  // A confirmation that may take longer than the call's own timeout would never be seen.
  refused({ ...SENTINEL, REDIS_MIN_REPLICAS: '1', REDIS_REPLICA_ACK_TIMEOUT_MS: '2000', REDIS_COMMAND_TIMEOUT_MS: '2000' }, /REDIS_REPLICA_ACK_TIMEOUT_MS=2000: must be less than/);
  refused({ ...SENTINEL, REDIS_MIN_REPLICAS: '17' }, /REDIS_MIN_REPLICAS/);
});

test('REDIS_MIN_REPLICAS defaults to 0 (no WAIT), and its timeout matters only above 0', () => {
  const config = loadConfig({ REDIS_COMMAND_TIMEOUT_MS: '300' });
  assert.equal(config.REDIS_MIN_REPLICAS, 0);
  assert.equal(config.REDIS_REPLICA_ACK_TIMEOUT_MS, 500);
});

test("a Cluster client's own failures while it has no usable node are 503s (backend unavailable), not 500s", async () => {
  for (const message of [
    "Cluster isn't ready and enableOfflineQueue options is false",
    'None of startup nodes is available',
    'Cluster is ended.',
    'Failed to refresh slots cache.',
    'MOVED 3696 127.0.0.1:26078',
    'ASK 3696 127.0.0.1:26078',
    'Too many Cluster redirections. Last error: Error: Connection is closed.',
  ]) {
    assert.equal(isBackendUnavailable(new Error(message)), true, message);
  }
  const allFailed = Object.assign(new Error('Failed to connect'), { name: 'ClusterAllFailedError' });
  assert.equal(isBackendUnavailable(allFailed), true);
  // A bug is still a bug.
  assert.equal(isBackendUnavailable(new TypeError("Cannot read properties of undefined (reading 'id')")), false);
});
