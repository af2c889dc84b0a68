import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { acquireBody, useTestApp } from './helpers/app.js';

const { t } = useTestApp();

let n = 0;
/** A fresh instance path per test, so tests in this file never overlap. */
const instance = () => `instances/i-${++n}-${Date.now()}`;

describe('acquire', () => {
  test('a grant answers 201 with the lease the contract describes', async () => {
    const path = instance();
    const res = await t.post('/v1/leases', acquireBody('conductor-z', [path], { ttlMs: 5000, action: { kind: 'resize', payload: { flavor: 'm1.large' } } }));
    assert.equal(res.statusCode, 201);
    const lease = res.json();
    assert.match(lease.id, /^[A-Za-z0-9_-]{22,}$/);
    assert.equal(lease.holder, 'conductor-z');
    assert.deepEqual(lease.resources, [{ path, mode: 'exclusive' }]);
    assert.equal(lease.state, 'active');
    assert.equal(lease.ttlMs, 5000);
    assert.ok(Number.isSafeInteger(lease.fencingToken) && lease.fencingToken > 0);
    assert.equal(Date.parse(lease.expiresAt) - Date.parse(lease.acquiredAt), 5000);
    assert.equal(Date.parse(lease.holdDeadline) - Date.parse(lease.acquiredAt), t.config.MAX_HOLD_DEFAULT_MS);
    assert.ok(lease.expiresInMs > 0 && lease.expiresInMs <= 5000);
    assert.deepEqual(lease.action, { kind: 'resize', payload: { flavor: 'm1.large' }, attempt: 1, maxAttempts: 3, progress: null });
  });

  test('50 simultaneous acquires of one instance over HTTP: exactly one wins, the rest get 409 naming it', async () => {
    const path = instance();
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        fetch(`${t.baseUrl}/v1/leases`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(acquireBody(`conductor-${i}`, [path], { action: { kind: 'resize' } })),
        }).then(async (r) => ({ status: r.status, body: await r.json() })),
      ),
    );
    const winners = responses.filter((r) => r.status === 201);
    const losers = responses.filter((r) => r.status === 409);
    assert.equal(winners.length, 1);
    assert.equal(losers.length, 49);
    const winner = winners[0]!.body;
    for (const loser of losers) {
      assert.equal(loser.body.code, 'conflict');
      assert.deepEqual(loser.body.conflicts, [{ path, leaseId: winner.id, holder: winner.holder, mode: 'exclusive', state: 'active' }]);
    }
  });

  test('a volume under a leased instance is refused with the instance lease as the conflict', async () => {
    const path = instance();
    const held = (await t.post('/v1/leases', acquireBody('resizer', [path]))).json();
    const res = await t.post('/v1/leases', acquireBody('deleter', [`${path}/volumes/v-7`]));
    assert.equal(res.statusCode, 409);
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.deepEqual(res.json().conflicts, [{ path, leaseId: held.id, holder: 'resizer', mode: 'exclusive', state: 'active' }]);
  });

  test('an instance with a leased volume below it is refused, even in shared mode', async () => {
    const path = instance();
    const volume = (await t.post('/v1/leases', acquireBody('deleter', [`${path}/volumes/v-7`]))).json();
    for (const mode of ['exclusive', 'shared']) {
      const res = await t.post('/v1/leases', acquireBody('resizer', [{ path, mode }]));
      assert.equal(res.statusCode, 409, mode);
      assert.equal(res.json().conflicts[0].leaseId, volume.id);
      assert.equal(res.json().conflicts[0].path, `${path}/volumes/v-7`);
    }
  });

  test('a lease does not cover a sibling whose name merely starts the same (i-42 vs i-420)', async () => {
    const path = instance();
    assert.equal((await t.post('/v1/leases', acquireBody('a', [path]))).statusCode, 201);
    assert.equal((await t.post('/v1/leases', acquireBody('b', [`${path}0`]))).statusCode, 201);
    assert.equal((await t.post('/v1/leases', acquireBody('c', [`${path}-x/volumes/v-1`]))).statusCode, 201);
  });

  test('shared leases coexist on a path and below it; an exclusive one is refused by either', async () => {
    const path = instance();
    assert.equal((await t.post('/v1/leases', acquireBody('r1', [{ path, mode: 'shared' }]))).statusCode, 201);
    assert.equal((await t.post('/v1/leases', acquireBody('r2', [{ path, mode: 'shared' }]))).statusCode, 201);
    assert.equal((await t.post('/v1/leases', acquireBody('r3', [{ path: `${path}/volumes/v-1`, mode: 'shared' }]))).statusCode, 201);
    const exclusiveAt = await t.post('/v1/leases', acquireBody('w', [path]));
    assert.equal(exclusiveAt.statusCode, 409);
    assert.equal(exclusiveAt.json().conflicts.length, 3);
    const exclusiveBelow = await t.post('/v1/leases', acquireBody('w', [`${path}/volumes/v-2`]));
    assert.equal(exclusiveBelow.statusCode, 409);
    assert.deepEqual(new Set(exclusiveBelow.json().conflicts.map((c: { holder: string }) => c.holder)), new Set(['r1', 'r2']));
  });

  test('a shared request is refused by an exclusive lease on an ancestor and below it', async () => {
    const path = instance();
    await t.post('/v1/leases', acquireBody('w', [`${path}/networks/n-1`]));
    assert.equal((await t.post('/v1/leases', acquireBody('r', [{ path, mode: 'shared' }]))).statusCode, 409);
    assert.equal((await t.post('/v1/leases', acquireBody('r', [{ path: `${path}/networks/n-1/ports/p-1`, mode: 'shared' }]))).statusCode, 409);
    assert.equal((await t.post('/v1/leases', acquireBody('r', [{ path: `${path}/volumes/v-1`, mode: 'shared' }]))).statusCode, 201);
  });

  test('all or nothing: one busy resource refuses the whole request and leaves the free ones untouched', async () => {
    const busy = instance();
    const free = instance();
    await t.post('/v1/leases', acquireBody('holder-a', [busy]));
    const before = await t.snapshotKeys();
    const res = await t.post('/v1/leases', acquireBody('holder-b', [free, `${free}/x`.replace('/x', '-other'), busy]));
    assert.equal(res.statusCode, 409);
    assert.deepEqual(res.json().conflicts.map((c: { path: string }) => c.path), [busy]);
    assert.deepEqual(await t.snapshotKeys(), before);
    assert.equal((await t.post('/v1/leases', acquireBody('holder-c', [free]))).statusCode, 201);
  });

  test('resources of one request that cover each other are 400 overlapping_resources', async () => {
    const path = instance();
    for (const resources of [[path, `${path}/volumes/v-1`], [`${path}/volumes/v-1`, 'x', path], [path, path]]) {
      const res = await t.post('/v1/leases', acquireBody('h', resources));
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().code, 'overlapping_resources');
    }
    assert.equal((await t.get(`/v1/resources/${path}`)).json().coveredBy.length, 0);
  });

  test('a multi-resource lease blocks each of its resources and frees all on release', async () => {
    const a = instance();
    const b = instance();
    const lease = (await t.post('/v1/leases', acquireBody('h', [a, `${b}/volumes/v-1`, 'networks/n-' + n]))).json();
    assert.equal((await t.post('/v1/leases', acquireBody('x', [b]))).statusCode, 409);
    assert.equal((await t.post('/v1/leases', acquireBody('x', [`networks/n-${n}`]))).statusCode, 409);
    assert.equal((await t.post(`/v1/leases/${lease.id}/release`)).statusCode, 200);
    for (const path of [a, b, `networks/n-${n}`]) {
      assert.equal((await t.post('/v1/leases', acquireBody('x', [path]))).statusCode, 201, path);
    }
  });

  test('fencing tokens of successive conflicting grants strictly increase', async () => {
    const path = instance();
    let last = 0;
    for (let i = 0; i < 20; i++) {
      const lease = (await t.post('/v1/leases', acquireBody('h', [path]))).json();
      assert.ok(lease.fencingToken > last, `token ${lease.fencingToken} after ${last}`);
      last = lease.fencingToken;
      assert.equal((await t.post(`/v1/leases/${lease.id}/release`)).statusCode, 200);
    }
  });
});

