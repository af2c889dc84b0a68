// The store below HTTP, for what the API cannot show directly: the sweeper's clean-up of
// lock-delayed tombstones, and a store whose idea of Redis' clock has gone wrong.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisClient, waitUntilReady } from '../src/redis/connection.js';
import { LeaseStore } from '../src/store/lease-store.js';
import { defineScripts, loadLibrary } from '../src/store/scripts.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

let server: TestRedis;
let redis: Redis;
let store: LeaseStore;
const prefix = `{s${randomBytes(3).toString('hex')}}:`;

before(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ target: { mode: 'single', url: server.url }, commandTimeoutMs: 2000 });
  await waitUntilReady(redis, 10000);
  store = new LeaseStore(defineScripts(redis, loadLibrary()), { keyPrefix: prefix, tombstoneTtlMs: 3600000, streamCap: 10000, commandTimeoutMs: 2000 });
});
after(async () => {
  redis?.disconnect();
  await server?.stop();
});

const acquire = (path: string, extra: { lockDelayMs?: number; ttlMs?: number } = {}) =>
  store.acquire({
    id: randomBytes(16).toString('base64url'),
    holder: 'h',
    resources: [{ path, mode: 'exclusive' }],
    ttlMs: extra.ttlMs ?? 60000,
    maxHoldMs: 86400000,
    lockDelayMs: extra.lockDelayMs ?? 0,
    action: null,
    requestId: null,
    fingerprint: '',
    conflictLimit: 10,
    wait: null,
  });

test('a tombstone in its lock delay keeps its record until the sweeper has dropped its blocking entries, however late', async () => {
  const granted = await acquire('zone/a/b', { lockDelayMs: 300 });
  assert.equal(granted.kind, 'granted');
  const id = granted.kind === 'granted' ? granted.lease.id : '';
  await store.revoke(id);
  assert.equal(await redis.pttl(`${prefix}l:${id}`), -1, 'no TTL while its blocking entries stand');
  assert.equal(await redis.zcard(`${prefix}ax:zone/a/b`), 1);

  // The sweeper runs long after the lock delay ended (here: only when we call it).
  await waitFor(async () => (await acquire('zone/a/b/c')).kind === 'granted', { what: 'the lock delay to end' });
  await store.sweep(100, { maxAgeMs: 86400000, maxBytes: 1 << 30 });
  assert.equal(await redis.zscore(`${prefix}ax:zone/a/b`, id), null);
  assert.equal(await redis.zscore(`${prefix}b:zone/a`, id), null);
  assert.equal(await redis.zscore(`${prefix}exp`, id), null);
  const ttl = await redis.pttl(`${prefix}l:${id}`);
  assert.ok(ttl > 3590000 && ttl <= 3600000, `the tombstone's hour starts now (pttl ${ttl})`);
});

test('a store whose estimate of Redis\' clock is far behind recovers on the first reply that says so', async () => {
  await store.get('unknown'); // learns Redis' clock
  // As after a failover to a Redis whose clock runs 10 s ahead: every deadline we compute
  // is already past on Redis' clock, so each script answers too_late and changes nothing.
  const clock = (store as unknown as { clock: { anchor: { redisMs: number } } }).clock;
  clock.anchor.redisMs -= 10000;
  const result = await acquire('zone/clock');
  assert.equal(result.kind, 'granted');
  assert.equal((await store.get(result.kind === 'granted' ? result.lease.id : '')).kind, 'done');
});
