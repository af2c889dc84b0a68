import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyPrefix } from '../src/app.js';
import type { Lease, LeasePage as Page } from '../src/client/types.js';
import { acquireBody, acquireLease, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';


const { t, redis } = useTestApp();

let n = 0;
/** A fresh name per use (a root path segment or a holder), so tests in this file never see each other's leases. */
const unique = (name: string) => `${name}-${++n}-${Date.now()}`;

const acquire = acquireLease;

async function list(app: TestApp, query: Record<string, string | number>): Promise<Page> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  const res = await app.get(`/v1/leases${qs ? `?${qs}` : ''}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json<Page>();
}

/** Follows nextCursor until null; returns every page. */
async function listAll(app: TestApp, query: Record<string, string | number>, between?: () => Promise<void>): Promise<Page[]> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const page = await list(app, cursor === null ? query : { ...query, cursor });
    pages.push(page);
    cursor = page.nextCursor;
    assert.ok(pages.length < 1000, 'the listing never ends');
    if (cursor !== null && between) await between();
  } while (cursor !== null);
  return pages;
}

const ids = (leases: { id: string }[]) => leases.map((l) => l.id);
const sortedIds = (leases: { id: string }[]) => ids(leases).sort();
const withoutClock = ({ expiresInMs: _ignored, ...rest }: Lease) => rest;

function assertStrictlyIncreasingTokens(leases: Lease[]): void {
  for (let i = 1; i < leases.length; i++) {
    assert.ok(leases[i]!.fencingToken > leases[i - 1]!.fencingToken, `token ${leases[i]!.fencingToken} listed after ${leases[i - 1]!.fencingToken}`);
  }
}

/** Redis' clock in ms, read without touching any lease. */
async function redisNow(app: TestApp): Promise<number> {
  const [seconds, micros] = await app.redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

describe('GET /v1/leases', () => {
  test('lists every active lease, as GET shows it (with include=payload), in grant order', async () => {
    const own = await startTestApp(redis.url); // its own key prefix: nothing else is listed
    try {
      const a = await acquire(own, 'conductor-a', ['instances/i-1']);
      const b = await acquire(own, 'conductor-b', ['instances/i-2', 'volumes/v-7'], { action: { kind: 'resize', payload: { flavor: 'm1.large' } } });
      const c = await acquire(own, 'conductor-a', [{ path: 'networks/n-3', mode: 'shared' }]);
      const page = await list(own, { include: 'payload' });
      assert.equal(page.nextCursor, null);
      assert.deepEqual(ids(page.items), [a.id, b.id, c.id]);
      assert.deepEqual(ids((await list(own, {})).items), [a.id, b.id, c.id]);
      for (const item of page.items) {
        const read = (await own.get(`/v1/leases/${item.id}`)).json<Lease>();
        assert.deepEqual(withoutClock(item), withoutClock(read));
        assert.equal(item.state, 'active');
      }
    } finally {
      await own.close();
    }
  });

  test('holder filter lists that holder\'s leases only, not those of a holder whose name starts the same', async () => {
    const root = unique('hf');
    const holder = unique('conductor');
    const mine = [await acquire(t, holder, [`${root}/i-1`]), await acquire(t, holder, [`${root}/i-2`, `other-${root}/v-1`])];
    await acquire(t, `${holder}-2`, [`${root}/i-3`]);
    await acquire(t, holder.slice(0, -1), [`${root}/i-4`]);
    const page = await list(t, { holder });
    assert.deepEqual(ids(page.items), ids(mine));
    assert.ok(page.items.every((l) => l.holder === holder));
    assert.equal(page.nextCursor, null);
    assert.deepEqual((await list(t, { holder: unique('nobody') })).items, []);
  });

  test('paging by prefix lists every lease below it once, in token order, whether one call may read them all or not', async () => {
    // A call reads at most limit * 10 + 100 index entries: with limit 5 the prefix's own sets
    // (130 entries) are read whole; with limit 2 (120) the index of every lease is walked instead.
    const root = unique('pp');
    const under: Lease[] = [];
    for (let i = 0; i < 130; i++) {
      under.push(await acquire(t, 'h', [{ path: `${root}/big/i-${i}/volumes/v-1`, mode: i % 2 ? 'shared' : 'exclusive' }]));
      if (i % 5 === 0) await acquire(t, 'h', [`${root}/other/i-${i}`]);
    }
    for (const limit of [5, 2]) {
      const pages = await listAll(t, { prefix: `${root}/big`, limit });
      assert.deepEqual(pages.flatMap((page) => ids(page.items)), ids(under), `limit ${limit}`);
      assert.ok(pages.every((page) => page.items.length <= limit));
    }
  });

  test('prefix filter: leases holding the path or something below it, never a sibling whose name starts the same (i-4 vs i-42)', async () => {
    const root = unique('pf');
    // Shared, so that leases on i-4 and below it coexist.
    const at = await acquire(t, 'h', [{ path: `${root}/instances/i-4`, mode: 'shared' }]);
    const sibling = await acquire(t, 'h', [`${root}/instances/i-42`]);
    const siblingBelow = await acquire(t, 'h', [`${root}/instances/i-4x/volumes/v-1`]);
    const network = await acquire(t, 'h', [`${root}/networks/n-1`]);
    // Holds one resource elsewhere and one below i-4: it matches by that one.
    const multi = await acquire(t, 'h', [{ path: `${root}/networks/n-2` }, { path: `${root}/instances/i-4/ports/p-1`, mode: 'shared' }]);
    const below = await acquire(t, 'h', [{ path: `${root}/instances/i-4/volumes/v-1`, mode: 'shared' }]);

    assert.deepEqual(ids((await list(t, { prefix: `${root}/instances/i-4` })).items), [at.id, multi.id, below.id]);
    assert.deepEqual(ids((await list(t, { prefix: `${root}/instances/i-42` })).items), [sibling.id]);
    assert.deepEqual(ids((await list(t, { prefix: `${root}/instances` })).items), [at.id, sibling.id, siblingBelow.id, multi.id, below.id]);
    assert.deepEqual(ids((await list(t, { prefix: `${root}/networks` })).items), [network.id, multi.id]);
    assert.deepEqual(ids((await list(t, { prefix: root })).items), [at.id, sibling.id, siblingBelow.id, network.id, multi.id, below.id]);
    // A lease on an ancestor covers the prefix but does not hold anything at or below it.
    assert.deepEqual(ids((await list(t, { prefix: `${root}/instances/i-4/volumes/v-1` })).items), [below.id]);
    assert.deepEqual(ids((await list(t, { prefix: `${root}/instances/i-4/volumes` })).items), [below.id]);
    assert.deepEqual((await list(t, { prefix: `${root}/instances/i-5` })).items, []);
    assert.deepEqual((await list(t, { prefix: `${root}/instances/i` })).items, []);
  });

  test('state filter: active and orphaned leases are listed, each state on its own when asked', async () => {
    const root = unique('sf');
    const active = await acquire(t, 'h', [`${root}/i-1`]);
    const doomed = await acquire(t, 'h', [`${root}/i-2`], { action: { kind: 'resize' } });
    const abandoned = await t.post(`/v1/leases/${doomed.id}/release`, { outcome: 'abandoned' });
    assert.equal(abandoned.statusCode, 200, abandoned.body);

    assert.deepEqual(ids((await list(t, { prefix: root, state: 'active' })).items), [active.id]);
    const orphaned = (await list(t, { prefix: root, state: 'orphaned' })).items;
    assert.deepEqual(ids(orphaned), [doomed.id]);
    assert.equal(orphaned[0]!.state, 'orphaned');
    assert.deepEqual(ids((await list(t, { prefix: root })).items), [active.id, doomed.id]);

    const bad = await t.get(`/v1/leases?prefix=${root}&state=released`);
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, 'invalid_request');
  });

  test('holder, prefix and state combine', async () => {
    const root = unique('cf');
    const holder = unique('conductor');
    const target = await acquire(t, holder, [`${root}/instances/i-1`]);
    const deeper = await acquire(t, holder, [`${root}/instances/i-2/volumes/v-1`]);
    await acquire(t, holder, [`${root}/networks/n-1`]);
    await acquire(t, 'someone-else', [`${root}/instances/i-3`]);
    const orphan = await acquire(t, holder, [`${root}/instances/i-4`], { action: { kind: 'resize' } });
    await t.post(`/v1/leases/${orphan.id}/release`, { outcome: 'abandoned' });

    assert.deepEqual(ids((await list(t, { holder, prefix: `${root}/instances` })).items), [target.id, deeper.id, orphan.id]);
    assert.deepEqual(ids((await list(t, { holder, prefix: `${root}/instances`, state: 'active' })).items), [target.id, deeper.id]);
    assert.deepEqual(ids((await list(t, { holder, prefix: `${root}/instances/i-2` })).items), [deeper.id]);
    assert.deepEqual(ids((await list(t, { holder, prefix: `${root}/instances/i` })).items), []);
    assert.deepEqual(ids((await list(t, { holder: 'someone-else', prefix: `${root}/networks` })).items), []);
  });

  test('25 leases paged 7 at a time: every lease exactly once, in increasing fencing-token order', async () => {
    const own = await startTestApp(redis.url);
    try {
      const created: Lease[] = [];
      for (let i = 0; i < 25; i++) created.push(await acquire(own, `conductor-${i % 3}`, [`instances/i-${i}`]));
      const pages = await listAll(own, { limit: 7 });
      assert.deepEqual(pages.map((p) => p.items.length), [7, 7, 7, 4]);
      const listed = pages.flatMap((p) => p.items);
      assert.deepEqual(ids(listed), ids(created));
      assert.equal(new Set(ids(listed)).size, 25);
      assertStrictlyIncreasingTokens(listed);
    } finally {
      await own.close();
    }
  });

  test('a listing whose size is a multiple of limit ends with nextCursor null on its last full page', async () => {
    const root = unique('mul');
    for (let i = 0; i < 14; i++) await acquire(t, 'h', [`${root}/i-${i}`]);
    const pages = await listAll(t, { prefix: root, limit: 7 });
    assert.deepEqual(pages.map((p) => p.items.length), [7, 7]);
  });

  test('renewing leases between pages neither reorders nor repeats them', async () => {
    const root = unique('pg');
    const holder = unique('conductor');
    const created: Lease[] = [];
    for (let i = 0; i < 25; i++) created.push(await acquire(t, holder, [`${root}/instances/i-${i}`], { ttlMs: 10000 }));
    let round = 0;
    const pages = await listAll(t, { prefix: root, limit: 7 }, async () => {
      round++;
      // Renew the leases still to come and some already seen, one by one and all at once.
      for (const lease of created.filter((_, i) => i % 2 === round % 2)) {
        const res = await t.post(`/v1/leases/${lease.id}/renew`, { ttlMs: 20000 + round * 1000 });
        assert.equal(res.statusCode, 200, res.body);
      }
      const all = await t.post(`/v1/holders/${encodeURIComponent(holder)}/renew`, { ttlMs: 30000 + round * 1000 });
      assert.equal(all.json().renewed.length, 25);
    });
    assert.equal(round, 3);
    assert.deepEqual(pages.map((p) => p.items.length), [7, 7, 7, 4]);
    const listed = pages.flatMap((p) => p.items);
    assert.deepEqual(ids(listed), ids(created));
    assertStrictlyIncreasingTokens(listed);
    // The same pages again, after all that renewing.
    assert.deepEqual(ids((await listAll(t, { prefix: root, limit: 7 })).flatMap((p) => p.items)), ids(created));
  });

  test('a filter that matches little may answer short or empty pages, and following nextCursor still finds every match', async () => {
    const root = unique('sparse');
    const holder = unique('conductor');
    // One page looks at limit+200 index entries at most; 250 non-matching leases come first.
    for (let i = 0; i < 250; i++) await acquire(t, holder, [`${root}/elsewhere/i-${i}`]);
    const wanted = [await acquire(t, holder, [`${root}/wanted/i-1`]), await acquire(t, holder, [`${root}/wanted/i-2`])];
    const pages = await listAll(t, { holder, prefix: `${root}/wanted`, limit: 1 });
    assert.ok(pages.some((p) => p.items.length === 0 && p.nextCursor !== null), 'expected at least one empty page with a cursor');
    assert.ok(pages.every((p) => p.items.length <= 1));
    assert.deepEqual(ids(pages.flatMap((p) => p.items)), ids(wanted));
  });

  test('a cursor that the service did not issue is 400 invalid_cursor; a prefix that is not a resource path is 400 invalid_resource', async () => {
    for (const cursor of ['nonsense', Buffer.from('v1:abc').toString('base64url'), Buffer.from('v2:12').toString('base64url')]) {
      const res = await t.get(`/v1/leases?cursor=${cursor}`);
      assert.equal(res.statusCode, 400, cursor);
      assert.equal(res.json().code, 'invalid_cursor', cursor);
    }
    for (const prefix of ['instances/', '/instances', 'instances//i-1', 'instances/../x']) {
      const res = await t.get(`/v1/leases?prefix=${encodeURIComponent(prefix)}`);
      assert.equal(res.statusCode, 400, prefix);
      assert.equal(res.json().code, 'invalid_resource', prefix);
    }
    const res = await t.get('/v1/leases?limit=0');
    assert.equal(res.statusCode, 400);
  });

  test('a released lease is no longer listed, by prefix or by holder', async () => {
    const root = unique('rel');
    const holder = unique('conductor');
    const kept = await acquire(t, holder, [`${root}/i-1`]);
    const released = await acquire(t, holder, [`${root}/i-2`]);
    assert.equal((await t.post(`/v1/leases/${released.id}/release`)).statusCode, 200);
    assert.deepEqual(ids((await list(t, { prefix: root })).items), [kept.id]);
    assert.deepEqual(ids((await list(t, { holder })).items), [kept.id]);
  });

  test('an expired lease leaves the listing, and GET answers 410 lease_expired with its tombstone', async () => {
    const root = unique('exp');
    const holder = unique('conductor');
    const kept = await acquire(t, holder, [`${root}/i-1`], { ttlMs: 60000 });
    const expiring = await acquire(t, holder, [`${root}/i-2`], { ttlMs: 1000 });
    assert.deepEqual(ids((await list(t, { prefix: root })).items), [kept.id, expiring.id]);
    await waitFor(async () => (await list(t, { prefix: root })).items.length === 1, { timeoutMs: 5000, what: 'the expired lease to leave the listing' });
    assert.deepEqual(ids((await list(t, { prefix: root })).items), [kept.id]);
    assert.deepEqual(ids((await list(t, { holder })).items), [kept.id]);

    const res = await t.get(`/v1/leases/${expiring.id}`);
    assert.equal(res.statusCode, 410);
    const body = res.json();
    assert.equal(body.code, 'lease_expired');
    assert.equal(body.id, expiring.id);
    assert.equal(body.state, 'expired');
    assert.equal(body.endedAt, expiring.expiresAt);
    assert.equal(body.fencingToken, expiring.fencingToken);
    assert.deepEqual(body.resources, expiring.resources);
  });

  test('the sweeper settles an expired lease that no request touches', async () => {
    const root = unique('swept');
    const holder = unique('conductor');
    const lease = await acquire(t, holder, [`${root}/i-1`], { ttlMs: 1000 });
    const P = keyPrefix(t.config);
    // Only Redis is read while waiting: no script runs that could settle the lease.
    await waitFor(async () => (await t.redis.hget(`${P}l:${lease.id}`, 'st')) === 'expired', {
      timeoutMs: 5000,
      what: 'the sweeper to settle the lease',
    });
    assert.equal(await t.redis.hget(`${P}l:${lease.id}`, 'end'), String(Date.parse(lease.expiresAt)));
    assert.equal(await t.redis.zscore(`${P}t:`, lease.id), null);
    assert.equal(await t.redis.zscore(`${P}t:${root}`, lease.id), null);
    assert.equal(await t.redis.zscore(`${P}h:${holder}`, lease.id), null);
    assert.equal(await t.redis.zscore(`${P}ax:${root}/i-1`, lease.id), null);
    assert.equal(await t.redis.zscore(`${P}exp`, lease.id), null);

    assert.deepEqual((await list(t, { prefix: root })).items, []);
    const res = await t.get(`/v1/leases/${lease.id}`);
    assert.equal(res.statusCode, 410);
    assert.equal(res.json().code, 'lease_expired');
    assert.equal(res.json().state, 'expired');
    assert.equal(res.json().endedAt, lease.expiresAt);
  });
});

describe('POST /v1/holders/{holder}/renew', () => {
  const renewHolder = (holder: string, body: unknown = {}) => t.post(`/v1/holders/${encodeURIComponent(holder)}/renew`, body);
  const read = async (id: string) => (await t.get(`/v1/leases/${id}`)).json<Lease>();

  test('renews every active lease of the holder and no other holder\'s', async () => {
    const root = unique('hr');
    const holder = unique('conductor');
    const mine = [
      await acquire(t, holder, [`${root}/i-1`], { ttlMs: 5000 }),
      await acquire(t, holder, [`${root}/i-2`, `${root}/v-2`], { ttlMs: 5000, action: { kind: 'resize' } }),
      await acquire(t, holder, [{ path: `${root}/n-3`, mode: 'shared' }], { ttlMs: 5000 }),
    ];
    const others = [await acquire(t, `${holder}-2`, [`${root}/i-4`], { ttlMs: 5000 }), await acquire(t, holder.slice(0, -1), [`${root}/i-5`], { ttlMs: 5000 })];

    const res = await renewHolder(holder, { ttlMs: 60000 });
    assert.equal(res.statusCode, 200, res.body);
    const renewed = res.json().renewed as { id: string; expiresAt: string }[];
    assert.deepEqual(sortedIds(renewed), sortedIds(mine));
    for (const lease of mine) {
      const entry = renewed.find((r) => r.id === lease.id)!;
      assert.deepEqual(Object.keys(entry).sort(), ['expiresAt', 'id']);
      const now = await read(lease.id);
      assert.equal(now.expiresAt, entry.expiresAt, 'the answer gives the expiresAt that GET shows');
      assert.ok(Date.parse(now.expiresAt) > Date.parse(lease.expiresAt), `${now.expiresAt} is not after ${lease.expiresAt}`);
      assert.equal(Date.parse(now.expiresAt) - Date.parse(now.renewedAt), 60000);
      assert.equal(now.ttlMs, 60000);
    }
    for (const lease of others) {
      const now = await read(lease.id);
      assert.equal(now.expiresAt, lease.expiresAt);
      assert.equal(now.renewedAt, lease.renewedAt);
    }
  });

  test('without ttlMs each lease is renewed by its own ttlMs', async () => {
    const root = unique('own');
    const holder = unique('conductor');
    const short = await acquire(t, holder, [`${root}/i-1`], { ttlMs: 5000 });
    const long = await acquire(t, holder, [`${root}/i-2`], { ttlMs: 8000 });
    const res = await renewHolder(holder);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(sortedIds(res.json().renewed), sortedIds([short, long]));
    for (const [lease, ttlMs] of [[short, 5000], [long, 8000]] as const) {
      const now = await read(lease.id);
      assert.equal(Date.parse(now.expiresAt) - Date.parse(now.renewedAt), ttlMs);
      assert.ok(Date.parse(now.expiresAt) >= Date.parse(lease.expiresAt));
    }
  });

  test('a holder with no leases gets an empty list, with or without a body', async () => {
    const res = await renewHolder(unique('nobody'));
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { renewed: [], nextCursor: null, remaining: 0 });
    const withBody = await renewHolder(unique('nobody'), { ttlMs: 5000 });
    assert.deepEqual(withBody.json(), { renewed: [], nextCursor: null, remaining: 0 });
  });

  test('a holder whose name has "/" and spaces works URL-encoded, and is not confused with the name before the "/"', async () => {
    const root = unique('enc');
    const holder = `team a/conductor ${++n}`;
    const prefixHolder = holder.split('/')[0]!;
    const mine = [await acquire(t, holder, [`${root}/i-1`], { ttlMs: 5000 }), await acquire(t, holder, [`${root}/i-2`], { ttlMs: 5000 })];
    const other = await acquire(t, prefixHolder, [`${root}/i-3`], { ttlMs: 5000 });
    const res = await renewHolder(holder, { ttlMs: 30000 });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(sortedIds(res.json().renewed), sortedIds(mine));
    for (const lease of mine) assert.ok(Date.parse((await read(lease.id)).expiresAt) > Date.parse(lease.expiresAt));
    assert.equal((await read(other.id)).expiresAt, other.expiresAt);
    assert.deepEqual(ids((await list(t, { holder })).items), ids(mine));
  });

  test('an expired lease of the holder is not renewed and stays 410', async () => {
    const root = unique('hexp');
    const holder = unique('conductor');
    const alive = await acquire(t, holder, [`${root}/i-1`], { ttlMs: 30000 });
    const expiring = await acquire(t, holder, [`${root}/i-2`], { ttlMs: 1000 });
    // Wait on Redis' clock only, so the holder renew may be the first to meet the expired lease.
    await waitFor(async () => (await redisNow(t)) > Date.parse(expiring.expiresAt), { timeoutMs: 5000, what: 'the short lease to expire' });
    const res = await renewHolder(holder, { ttlMs: 30000 });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(ids(res.json().renewed), [alive.id]);
    const gone = await t.get(`/v1/leases/${expiring.id}`);
    assert.equal(gone.statusCode, 410);
    assert.equal(gone.json().code, 'lease_expired');
    assert.equal(gone.json().endedAt, expiring.expiresAt);
    assert.equal((await t.post('/v1/leases', acquireBody('next', [`${root}/i-2`]))).statusCode, 201, 'its resource is free');
  });
});

describe('GET /v1/resources/{path}', () => {
  const view = async (path: string) => {
    const res = await t.get(`/v1/resources/${path}`);
    assert.equal(res.statusCode, 200, res.body);
    return res.json<{ path: string; coveredBy: Lease[]; coveredByCount: number; below: { count: number; items: Lease[] } }>();
  };

  test('coveredBy lists the leases on the path and on its ancestors, not on siblings or descendants', async () => {
    const root = unique('cov');
    const path = `${root}/instances/i-1`;
    const onAncestor = await acquire(t, 'a', [{ path: `${root}/instances`, mode: 'shared' }]);
    const onPath = await acquire(t, 'b', [{ path, mode: 'shared' }]);
    const onPathToo = await acquire(t, 'c', [{ path, mode: 'shared' }, { path: `elsewhere-${root}/x` }]);
    await acquire(t, 'd', [{ path: `${root}/instances/i-10`, mode: 'shared' }]);
    await acquire(t, 'e', [{ path: `${root}/instances/i-2`, mode: 'shared' }]);
    const descendant = await acquire(t, 'f', [{ path: `${path}/volumes/v-1`, mode: 'shared' }]);

    const v = await view(path);
    assert.equal(v.path, path);
    assert.deepEqual(sortedIds(v.coveredBy), sortedIds([onAncestor, onPath, onPathToo]));
    const shown = v.coveredBy.find((l) => l.id === onPathToo.id)!;
    assert.deepEqual(withoutClock(shown), withoutClock(onPathToo));
    assert.equal(v.below.count, 1);
    assert.deepEqual(ids(v.below.items), [descendant.id]);

    const deeper = await view(`${path}/volumes/v-1/snapshots/s-1`);
    assert.deepEqual(sortedIds(deeper.coveredBy), sortedIds([onAncestor, onPath, onPathToo, descendant]));
    assert.deepEqual(deeper.below, { count: 0, items: [] });
  });

  test('below lists the leases strictly below the path, not the path\'s own lease', async () => {
    const root = unique('below');
    const path = `${root}/instances/i-1`;
    const own = await acquire(t, 'a', [{ path, mode: 'shared' }]);
    const child = await acquire(t, 'b', [{ path: `${path}/volumes/v-1`, mode: 'shared' }]);
    const grandchild = await acquire(t, 'c', [{ path: `${path}/volumes/v-2/snapshots/s-1`, mode: 'shared' }]);
    await acquire(t, 'd', [`${root}/instances/i-10/volumes/v-1`]);

    const v = await view(path);
    assert.deepEqual(ids(v.coveredBy), [own.id]);
    assert.equal(v.below.count, 2);
    assert.deepEqual(sortedIds(v.below.items), sortedIds([child, grandchild]));
    const parent = await view(`${root}/instances`);
    assert.deepEqual(parent.coveredBy, []);
    assert.equal(parent.below.count, 4);
  });

  test('the count is exact with 150 leases below; items stop at 100', async () => {
    const root = unique('many');
    const created = new Set<string>();
    for (let i = 0; i < 150; i++) created.add((await acquire(t, `h-${i}`, [`${root}/instances/i-${i}`])).id);
    const v = await view(`${root}/instances`);
    assert.equal(v.below.count, 150);
    assert.equal(v.below.items.length, 100);
    assert.equal(new Set(ids(v.below.items)).size, 100);
    for (const item of v.below.items) assert.ok(created.has(item.id));
    assert.equal((await view(root)).below.count, 150);
  });

  test('a URL-encoded path answers the same as the path with its slashes', async () => {
    const root = unique('url');
    const path = `${root}/instances/i-1`;
    await acquire(t, 'a', [path]);
    await acquire(t, 'b', [`${root}/instances/i-2/volumes/v-1`]);
    for (const p of [path, `${root}/instances`]) {
      const plain = await view(p);
      const encoded = await view(encodeURIComponent(p));
      assert.equal(encoded.path, p);
      const strip = (v: typeof plain) => ({ ...v, coveredBy: v.coveredBy.map(withoutClock), below: { ...v.below, items: v.below.items.map(withoutClock) } });
      assert.deepEqual(strip(encoded), strip(plain));
      assert.ok(plain.coveredBy.length + plain.below.count > 0);
    }
  });

  test('shared and exclusive leases below count once each, and a lease with two resources below counts once', async () => {
    const root = unique('mix');
    const path = `${root}/instances/i-1`;
    const shared = await acquire(t, 'a', [{ path: `${path}/volumes/v-1`, mode: 'shared' }]);
    const sharedToo = await acquire(t, 'b', [{ path: `${path}/volumes/v-1`, mode: 'shared' }]);
    const exclusive = await acquire(t, 'c', [`${path}/volumes/v-2`]);
    const two = await acquire(t, 'd', [`${path}/ports/p-1`, `${path}/ports/p-2`]);
    const v = await view(path);
    assert.equal(v.below.count, 4);
    assert.deepEqual(sortedIds(v.below.items), sortedIds([shared, sharedToo, exclusive, two]));
    const ports = await view(`${path}/ports`);
    assert.equal(ports.below.count, 1);
    assert.deepEqual(ids(ports.below.items), [two.id]);
  });

  test('released and expired leases leave the view', async () => {
    const root = unique('gone');
    const path = `${root}/instances/i-1`;
    const released = await acquire(t, 'a', [`${path}/volumes/v-1`]);
    await acquire(t, 'b', [`${path}/volumes/v-2`], { ttlMs: 1000 });
    const kept = await acquire(t, 'c', [`${path}/volumes/v-3`], { ttlMs: 60000 });
    assert.equal((await view(path)).below.count, 3);
    await t.post(`/v1/leases/${released.id}/release`);
    assert.equal((await view(path)).below.count, 2);
    await waitFor(async () => (await view(path)).below.count === 1, { timeoutMs: 5000, what: 'the expired lease to leave the view' });
    assert.deepEqual(ids((await view(path)).below.items), [kept.id]);
  });

  test(
    'coveredBy lists the first 100 leases covering the path and coveredByCount counts them all',
    async () => {
      const path = `${unique('covmany')}/instances/i-1`;
      for (let i = 0; i < 105; i++) await acquire(t, `reader-${i}`, [{ path, mode: 'shared' }]);
      const covering = await view(path);
      assert.equal(covering.coveredBy.length, 100);
      assert.equal(covering.coveredByCount, 105);
    },
  );

  test(
    'below.items lists live leases even when lock-delayed tombstones below rank first',
    async () => {
      const root = unique('ld');
      for (let i = 0; i < 100; i++) {
        const lease = await acquire(t, 'h', [`${root}/instances/i-${i}`], { ttlMs: 60000, lockDelayMs: 30000 });
        assert.equal((await t.del(`/v1/leases/${lease.id}`)).statusCode, 200);
      }
      const live: Lease[] = [];
      for (let i = 0; i < 3; i++) live.push(await acquire(t, 'h', [`${root}/instances/j-${i}`], { ttlMs: 60000 }));
      assert.deepEqual(sortedIds((await view(`${root}/instances`)).below.items), sortedIds(live));
    },
  );

  test('a path that is not a resource path is 400 invalid_resource', async () => {
    for (const path of ['instances//i-1', 'instances/i-1/', 'instances/..', encodeURIComponent('instances/../x')]) {
      const res = await t.get(`/v1/resources/${path}`);
      assert.equal(res.statusCode, 400, path);
      assert.equal(res.json().code, 'invalid_resource', path);
    }
  });
});