describe('requestId makes acquire safe to retry', () => {
  test('the same holder and requestId answers the same lease with 200, not a conflict with itself', async () => {
    const path = instance();
    const body = acquireBody('conductor-z', [path], { requestId: 'resize-A' });
    const first = await t.post('/v1/leases', body);
    assert.equal(first.statusCode, 201);
    const retries = await Promise.all(Array.from({ length: 5 }, () => t.post('/v1/leases', body)));
    for (const retry of retries) {
      assert.equal(retry.statusCode, 200);
      assert.equal(retry.json().id, first.json().id);
      assert.equal(retry.json().fencingToken, first.json().fencingToken);
    }
  });

  test('a retry that lists the resources or payload keys in another order is the same request', async () => {
    const a = instance();
    const b = instance();
    const first = await t.post('/v1/leases', acquireBody('z', [{ path: a, mode: 'shared' }, b], {
      requestId: 'order', action: { kind: 'resize', payload: { flavor: 'm1', disk: { size: 20, type: 'ssd' } } },
    }));
    assert.equal(first.statusCode, 201);
    const retry = await t.post('/v1/leases', acquireBody('z', [{ path: b, mode: 'exclusive' }, { mode: 'shared', path: a }], {
      action: { payload: { disk: { type: 'ssd', size: 20 }, flavor: 'm1' }, kind: 'resize' }, requestId: 'order', ttlMs: 15000,
    }));
    assert.equal(retry.statusCode, 200);
    assert.equal(retry.json().id, first.json().id);
    const otherTtl = await t.post('/v1/leases', acquireBody('z', [{ path: a, mode: 'shared' }, b], {
      requestId: 'order', ttlMs: 5000, action: { kind: 'resize', payload: { flavor: 'm1', disk: { size: 20, type: 'ssd' } } },
    }));
    assert.equal(otherTtl.json().code, 'request_id_reused');
  });

  test('concurrent first attempts with one requestId grant one lease between them', async () => {
    const path = instance();
    const body = acquireBody('conductor-z', [path], { requestId: 'race' });
    const all = await Promise.all(Array.from({ length: 10 }, () => fetch(`${t.baseUrl}/v1/leases`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }))));
    assert.equal(all.filter((r) => r.status === 201).length, 1);
    assert.equal(all.filter((r) => r.status === 200).length, 9);
    assert.equal(new Set(all.map((r) => r.body.id)).size, 1);
  });

  test('another holder with the same requestId is a different request and conflicts', async () => {
    const path = instance();
    await t.post('/v1/leases', acquireBody('a', [path], { requestId: 'same' }));
    const res = await t.post('/v1/leases', acquireBody('b', [path], { requestId: 'same' }));
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'conflict');
  });

  test('reusing a requestId for other resources is 409 request_id_reused and grants nothing', async () => {
    const path = instance();
    await t.post('/v1/leases', acquireBody('a', [path], { requestId: 'r1' }));
    const other = instance();
    const res = await t.post('/v1/leases', acquireBody('a', [other], { requestId: 'r1' }));
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'request_id_reused');
    assert.equal((await t.post('/v1/leases', acquireBody('b', [other]))).statusCode, 201);
  });

  test('after the lease was released, the requestId grants a new lease', async () => {
    const path = instance();
    const first = (await t.post('/v1/leases', acquireBody('a', [path], { requestId: 'again' }))).json();
    await t.post(`/v1/leases/${first.id}/release`);
    const second = await t.post('/v1/leases', acquireBody('a', [path], { requestId: 'again' }));
    assert.equal(second.statusCode, 201);
    assert.notEqual(second.json().id, first.id);
    assert.ok(second.json().fencingToken > first.fencingToken);
  });
});
