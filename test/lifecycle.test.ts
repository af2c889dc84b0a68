// A lease's life with real time: expiry by Redis' clock, heartbeats, the hold deadline,
// release outcomes, revocation, lock delay, and leases with an action turning into orphans.
// The app here runs no sweeper, so everything asserted happens without a background job.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireBody, useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t } = useTestApp({ sweep: false });

let n = 0;
const instance = () => `instances/i-${++n}-${Date.now()}`;

async function acquire(holder: string, path: string, extra: Record<string, unknown> = {}) {
  const res = await t.post('/v1/leases', acquireBody(holder, [path], extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json();
}

/** Waits until Redis' clock has passed the lease's expiresAt (+ extra ms). */
async function pastExpiry(lease: { expiresAt: string }, extraMs = 0) {
  const until = Date.parse(lease.expiresAt) + extraMs;
  await waitFor(async () => {
    const [seconds, micros] = await t.redis.time();
    return Number(seconds) * 1000 + Number(micros) / 1000 > until + 5;
  }, { what: 'Redis clock past expiry' });
}

describe('expiry is exact and needs no background job', () => {
  test('once expiresAt passes, an acquire of the same path is granted with a greater token', async () => {
    const path = instance();
    const first = await acquire('slow', path, { ttlMs: 1000 });
    assert.equal((await t.post('/v1/leases', acquireBody('next', [path]))).statusCode, 409);
    await pastExpiry(first);
    const second = await acquire('next', path);
    assert.ok(second.fencingToken > first.fencingToken);
  });

  test('an expired lease answers GET, renew and release with 410 lease_expired and its tombstone', async () => {
    const path = instance();
    const lease = await acquire('dead', path, { ttlMs: 1000 });
    await pastExpiry(lease);
    for (const res of [
      await t.get(`/v1/leases/${lease.id}`),
      await t.post(`/v1/leases/${lease.id}/renew`),
      await t.post(`/v1/leases/${lease.id}/release`),
      await t.del(`/v1/leases/${lease.id}`),
    ]) {
      assert.equal(res.statusCode, 410);
      const body = res.json();
      assert.equal(body.code, 'lease_expired');
      assert.equal(body.state, 'expired');
      assert.equal(body.id, lease.id);
      assert.equal(body.endedAt, lease.expiresAt);
      assert.equal(body.fencingToken, lease.fencingToken);
      assert.deepEqual(body.resources, lease.resources);
    }
  });
});

describe('heartbeats', () => {
  test('a holder that keeps renewing keeps its lease well past one ttl', async () => {
    const path = instance();
    const lease = await acquire('alive', path, { ttlMs: 1500 });
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline) {
      const renewed = await t.post(`/v1/leases/${lease.id}/renew`);
      assert.equal(renewed.statusCode, 200);
      assert.ok(Date.parse(renewed.json().expiresAt) > Date.parse(renewed.json().renewedAt));
      await sleep(300);
    }
    assert.equal((await t.post('/v1/leases', acquireBody('other', [path]))).statusCode, 409);
    assert.equal((await t.get(`/v1/leases/${lease.id}`)).json().state, 'active');
  });

  test('a holder that stops renewing is presumed dead once ttl passes', async () => {
    const path = instance();
    const lease = await acquire('dies', path, { ttlMs: 1000 });
    const renewed = (await t.post(`/v1/leases/${lease.id}/renew`)).json();
    await pastExpiry(renewed);
    assert.equal((await t.post(`/v1/leases/${lease.id}/renew`)).json().code, 'lease_expired');
    await acquire('other', path);
  });

  test('renew with ttlMs sets a new ttl; without, the lease keeps its own', async () => {
    const lease = await acquire('h', instance(), { ttlMs: 5000 });
    const longer = (await t.post(`/v1/leases/${lease.id}/renew`, { ttlMs: 20000 })).json();
    assert.equal(longer.ttlMs, 20000);
    assert.equal(Date.parse(longer.expiresAt) - Date.parse(longer.renewedAt), 20000);
    const again = (await t.post(`/v1/leases/${lease.id}/renew`, {})).json();
    assert.equal(Date.parse(again.expiresAt) - Date.parse(again.renewedAt), 20000);
  });

  test('renewal never moves expiresAt past holdDeadline, and the lease ends there', async () => {
    const path = instance();
    const lease = await acquire('stuck', path, { ttlMs: 1900, maxHoldMs: 2000 });
    assert.equal(Date.parse(lease.holdDeadline) - Date.parse(lease.acquiredAt), 2000);
    assert.equal(Date.parse(lease.expiresAt) - Date.parse(lease.acquiredAt), 1900);
    // Any renew from 100 ms on would reach past holdDeadline (and the lease lives 1.9 s).
    await pastExpiry({ expiresAt: new Date(Date.parse(lease.acquiredAt) + 100).toISOString() });
    const renewed = (await t.post(`/v1/leases/${lease.id}/renew`)).json();
    assert.equal(renewed.expiresAt, lease.holdDeadline);
    await pastExpiry(renewed);
    assert.equal((await t.post(`/v1/leases/${lease.id}/renew`)).statusCode, 410);
    await acquire('other', path);
  });

  test('progress is stored with the action and replaced by the next checkpoint', async () => {
    const lease = await acquire('c', instance(), { action: { kind: 'resize', payload: { flavor: 'm1.large' } } });
    await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 'disk-copied' } });
    assert.deepEqual((await t.get(`/v1/leases/${lease.id}`)).json().action.progress, { step: 'disk-copied' });
    await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 'flavor-switched' } });
    await t.post(`/v1/leases/${lease.id}/renew`, {});
    assert.deepEqual((await t.get(`/v1/leases/${lease.id}`)).json().action.progress, { step: 'flavor-switched' });
  });

  test('progress on a lease without an action is refused and renews nothing', async () => {
    const lease = await acquire('c', instance());
    const res = await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 1 } });
    assert.equal(res.statusCode, 400);
    assert.equal((await t.get(`/v1/leases/${lease.id}`)).json().renewedAt, lease.renewedAt);
  });
});

