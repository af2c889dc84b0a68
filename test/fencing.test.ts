import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FencingCheck as Check, Lease } from '../src/client/types.js';
import { acquireBody, useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t } = useTestApp();

let n = 0;
/** A fresh root path segment per test, so tests in this file never overlap. */
const unique = (name: string) => `${name}-${++n}-${Date.now()}`;

async function acquire(holder: string, paths: Parameters<typeof acquireBody>[1], extra: Record<string, unknown> = {}): Promise<Lease> {
  const res = await t.post('/v1/leases', acquireBody(holder, paths, extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Lease>();
}

async function check(path: string, fencingToken: number): Promise<Check> {
  const res = await t.post('/v1/fencing/check', { path, fencingToken });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<Check>();
}

const entry = (lease: Lease) => ({ leaseId: lease.id, holder: lease.holder, fencingToken: lease.fencingToken, state: 'active' });
const byToken = (a: { fencingToken: number }, b: { fencingToken: number }) => a.fencingToken - b.fencingToken;

describe('POST /v1/fencing/check', () => {
  test('the token of the active lease on a path is valid for that path and for paths below it', async () => {
    const path = `${unique('r')}/instances/i-42`;
    const lease = await acquire('conductor-z', [path]);
    for (const p of [path, `${path}/volumes/v-7`, `${path}/volumes/v-7/snapshots/s-1`]) {
      assert.deepEqual(await check(p, lease.fencingToken), { valid: true, current: [entry(lease)], coveringCount: 1 }, p);
    }
    const wrong = await check(path, lease.fencingToken - 1);
    assert.equal(wrong.valid, false);
    assert.deepEqual(wrong.current, [entry(lease)]);
  });

  test('a lease does not make its token valid for a sibling that starts the same (i-42 vs i-420), nor for its ancestor', async () => {
    const root = unique('r');
    const path = `${root}/instances/i-42`;
    const lease = await acquire('conductor-z', [`${path}/volumes/v-7`]);
    for (const p of [`${path}0`, `${path}0/volumes/v-7`, path, `${root}/instances`, `${path}/volumes/v-70`]) {
      assert.deepEqual(await check(p, lease.fencingToken), { valid: false, current: [], coveringCount: 0 }, p);
    }
  });

  test('after a release and a new grant, the old token is stale and the new one valid', async () => {
    const path = `${unique('r')}/instances/i-42`;
    const old = await acquire('conductor-a', [path]);
    assert.equal((await t.post(`/v1/leases/${old.id}/release`)).statusCode, 200);
    assert.deepEqual(await check(path, old.fencingToken), { valid: false, current: [], coveringCount: 0 });
    const next = await acquire('conductor-b', [path]);
    assert.ok(next.fencingToken > old.fencingToken);
    assert.deepEqual(await check(path, old.fencingToken), { valid: false, current: [entry(next)], coveringCount: 1 });
    assert.deepEqual(await check(path, next.fencingToken), { valid: true, current: [entry(next)], coveringCount: 1 });
    assert.deepEqual(await check(`${path}/volumes/v-1`, old.fencingToken), { valid: false, current: [entry(next)], coveringCount: 1 });
  });

  test('a token stops being valid once its lease expires', async () => {
    const path = `${unique('r')}/instances/i-42`;
    const lease = await acquire('conductor-z', [path], { ttlMs: 1000 });
    assert.equal((await check(path, lease.fencingToken)).valid, true);
    await waitFor(async () => !(await check(path, lease.fencingToken)).valid, { timeoutMs: 5000, what: 'the token to go stale' });
    assert.deepEqual(await check(path, lease.fencingToken), { valid: false, current: [], coveringCount: 0 });
    assert.equal((await t.get(`/v1/leases/${lease.id}`)).json().code, 'lease_expired');
  });

  test('revoked and orphaned leases have stale tokens, though an orphan still reserves the resource', async () => {
    const root = unique('r');
    const revoked = await acquire('conductor-a', [`${root}/i-1`]);
    assert.equal((await t.del(`/v1/leases/${revoked.id}`)).statusCode, 200);
    assert.deepEqual(await check(`${root}/i-1`, revoked.fencingToken), { valid: false, current: [], coveringCount: 0 });

    const orphaned = await acquire('conductor-b', [`${root}/i-2`], { action: { kind: 'resize' } });
    assert.equal((await t.post(`/v1/leases/${orphaned.id}/release`, { outcome: 'abandoned' })).statusCode, 200);
    assert.equal((await t.post('/v1/leases', acquireBody('conductor-c', [`${root}/i-2`]))).statusCode, 409, 'the orphan reserves it');
    // Not current, but counted: it still covers the path as an orphan.
    assert.deepEqual(await check(`${root}/i-2`, orphaned.fencingToken), { valid: false, current: [], coveringCount: 1 });
  });

  test('with two shared leases on a path both tokens are valid and current lists both', async () => {
    const path = `${unique('r')}/instances/i-42`;
    const first = await acquire('reader-1', [{ path, mode: 'shared' }]);
    const second = await acquire('reader-2', [{ path, mode: 'shared' }]);
    for (const p of [path, `${path}/volumes/v-1`]) {
      for (const lease of [first, second]) {
        const result = await check(p, lease.fencingToken);
        assert.equal(result.valid, true);
        assert.deepEqual([...result.current].sort(byToken), [entry(first), entry(second)]);
      }
    }
  });

  test('current lists the active leases on the path and on its ancestors', async () => {
    const root = unique('r');
    const ancestor = await acquire('reader-1', [{ path: `${root}/instances`, mode: 'shared' }]);
    const own = await acquire('reader-2', [{ path: `${root}/instances/i-1`, mode: 'shared' }]);
    await acquire('reader-3', [{ path: `${root}/instances/i-2`, mode: 'shared' }]);
    await acquire('reader-4', [{ path: `${root}/instances/i-1/volumes/v-1`, mode: 'shared' }]);
    const result = await check(`${root}/instances/i-1`, ancestor.fencingToken);
    assert.equal(result.valid, true);
    assert.deepEqual([...result.current].sort(byToken), [entry(ancestor), entry(own)]);
  });

  test(
    'with more than 100 shared leases on a path, the token of each one is still valid; current lists the first 100 and all are counted',
    async () => {
      const path = `${unique('r')}/instances/i-42`;
      const leases: Lease[] = [];
      for (let i = 0; i < 105; i++) leases.push(await acquire(`reader-${i}`, [{ path, mode: 'shared' }]));
      const last = leases[leases.length - 1]!;
      const result = await check(path, last.fencingToken);
      assert.equal(result.valid, true);
      assert.equal(result.current.length, 100);
      assert.equal(result.coveringCount, 105);
      for (const lease of leases.slice(0, 5)) assert.equal((await check(path, lease.fencingToken)).valid, true);
    },
  );

  test('a malformed check is 400', async () => {
    const cases: [unknown, string][] = [
      [{ path: 'instances//i-1', fencingToken: 1 }, 'invalid_resource'],
      [{ path: 'instances/i-1', fencingToken: -1 }, 'invalid_request'],
      [{ path: 'instances/i-1', fencingToken: '12' }, 'invalid_request'],
      [{ path: 'instances/i-1' }, 'invalid_request'],
    ];
    for (const [body, code] of cases) {
      const res = await t.post('/v1/fencing/check', body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(res.json().code, code, JSON.stringify(body));
    }
  });
});

/**
 * A resource server that fences writes: it keeps the largest token seen per path and
 * refuses smaller ones, and it asks the lease service whether the token is still valid,
 * so a holder that lost its lease is refused even before anyone else has written.
 */
class FencedResourceServer {
  private readonly largest = new Map<string, number>();
  readonly data = new Map<string, string>();

  constructor(private readonly leaseService: string) {}

  async write(path: string, fencingToken: number, value: string): Promise<'accepted' | 'rejected'> {
    if (fencingToken < (this.largest.get(path) ?? 0)) return 'rejected';
    const res = await fetch(`${this.leaseService}/v1/fencing/check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path, fencingToken }),
    });
    if (res.status !== 200 || !((await res.json()) as Check).valid) return 'rejected';
    this.largest.set(path, fencingToken);
    this.data.set(path, value);
    return 'accepted';
  }
}

describe('a fenced resource server', () => {
  test('refuses the writes of a holder whose lease expired and went to another holder', async () => {
    const path = `${unique('r')}/instances/i-42/volumes/v-7`;
    const server = new FencedResourceServer(t.baseUrl);
    const slow = await acquire('conductor-slow', [path], { ttlMs: 1000 });
    assert.equal(await server.write(path, slow.fencingToken, 'slow-1'), 'accepted');

    // The slow holder stalls; once its lease has expired another holder gets the resource.
    const res = await waitFor(
      async () => {
        const attempt = await t.post('/v1/leases', acquireBody('conductor-fast', [path]));
        return attempt.statusCode === 201 ? attempt : undefined;
      },
      { timeoutMs: 5000, what: 'the resource to be granted again' },
    );
    const fast = res.json<Lease>();
    assert.ok(fast.fencingToken > slow.fencingToken);

    // The slow holder wakes up: its token is still the largest seen, but it is no longer valid.
    assert.equal(await server.write(path, slow.fencingToken, 'slow-2'), 'rejected');
    assert.equal(await server.write(path, fast.fencingToken, 'fast-1'), 'accepted');
    assert.equal(await server.write(path, slow.fencingToken, 'slow-3'), 'rejected');
    assert.equal(server.data.get(path), 'fast-1');
    assert.equal((await t.post(`/v1/leases/${slow.id}/renew`)).statusCode, 410, 'the slow holder learns it lost the lease');
  });
});

describe('fencing tokens', () => {
  test('strictly increase across many sequential conflicting grants, however the previous lease ended', async () => {
    const root = unique('seq');
    const instance = `${root}/instances/i-1`;
    // Each grant conflicts with the one before: the same path, a covering path or a covered one.
    const paths = [instance, `${instance}/volumes/v-1`, `${root}/instances`, instance, `${instance}/volumes/v-1/snapshots/s-1`];
    let last = 0;
    for (let i = 0; i < 40; i++) {
      const lease = await acquire(`conductor-${i % 4}`, [paths[i % paths.length]!]);
      assert.ok(lease.fencingToken > last, `grant ${i}: token ${lease.fencingToken} after ${last}`);
      last = lease.fencingToken;
      const ended = i % 2 === 0 ? await t.post(`/v1/leases/${lease.id}/release`) : await t.del(`/v1/leases/${lease.id}`);
      assert.equal(ended.statusCode, 200, ended.body);
    }
    // Shared readers, then a writer that waited for them, then one after an expiry.
    const readers = [await acquire('reader-1', [{ path: instance, mode: 'shared' }]), await acquire('reader-2', [{ path: instance, mode: 'shared' }])];
    for (const reader of readers) {
      assert.ok(reader.fencingToken > last);
      last = reader.fencingToken;
      await t.post(`/v1/leases/${reader.id}/release`);
    }
    const writer = await acquire('writer', [instance], { ttlMs: 1000 });
    assert.ok(writer.fencingToken > last);
    const afterExpiry = await waitFor(
      async () => {
        const attempt = await t.post('/v1/leases', acquireBody('next-writer', [instance]));
        return attempt.statusCode === 201 ? attempt.json<Lease>() : undefined;
      },
      { timeoutMs: 5000, what: 'the writer\'s lease to expire' },
    );
    assert.ok(afterExpiry.fencingToken > writer.fencingToken);
  });

  test('20 concurrent acquires on different paths get 20 distinct tokens', async () => {
    const root = unique('conc');
    const before = await acquire('first', [`${root}/first`]);
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        fetch(`${t.baseUrl}/v1/leases`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(acquireBody(`conductor-${i}`, [`${root}/instances/i-${i}`])),
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as Lease })),
      ),
    );
    assert.deepEqual(responses.map((r) => r.status), Array(20).fill(201));
    const tokens = responses.map((r) => r.body.fencingToken);
    assert.equal(new Set(tokens).size, 20);
    for (const token of tokens) assert.ok(Number.isSafeInteger(token) && token > before.fencingToken);
    const later = await acquire('last', [`${root}/last`]);
    assert.ok(tokens.every((token) => token < later.fencingToken));
  });
});
