// The conductor SDK's LeaseClient against the real service: typed answers, errors a
// conductor can catch by meaning, and retries only where a repeat is safe.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BackendUnavailableError, ConflictError, LeaseClient, LeaseLostError, LeaseServiceError, streamEvents } from '../src/client/index.js';
import { findFreePort } from '../src/redis/embedded.js';
import { useTestApp } from './helpers/app.js';

const { t, redis } = useTestApp({ env: { REDIS_COMMAND_TIMEOUT_MS: '300' } });
const client = () => new LeaseClient({ baseUrl: t.baseUrl, retry: { attempts: 20, baseMs: 50, maxMs: 200 } });

describe('LeaseClient', () => {
  test('acquire, renew with progress, get, list and release return the service\'s objects', async () => {
    const c = client();
    const lease = await c.acquire({ holder: 'sdk-a', resources: [{ path: 'sdk/basic/i-1' }], ttlMs: 5000, action: { kind: 'resize' } });
    assert.equal(lease.state, 'active');
    assert.equal(lease.holder, 'sdk-a');
    const renewed = await c.renew(lease.id, { progress: { step: 2 } });
    assert.deepEqual(renewed.action?.progress, { step: 2 });
    assert.equal((await c.get(lease.id)).fencingToken, lease.fencingToken);
    const page = await c.list({ holder: 'sdk-a' });
    assert.deepEqual(page.items.map((l) => l.id), [lease.id]);
    const tombstone = await c.release(lease.id, 'completed');
    assert.equal(tombstone.state, 'released');
    assert.equal(tombstone.outcome, 'completed');
  });

  test('checkFencing says valid for the current holder\'s token and not for an earlier one', async () => {
    const c = client();
    const first = await c.acquire({ holder: 'sdk-g', resources: [{ path: 'sdk/fence/i-1' }] });
    await c.release(first.id);
    const second = await c.acquire({ holder: 'sdk-h', resources: [{ path: 'sdk/fence/i-1' }] });
    assert.equal((await c.checkFencing('sdk/fence/i-1/volumes/v-1', second.fencingToken)).valid, true);
    const stale = await c.checkFencing('sdk/fence/i-1', first.fencingToken);
    assert.equal(stale.valid, false);
    assert.deepEqual(stale.current.map((holder) => holder.leaseId), [second.id]);
  });

  test('events() yields the lifecycle as it happens, and resumes after lastEventId without a gap', async () => {
    const c = client();
    const stop = new AbortController();
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const live = c.events({ prefix: 'sdk/events' }, { signal: stop.signal, onOpen: () => opened() });
    const first = live.next();
    await open;
    const lease = await c.acquire({ holder: 'sdk-ev', resources: [{ path: 'sdk/events/i-1' }] });
    const granted = (await first).value!;
    assert.deepEqual([granted.type, granted.leaseId, granted.paths], ['granted', lease.id, ['sdk/events/i-1']]);
    stop.abort();
    assert.equal((await live.next()).done, true, 'aborting ends the iterator');

    // Happens while nobody watches; a watcher resuming after `granted` still sees it, first.
    await c.renew(lease.id);
    await c.release(lease.id);
    const resumed = c.events({ prefix: 'sdk/events', lastEventId: granted.id });
    const seen = [(await resumed.next()).value!, (await resumed.next()).value!];
    await resumed.return(undefined);
    assert.deepEqual(seen.map((event) => event.type), ['renewed', 'released']);
  });

  test('events() throws a refusal instead of reconnecting', async () => {
    const error = await client().events({ prefix: '../etc' }).next().then(() => assert.fail('a bad prefix'), (e: unknown) => e);
    assert.ok(error instanceof LeaseServiceError && error.status === 400, String(error));
  });

  test('a taken resource is a ConflictError naming the holder in the way', async () => {
    const c = client();
    const first = await c.acquire({ holder: 'sdk-b', resources: [{ path: 'sdk/conflict/i-1' }] });
    const error = await c.acquire({ holder: 'sdk-c', resources: [{ path: 'sdk/conflict/i-1/volumes/v-1' }] }).then(
      () => assert.fail('the second acquire must conflict'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConflictError, String(error));
    assert.equal(error.status, 409);
    assert.deepEqual(
      error.conflicts.map((conflict) => [conflict.leaseId, conflict.holder, conflict.path]),
      [[first.id, 'sdk-b', 'sdk/conflict/i-1']],
    );
  });

  test('renewing or releasing an ended lease is a LeaseLostError with its tombstone', async () => {
    const c = client();
    const lease = await c.acquire({ holder: 'sdk-d', resources: [{ path: 'sdk/lost/i-1' }] });
    await c.revoke(lease.id);
    for (const call of [() => c.renew(lease.id), () => c.release(lease.id), () => c.get(lease.id)]) {
      const error = await call().then(() => assert.fail('the lease has ended'), (e: unknown) => e);
      assert.ok(error instanceof LeaseLostError, String(error));
      assert.equal(error.code, 'lease_revoked');
      assert.equal(error.tombstone?.state, 'revoked');
      assert.equal(error.tombstone?.id, lease.id);
    }
    const unknown = await c.renew('never-was').then(() => assert.fail('no such lease'), (e: unknown) => e);
    assert.ok(unknown instanceof LeaseLostError && unknown.status === 404 && unknown.tombstone === undefined);
  });

  test('a rejected request is a LeaseServiceError with the service\'s code, and is not retried', async () => {
    const error = await client()
      .acquire({ holder: 'sdk-e', resources: [{ path: '../etc' }] })
      .then(() => assert.fail('invalid path'), (e: unknown) => e);
    assert.ok(error instanceof LeaseServiceError && !(error instanceof BackendUnavailableError));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_resource');
  });

  test('an acquire that meets a paused Redis is retried and grants exactly one lease', async () => {
    const c = client();
    redis.pause();
    const resumed = new Promise<void>((resolve) =>
      setTimeout(() => {
        redis.resume();
        resolve();
      }, 1000),
    );
    try {
      const lease = await c.acquire({ holder: 'sdk-f', resources: [{ path: 'sdk/retry/i-1' }] });
      assert.equal(lease.state, 'active');
    } finally {
      await resumed;
    }
    // Whatever the retries did while Redis was paused, one lease came of it.
    const page = await c.list({ holder: 'sdk-f' });
    assert.equal(page.items.length, 1);
  });

  test('a renew that meets a paused Redis is retried until it succeeds', async () => {
    const c = client();
    const lease = await c.acquire({ holder: 'sdk-g', resources: [{ path: 'sdk/retry/i-2' }], ttlMs: 10000 });
    redis.pause();
    setTimeout(() => redis.resume(), 800);
    const renewed = await c.renew(lease.id);
    assert.ok(Date.parse(renewed.renewedAt) > Date.parse(lease.renewedAt));
  });

  test('a service that cannot be reached is a BackendUnavailableError after the retries run out', async () => {
    const port = await findFreePort();
    const c = new LeaseClient({ baseUrl: `http://127.0.0.1:${port}`, retry: { attempts: 3, baseMs: 20, maxMs: 40 } });
    const started = Date.now();
    const error = await c.get('anything').then(() => assert.fail('nothing listens'), (e: unknown) => e);
    assert.ok(error instanceof BackendUnavailableError, String(error));
    assert.equal(error.status, 0);
    assert.ok(Date.now() - started < 2000);
  });

  test('claimOrphan answers null when none is pending within waitMs, and the claim when one is', async () => {
    const c = client();
    assert.equal(await c.claimOrphan({ holder: 'sdk-h', kinds: ['sdk-kind'], waitMs: 100 }), null);
    const lease = await c.acquire({ holder: 'sdk-i', resources: [{ path: 'sdk/orphan/i-1' }], action: { kind: 'sdk-kind' } });
    await c.release(lease.id, 'abandoned');
    const claim = await c.claimOrphan({ holder: 'sdk-h', kinds: ['sdk-kind'], waitMs: 1000 });
    assert.ok(claim);
    assert.equal(claim.orphan.lastLeaseId, lease.id);
    assert.equal(claim.lease.holder, 'sdk-h');
    assert.ok(claim.lease.fencingToken > lease.fencingToken);
    assert.equal((await c.getOrphan(claim.orphan.id)).state, 'claimed');
  });
});

describe('LeaseClient in a namespace', () => {
  const inTenantX = () => new LeaseClient({ baseUrl: t.baseUrl, namespace: 'tenant-x', retry: { attempts: 20, baseMs: 50, maxMs: 200 } });

  test('a client with namespace "tenant-x" works under /v1/namespaces/tenant-x: its lease is 404 at /v1/leases/{id}', async () => {
    const c = inTenantX();
    assert.equal(c.namespace, 'tenant-x');
    const lease = await c.acquire({ holder: 'sdk-ns', resources: [{ path: 'sdk/ns/i-1' }] });
    const there = await t.get(`/v1/namespaces/tenant-x/leases/${lease.id}`);
    assert.equal(there.statusCode, 200, there.body);
    assert.equal(there.json<{ fencingToken: number }>().fencingToken, lease.fencingToken);
    const outside = await t.get(`/v1/leases/${lease.id}`);
    assert.equal(outside.statusCode, 404, outside.body);
    assert.equal(outside.json<{ code: string }>().code, 'lease_not_found');
    // Every call of the client goes to the namespace, not only acquire.
    assert.equal((await c.renew(lease.id)).id, lease.id);
    assert.deepEqual((await c.list({ holder: 'sdk-ns' })).items.map((l) => l.id), [lease.id]);
    assert.deepEqual((await c.resource('sdk/ns')).below.items.map((l) => l.id), [lease.id]);
    assert.equal((await c.checkFencing('sdk/ns/i-1', lease.fencingToken)).valid, true);
    assert.equal((await c.release(lease.id)).state, 'released');
    assert.equal((await t.get(`/v1/namespaces/tenant-x/leases/${lease.id}`)).statusCode, 410);
  });

  test('a default client (no namespace, or "default") works under /v1: its lease is 404 in tenant-x', async () => {
    for (const c of [client(), new LeaseClient({ baseUrl: t.baseUrl, namespace: 'default' })]) {
      assert.equal(c.namespace, 'default');
      // The same path as a lease of tenant-x: namespaces never conflict.
      const held = await inTenantX().acquire({ holder: 'sdk-ns-x', resources: [{ path: 'sdk/ns/both' }] });
      const lease = await c.acquire({ holder: 'sdk-ns-default', resources: [{ path: 'sdk/ns/both' }] });
      assert.equal((await t.get(`/v1/leases/${lease.id}`)).statusCode, 200);
      const elsewhere = await t.get(`/v1/namespaces/tenant-x/leases/${lease.id}`);
      assert.equal(elsewhere.statusCode, 404, elsewhere.body);
      const error = await inTenantX().get(lease.id).then(() => assert.fail('a lease of another namespace'), (e: unknown) => e);
      assert.ok(error instanceof LeaseLostError && error.status === 404, String(error));
      await c.release(lease.id);
      await inTenantX().release(held.id);
    }
  });

  test('events() of a client in a namespace follow that namespace only', async () => {
    const c = inTenantX();
    const stop = new AbortController();
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const live = c.events({ prefix: 'sdk/ns-events' }, { signal: stop.signal, onOpen: () => opened() });
    const first = live.next();
    await open;
    // A grant on the same path in the namespace "default" is not in tenant-x's stream.
    const other = await client().acquire({ holder: 'sdk-ns-ev', resources: [{ path: 'sdk/ns-events/i-1' }] });
    const lease = await c.acquire({ holder: 'sdk-ns-ev', resources: [{ path: 'sdk/ns-events/i-1' }] });
    const granted = (await first).value!;
    stop.abort();
    assert.deepEqual([granted.type, granted.leaseId], ['granted', lease.id], `not the default namespace's ${other.id}`);
    assert.equal((await live.next()).done, true);
    await client().release(other.id);
    await c.release(lease.id);
  });

  test('a namespace the service would refuse is a TypeError, before any request', async () => {
    for (const namespace of ['', 'Tenant-X', '-x', 'tenant_x', 'a/b', 'a'.repeat(64)]) {
      assert.throws(() => new LeaseClient({ baseUrl: t.baseUrl, namespace }), TypeError, JSON.stringify(namespace));
    }
    assert.doesNotThrow(() => new LeaseClient({ baseUrl: t.baseUrl, namespace: `x${'-'.repeat(62)}` }));
    const error = await streamEvents(t.baseUrl, {}, { namespace: 'Tenant-X' }).next().then(() => assert.fail('a bad namespace'), (e: unknown) => e);
    assert.ok(error instanceof TypeError, String(error));
  });
});