describe('release and revoke', () => {
  test('release frees the resources at once and answers a tombstone; the same release again answers the same', async () => {
    const path = instance();
    const lease = await acquire('h', path);
    const first = await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'completed' });
    assert.equal(first.statusCode, 200);
    assert.equal(first.json().state, 'released');
    assert.equal(first.json().outcome, 'completed');
    await acquire('next', path);
    const again = await t.post(`/v1/leases/${lease.id}/release`);
    assert.equal(again.statusCode, 200);
    assert.deepEqual(again.json(), first.json());
  });

  test('a release with another outcome, a renew or a GET after release answer 410 lease_released', async () => {
    const lease = await acquire('h', instance());
    await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'failed' });
    for (const res of [
      await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'completed' }),
      await t.post(`/v1/leases/${lease.id}/renew`),
      await t.get(`/v1/leases/${lease.id}`),
    ]) {
      assert.equal(res.statusCode, 410);
      assert.equal(res.json().code, 'lease_released');
      assert.equal(res.json().outcome, 'failed');
    }
  });

  test('revoke ends the lease for its holder: 410 lease_revoked on renew, and the path is free', async () => {
    const path = instance();
    const lease = await acquire('h', path);
    const revoked = await t.del(`/v1/leases/${lease.id}`);
    assert.equal(revoked.statusCode, 200);
    assert.equal(revoked.json().state, 'revoked');
    assert.equal((await t.post(`/v1/leases/${lease.id}/renew`)).json().code, 'lease_revoked');
    assert.equal((await t.del(`/v1/leases/${lease.id}`)).json().code, 'lease_revoked');
    await acquire('next', path);
  });

  test('abandoning a lease without an action simply frees its resources', async () => {
    const path = instance();
    const lease = await acquire('h', path);
    const res = await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' });
    assert.equal(res.json().state, 'released');
    await acquire('next', path);
  });
});

describe('leases with an action keep their resources reserved when their holder is gone', () => {
  for (const [how, end] of [
    ['expires', async (lease: { id: string; expiresAt: string }) => pastExpiry(lease)],
    ['is abandoned', async (lease: { id: string }) => void (await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' }))],
    ['is revoked', async (lease: { id: string }) => void (await t.del(`/v1/leases/${lease.id}`))],
  ] as const) {
    test(`a lease with an action that ${how} shows as orphaned and still blocks its resources`, async () => {
      const path = instance();
      const lease = await acquire('conductor-z', path, { ttlMs: 1000, action: { kind: 'resize' } });
      await end(lease);
      const got = await t.get(`/v1/leases/${lease.id}`);
      assert.equal(got.statusCode, 200);
      assert.equal(got.json().state, 'orphaned');
      const blocked = await t.post('/v1/leases', acquireBody('other', [`${path}/volumes/v-1`]));
      assert.equal(blocked.statusCode, 409);
      assert.deepEqual(blocked.json().conflicts, [{ path, leaseId: lease.id, holder: 'conductor-z', mode: 'exclusive', state: 'orphaned' }]);
      assert.equal((await t.post(`/v1/leases/${lease.id}/renew`)).statusCode, 410);
    });
  }
});

describe('lockDelayMs', () => {
  test('after expiry the resources stay blocked for lockDelayMs, shown as lock_delay', async () => {
    const path = instance();
    const lease = await acquire('slow', path, { ttlMs: 1000, lockDelayMs: 1500 });
    await pastExpiry(lease);
    const blocked = await t.post('/v1/leases', acquireBody('next', [path]));
    assert.equal(blocked.statusCode, 409);
    assert.equal(blocked.json().conflicts[0].state, 'lock_delay');
    assert.equal((await t.get(`/v1/leases/${lease.id}`)).json().code, 'lease_expired');
    await pastExpiry(lease, 1500);
    await acquire('next', path);
  });

  test('after a revocation the resources stay blocked for lockDelayMs; after a release they are free at once', async () => {
    const revokedPath = instance();
    const revoked = await acquire('slow', revokedPath, { lockDelayMs: 2000 });
    const revokedAt = Date.parse((await t.del(`/v1/leases/${revoked.id}`)).json().endedAt);
    assert.equal((await t.post('/v1/leases', acquireBody('next', [revokedPath]))).json().conflicts[0].state, 'lock_delay');
    await pastExpiry({ expiresAt: new Date(revokedAt + 2000).toISOString() });
    await acquire('next', revokedPath);

    const releasedPath = instance();
    const released = await acquire('done', releasedPath, { lockDelayMs: 1000 });
    await t.post(`/v1/leases/${released.id}/release`);
    await acquire('next', releasedPath);
  });
});
