// The Lua runs as one Redis Functions library (src/store/scripts.ts). Redis keeps it across
// restarts and gives it to its replicas, but one that lost it (FUNCTION FLUSH, a new cluster
// primary) must get it back from the service without a request failing: on the plain path
// and on the REDIS_MIN_REPLICAS path, where each call travels with its WAIT.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { loadLibrary } from '../src/store/scripts.js';
import { acquireLease, startTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const library = loadLibrary();

async function libraryCount(redis: Redis): Promise<number> {
  return ((await redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', library.name)) as unknown[]).length;
}

test('the library defines one function per script, named after its version', () => {
  assert.match(library.name, /^lease_[0-9a-f]{16}$/);
  assert.ok(library.scripts.length >= 16);
  for (const script of library.scripts) {
    assert.ok(script.functionName.startsWith(`${library.name}_`), script.functionName);
    assert.ok(library.source.includes(`function_name = '${script.functionName}'`), `${script.name} registered`);
  }
  // The shared code is defined once, not once per function.
  assert.equal(library.source.split('local function nowMs()').length - 1, 1);
});

describe('after a FUNCTION FLUSH', () => {
  let server: TestRedis;
  let app: TestApp;
  before(async () => {
    server = await startTestRedis();
    app = await startTestApp(server.url);
  });
  after(async () => {
    await app?.close();
    await server?.stop();
  });

  test('the next call gives Redis the library again and succeeds; the leases it held are untouched', async () => {
    const held = await acquireLease(app, 'h', ['instances/i-flush']);
    assert.equal(await libraryCount(app.redis), 1);
    await app.redis.call('FUNCTION', 'FLUSH');
    assert.equal(await libraryCount(app.redis), 0);
    const renewed = await app.post(`/v1/leases/${held.id}/renew`, {});
    assert.equal(renewed.statusCode, 200, renewed.body);
    assert.equal(renewed.json().fencingToken, held.fencingToken);
    assert.equal(await libraryCount(app.redis), 1);
    const conflict = await app.post('/v1/leases', { holder: 'other', resources: [{ path: 'instances/i-flush/volumes/v-1' }] });
    assert.equal(conflict.statusCode, 409, 'the lease held before the flush still blocks its subtree');
  });
});

describe('after a FUNCTION FLUSH, with REDIS_MIN_REPLICAS=1', () => {
  let primary: TestRedis;
  let replica: TestRedis;
  let replicaClient: Redis;
  let app: TestApp;
  before(async () => {
    primary = await startTestRedis();
    replica = await startTestRedis();
    replicaClient = new Redis(replica.url);
    await replicaClient.config('SET', 'masterauth', decodeURIComponent(new URL(primary.url).password));
    await replicaClient.call('REPLICAOF', '127.0.0.1', String(primary.port));
    await waitFor(async () => /master_link_status:up/.test(await replicaClient.info('replication')), { timeoutMs: 10000, what: 'the replica in sync' });
    app = await startTestApp(primary.url, { REDIS_MIN_REPLICAS: '1', REDIS_REPLICA_ACK_TIMEOUT_MS: '1000' });
  });
  after(async () => {
    await app?.close();
    replicaClient?.disconnect();
    await replica?.stop();
    await primary?.stop();
  });

  test('a state change loads the library again, runs once and is confirmed by the replica', async () => {
    const first = await acquireLease(app, 'h', ['instances/i-acked']);
    await app.redis.call('FUNCTION', 'FLUSH');
    // The flush reaches the replica too.
    await waitFor(async () => (await libraryCount(replicaClient)) === 0, { timeoutMs: 5000, what: 'the flush on the replica' });
    const second = await app.post('/v1/leases', { holder: 'h', resources: [{ path: 'instances/i-acked-2' }], requestId: 'after-flush' });
    assert.equal(second.statusCode, 201, second.body);
    assert.ok(second.json().fencingToken > first.fencingToken);
    // The grant ran once: its requestId finds the same lease.
    const again = await app.post('/v1/leases', { holder: 'h', resources: [{ path: 'instances/i-acked-2' }], requestId: 'after-flush' });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().id, second.json().id);
    // The replica has the grant and the library (FUNCTION LOAD is replicated).
    assert.equal(await replicaClient.exists(`{${app.config.KEY_PREFIX}}:l:${second.json().id as string}`), 1);
    assert.equal(await libraryCount(replicaClient), 1);
  });
});
