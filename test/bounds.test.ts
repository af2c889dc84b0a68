// Issue 14's findings, one regression test each: no request corrupts state, and what one
// request costs Redis is bounded (by what it reads, never by how much the store holds).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyPrefix } from '../src/app.js';
import { LeaseClient } from '../src/client/lease-client.js';
import type { Lease } from '../src/client/types.js';
import { acquireBody, acquireLease, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const { t, redis } = useTestApp();

let n = 0;
const unique = (name: string) => `${name}-${++n}-${Date.now()}`;

const acquire = acquireLease;

/** How many times Redis ran each command (scripts' own calls included) while `run` ran. */
async function commandCounts(app: TestApp, run: () => Promise<unknown>): Promise<Record<string, number>> {
  await app.redis.config('RESETSTAT');
  await run();
  const counts: Record<string, number> = {};
  for (const match of (await app.redis.info('commandstats')).matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) counts[match[1]!] = Number(match[2]);
  return counts;
}

/** 64 paths of 16 segments each, the widest legal request; `long`: each path 511 characters. */
function widestPaths(root: string, long = false, tag = ''): string[] {
  const segment = (i: number, d: number) => (d === 0 ? root : long ? `n${i}-${d}-${tag}`.padEnd(31, 'x') : `n${i}-${d}${tag}`);
  return Array.from({ length: 64 }, (_, i) => Array.from({ length: 16 }, (_, d) => segment(i, d)).join('/').slice(0, 511));
}

describe('a request changes nothing it cannot finish', () => {
  test('an action payload with a lone surrogate is refused with 400 and nothing is stored', async () => {
    const root = unique('surrogate');
    const before = await t.snapshotKeys();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/leases',
      headers: { 'content-type': 'application/json' },
      payload: `{"holder":"h","resources":[{"path":"${root}/i-1"}],"action":{"kind":"resize","payload":{"s":"\\ud800"}}}`,
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().code, 'invalid_request');
    assert.match(res.json().detail, /body\/action\/payload\/s .*not well-formed Unicode/);
    assert.deepEqual(await t.snapshotKeys(), before);
    // The path is free: nothing half-written blocks it.
    await acquire(t, 'h', [`${root}/i-1`]);
  });

  test('a surrogate pair (an emoji) is well-formed: stored and returned intact, and the orphan it becomes is claimable', async () => {
    const root = unique('emoji');
    const lease = await acquire(t, 'h', [`${root}/i-1`], { action: { kind: 'resize', payload: { note: 'ok \u{1F600}' } } });
    const renewed = await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 'half \u{1F600}' } });
    assert.equal(renewed.statusCode, 200, renewed.body);
    const revoked = await t.del(`/v1/leases/${lease.id}`);
    assert.equal(revoked.statusCode, 200, revoked.body);
    const claim = await t.post('/v1/orphans/claim', { holder: 'h2', kinds: ['resize'] });
    assert.equal(claim.statusCode, 200, claim.body);
    assert.deepEqual(claim.json().lease.action.payload, { note: 'ok \u{1F600}' });
    assert.deepEqual(claim.json().lease.action.progress, { step: 'half \u{1F600}' });
  });

  test('a lease stored before kind and maxAttempts had fields of their own is orphaned and claimed as before', async () => {
    const root = unique('legacy');
    const prefix = keyPrefix(t.config);
    const lease = await acquire(t, 'h', [`${root}/i-1`], { action: { kind: 'resize', payload: { flavor: 'm1' }, maxAttempts: 4 } });
    // As the previous version wrote it: the action as one JSON field.
    await t.redis.hdel(`${prefix}l:${lease.id}`, 'kind', 'ma', 'pay');
    await t.redis.hset(`${prefix}l:${lease.id}`, 'act', JSON.stringify({ kind: 'resize', payload: { flavor: 'm1' }, maxAttempts: 4 }));
    assert.deepEqual((await t.get(`/v1/leases/${lease.id}`)).json().action, { kind: 'resize', payload: { flavor: 'm1' }, attempt: 1, maxAttempts: 4, progress: null });
    assert.equal((await t.del(`/v1/leases/${lease.id}`)).statusCode, 200);
    const claim = await t.post('/v1/orphans/claim', { holder: 'h2', kinds: ['resize'] });
    assert.equal(claim.statusCode, 200, claim.body);
    assert.deepEqual(claim.json().lease.action, { kind: 'resize', payload: { flavor: 'm1' }, attempt: 2, maxAttempts: 4, progress: null });
  });

  test('a stored legacy action that Lua cannot decode (the old bug) still ends: a dead letter an operator resolves, and the path is free', async () => {
    const root = unique('legacy-bad');
    const prefix = keyPrefix(t.config);
    const lease = await acquire(t, 'h', [`${root}/i-1`], { action: { kind: 'resize' } });
    await t.redis.hdel(`${prefix}l:${lease.id}`, 'kind', 'ma', 'pay');
    await t.redis.hset(`${prefix}l:${lease.id}`, 'act', '{"kind":"resize","payload":{"s":"\\ud800"},"maxAttempts":3}');
    const revoked = await t.del(`/v1/leases/${lease.id}`);
    assert.equal(revoked.statusCode, 200, revoked.body);
    const orphan = (await t.get(`/v1/orphans/${revoked.json().orphanId}`)).json();
    assert.equal(orphan.state, 'dead_letter');
    assert.equal(orphan.action.kind, 'unknown');
    assert.equal((await t.post(`/v1/orphans/${orphan.id}/resolve`, { resolution: 'discard' })).statusCode, 200);
    await acquire(t, 'h', [`${root}/i-1`]);
  });

  test('a JSON body in a charset other than UTF-8 is refused with 415', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/leases',
      headers: { 'content-type': 'application/json; charset=iso-8859-1' },
      payload: JSON.stringify(acquireBody('h', [unique('latin1')])),
    });
    assert.equal(res.statusCode, 415, res.body);
    assert.equal(res.json().code, 'unsupported_media_type');
    const utf8 = await t.app.inject({
      method: 'POST',
      url: '/v1/leases',
      headers: { 'content-type': 'application/json; charset="UTF-8"' },
      payload: JSON.stringify(acquireBody('h', [unique('utf8')])),
    });
    assert.equal(utf8.statusCode, 201, utf8.body);
  });
});

describe('what one request reads', () => {
  test('a conflicting acquire of 64 resources of 16 segments reads the blocking lease once, and never its payload', async () => {
    const root = unique('wide');
    const paths = widestPaths(root);
    await acquire(t, 'h', paths, { action: { kind: 'resize', payload: { big: 'x'.repeat(60000) } } });
    let res: Awaited<ReturnType<TestApp['post']>> | undefined;
    const counts = await commandCounts(t, async () => {
      res = await t.post('/v1/leases', acquireBody('other', paths));
    });
    assert.equal(res!.statusCode, 409, res!.body);
    assert.equal(res!.json().conflicts.length, 10, 'the first ten conflicts are reported');
    assert.equal(counts.hgetall ?? 0, 0, 'no lease is read whole');
    assert.equal(counts.hmget, 1, 'the one blocking lease is read once');
  });

  test('a holder\'s listing by prefix matches a path at or below the prefix, not one that merely contains it', async () => {
    const root = unique('within');
    const holder = unique('h');
    const below = await acquire(t, holder, [{ path: `${root}/a/x`, mode: 'shared' }, 'elsewhere-1/y']);
    await acquire(t, holder, [`other/${root}/a`]);
    await acquire(t, holder, [`${root}/ab`]);
    await acquire(t, holder, [{ path: `z/${root}/a/x`, mode: 'shared' }]);
    const at = await acquire(t, holder, [{ path: 'elsewhere-2', mode: 'shared' }, { path: `${root}/a`, mode: 'shared' }]);
    const listed = (await t.get(`/v1/leases?holder=${holder}&prefix=${root}/a`)).json().items as Lease[];
    assert.deepEqual(listed.map((l) => l.id), [below.id, at.id]);
  });

  test('listings present leases and claims that expired unnoticed by Redis\' clock, and write nothing', async () => {
    const own = await startTestApp(redis.url, { TTL_MIN_MS: '100' }, { sweep: false });
    try {
      const root = unique('unsettled');
      const kind = unique('kind');
      const plain = await acquire(own, 'h', [`${root}/a`], { ttlMs: 200 });
      const acting = await acquire(own, 'h', [`${root}/b`], { ttlMs: 200, action: { kind } });
      await own.del(`/v1/leases/${(await acquire(own, 'h', [`${root}/c`], { action: { kind } })).id}`);
      const claim = (await own.post('/v1/orphans/claim', { holder: 'h2', ttlMs: 200, kinds: [kind] })).json();
      await waitFor(async () => Date.parse((await own.get(`/v1/leases?prefix=${root}`)).json().items[0]?.expiresAt ?? 0) + 50 < Date.now(), {
        what: 'the leases to expire',
      });
      await sleep(250);
      const before = await own.snapshotKeys();
      const leases = (await own.get(`/v1/leases?prefix=${root}`)).json().items as Lease[];
      assert.deepEqual(
        leases.map((l) => [l.id, l.state]).sort(),
        [[acting.id, 'orphaned'], [claim.lease.id, 'orphaned']].sort(),
        'those with an action (the claim\'s too) are orphaned; the one without holds nothing',
      );
      assert.ok(!leases.some((l) => l.id === plain.id));
      assert.equal((await own.get(`/v1/resources/${root}/b`)).json().coveredBy[0].state, 'orphaned');
      const orphans = (await own.get(`/v1/orphans?kind=${kind}`)).json().items;
      const back = orphans.find((o: { id: string }) => o.id === claim.orphan.id);
      assert.equal(back.state, 'pending', 'its claim expired: pending again');
      assert.equal(back.claimedBy, null);
      assert.equal(back.lastLeaseId, claim.lease.id);
      assert.equal(back.action.attempt, 2);
      assert.deepEqual(await own.snapshotKeys(), before, 'reading many changed nothing');
      // An acquire's conflict check sees it the same way, also without writing.
      assert.equal((await own.post('/v1/leases', acquireBody('x', [`${root}/b`]))).json().conflicts[0].state, 'orphaned');
    } finally {
      await own.close();
    }
  });

  test('listings and the resource view leave payload and progress out unless include=payload', async () => {
    const root = unique('listing');
    const lease = await acquire(t, 'h', [`${root}/i-1`], { action: { kind: 'resize', payload: { flavor: 'm1.large' } } });
    await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 1 } });
    const plain = (await t.get(`/v1/leases?prefix=${root}`)).json();
    assert.deepEqual(plain.items[0].action, { kind: 'resize', payload: null, attempt: 1, maxAttempts: 3, progress: null });
    const full = (await t.get(`/v1/leases?prefix=${root}&include=payload`)).json();
    assert.deepEqual(full.items[0].action, { kind: 'resize', payload: { flavor: 'm1.large' }, attempt: 1, maxAttempts: 3, progress: { step: 1 } });
    const view = (await t.get(`/v1/resources/${root}/i-1`)).json();
    assert.equal(view.coveredBy[0].action.payload, null);
    assert.deepEqual((await t.get(`/v1/resources/${root}/i-1?include=payload`)).json().coveredBy[0].action.payload, { flavor: 'm1.large' });
    // The lease itself still answers with everything.
    assert.deepEqual((await t.get(`/v1/leases/${lease.id}`)).json().action.payload, { flavor: 'm1.large' });
  });

  test('a page of wide leases stops at about 256 KiB and goes on from its cursor', async () => {
    const root = unique('wide-page');
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await acquire(t, 'h', widestPaths(root, true, `l${i}`))).id);
    const first = (await t.get(`/v1/leases?prefix=${root}&limit=100`)).json();
    assert.ok(first.items.length < 40 && first.items.length > 0, `${first.items.length} of 40 wide leases in the first page`);
    assert.ok(JSON.stringify(first).length < 1.5 * 256 * 1024);
    const rest: string[] = [];
    for (let cursor = first.nextCursor; cursor; ) {
      const page = (await t.get(`/v1/leases?prefix=${root}&limit=100&cursor=${cursor}`)).json();
      rest.push(...page.items.map((l: Lease) => l.id));
      cursor = page.nextCursor;
    }
    assert.deepEqual([...first.items.map((l: Lease) => l.id), ...rest], ids, 'every lease once, in grant order');
  });

  test('the resource view and the fencing check list the first 100 of 130 shared leases, count them all, and check any token exactly', async () => {
    const root = unique('crowd');
    const leases: Lease[] = [];
    for (let i = 0; i < 130; i++) leases.push(await acquire(t, `reader-${i}`, [{ path: root, mode: 'shared' }]));
    const view = (await t.get(`/v1/resources/${root}/disk-1`)).json();
    assert.equal(view.coveredBy.length, 100);
    assert.equal(view.coveredByCount, 130);
    const last = leases.at(-1)!;
    const check = (await t.post('/v1/fencing/check', { path: `${root}/disk-1`, fencingToken: last.fencingToken })).json();
    assert.equal(check.valid, true, 'the 130th lease is valid though it is not listed');
    assert.equal(check.current.length, 100);
    assert.equal(check.coveringCount, 130);
    await t.post(`/v1/leases/${last.id}/release`, {});
    assert.equal((await t.post('/v1/fencing/check', { path: `${root}/disk-1`, fencingToken: last.fencingToken })).json().valid, false);
  });

  test('holder renew renews at most HOLDER_RENEW_MAX leases a call and says where to go on', async () => {
    const own = await startTestApp(redis.url, { HOLDER_RENEW_MAX: '3' });
    try {
      const holder = unique('many');
      const leases: Lease[] = [];
      for (let i = 0; i < 7; i++) leases.push(await acquire(own, holder, [unique('r')]));
      const first = (await own.post(`/v1/holders/${holder}/renew`, {})).json();
      assert.deepEqual(first.renewed.map((r: { id: string }) => r.id), leases.slice(0, 3).map((l) => l.id));
      assert.equal(first.remaining, 4);
      const second = (await own.post(`/v1/holders/${holder}/renew`, { cursor: first.nextCursor })).json();
      assert.deepEqual(second.renewed.map((r: { id: string }) => r.id), leases.slice(3, 6).map((l) => l.id));
      assert.equal(second.remaining, 1);
      const third = (await own.post(`/v1/holders/${holder}/renew`, { cursor: second.nextCursor })).json();
      assert.deepEqual(third.renewed.map((r: { id: string }) => r.id), [leases[6]!.id]);
      assert.equal(third.nextCursor, null);
      assert.equal(third.remaining, 0);
      // The SDK follows the cursor for those who want every lease renewed.
      const all = await new LeaseClient({ baseUrl: own.baseUrl }).renewHolderAll(holder, { ttlMs: 30000 });
      assert.deepEqual(all.map((r) => r.id), leases.map((l) => l.id));
    } finally {
      await own.close();
    }
  });
});

describe('waiting', () => {
  test('a waiting acquire costs Redis nothing while what it waits on does not change', async () => {
    const root = unique('quiet');
    const blocker = await acquire(t, 'h', [root], { ttlMs: 60000 });
    const metric = async () => {
      const text = (await t.get('/metrics')).body;
      const match = /lease_redis_command_duration_seconds_count\{command="acquire",result="ok"\} (\d+)/.exec(text);
      return Number(match?.[1] ?? 0);
    };
    const before = await metric();
    const waiting = t.post('/v1/leases', acquireBody('w', [`${root}/v-1`], { waitMs: 7000 }));
    await waitFor(async () => (await metric()) === before + 1, { what: 'the waiter to queue' });
    // Longer than the 5 s the waiters used to look again after, whether anything changed or not.
    await sleep(5500);
    assert.equal(await metric(), before + 1, 'no acquire script ran while nothing changed');
    await t.post(`/v1/leases/${blocker.id}/release`, {});
    const res = await waiting;
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(await metric(), before + 2, 'one look when the path was freed');
  });

  test('waiting requests are capped per holder and in all, with 429 and Retry-After', async () => {
    const own = await startTestApp(redis.url, { WAITERS_MAX: '3', WAITERS_MAX_PER_HOLDER: '2' });
    try {
      const root = unique('queue');
      const blocker = await acquire(own, 'h', [root], { ttlMs: 60000 });
      const waiters = [
        Promise.resolve(own.post('/v1/leases', acquireBody('w1', [`${root}/a`], { waitMs: 20000 }))),
        Promise.resolve(own.post('/v1/leases', acquireBody('w1', [`${root}/b`], { waitMs: 20000 }))),
      ];
      await waitFor(async () => (await own.redis.zcard(`${keyPrefix(own.config)}wexp`)) === 2, { what: 'two tickets' });
      const third = await own.post('/v1/leases', acquireBody('w1', [`${root}/c`], { waitMs: 20000 }));
      assert.equal(third.statusCode, 429, third.body);
      assert.equal(third.json().code, 'rate_limited');
      assert.equal(third.headers['retry-after'], '1');
      assert.match(third.json().detail, /WAITERS_MAX_PER_HOLDER/);
      // Without waitMs the same holder is not limited.
      assert.equal((await own.post('/v1/leases', acquireBody('w1', [`${root}/d`]))).statusCode, 409);
      // inject() sends only once awaited or then-ed: start it now.
      waiters.push(Promise.resolve(own.post('/v1/orphans/claim', { holder: 'w2', waitMs: 20000 })));
      await waitFor(async () => {
        // Short, so that a try made before the claim took its slot ends soon (409) and is repeated.
        const res = await own.post('/v1/leases', acquireBody('w3', [`${root}/e`], { waitMs: 200 }));
        return res.statusCode === 429 && /WAITERS_MAX\b/.test(res.json().detail);
      }, { what: 'the total cap to be reached' });
      assert.equal(await own.redis.zcard(`${keyPrefix(own.config)}wexp`), 2, 'a refused waiter queues no ticket');
      await own.post(`/v1/leases/${blocker.id}/release`, {});
      const answers = await Promise.all(waiters.slice(0, 2));
      assert.deepEqual(answers.map((r) => r.statusCode), [201, 201]);
      // Their slots are free again.
      const again = await own.post('/v1/leases', acquireBody('w1', [unique('free')], { waitMs: 1000 }));
      assert.equal(again.statusCode, 201, again.body);
    } finally {
      await own.close();
    }
  });
});

describe('memory', () => {
  test('tombstones, orphaned leases and resolved orphans keep no payload or progress', async () => {
    const root = unique('tomb');
    const prefix = keyPrefix(t.config);
    const fields = async (key: string) => Object.keys(await t.redis.hgetall(key)).sort();
    const released = await acquire(t, 'h', [`${root}/a`], { action: { kind: 'resize', payload: { big: 'x'.repeat(1000) } } });
    await t.post(`/v1/leases/${released.id}/renew`, { progress: { step: 'y'.repeat(1000) } });
    const tombstone = (await t.post(`/v1/leases/${released.id}/release`, {})).json();
    assert.deepEqual(tombstone.action, { kind: 'resize', payload: null, attempt: 1, maxAttempts: 3, progress: null });
    assert.ok(!(await fields(`${prefix}l:${released.id}`)).some((f) => f === 'pay' || f === 'prog'));

    const revoked = await acquire(t, 'h', [`${root}/b`], { action: { kind: 'resize', payload: { keep: true } } });
    await t.post(`/v1/leases/${revoked.id}/renew`, { progress: { step: 2 } });
    await t.del(`/v1/leases/${revoked.id}`);
    assert.ok(!(await fields(`${prefix}l:${revoked.id}`)).some((f) => f === 'pay' || f === 'prog'), 'the orphaned lease keeps none');
    const orphan = (await t.get(`/v1/orphans/${(await t.get(`/v1/leases/${revoked.id}`)).json().orphanId}`)).json();
    assert.deepEqual([orphan.action.payload, orphan.progress], [{ keep: true }, { step: 2 }], 'its orphan has them');
    await t.post(`/v1/orphans/${orphan.id}/resolve`, { resolution: 'discard' });
    assert.ok(!(await fields(`${prefix}o:${orphan.id}`)).some((f) => f === 'pay' || f === 'prog'), 'the resolved orphan keeps none');
  });

  test('the reaper trims the event stream to about STREAM_MAX_BYTES', async () => {
    const own = await startTestApp(redis.url, { STREAM_MAX_BYTES: String(1 << 20) });
    try {
      const stream = `${keyPrefix(own.config)}ev`;
      // About 4 MB of events as wide as a 64-path grant makes them, in one go.
      const paths = JSON.stringify(widestPaths('big'));
      await own.redis.eval(`for i = 1, 600 do redis.call('XADD', KEYS[1], '*', 'type', 'granted', 'paths', ARGV[1]) end`, 1, stream, paths);
      await waitFor(async () => Number(await own.redis.memory('USAGE', stream)) < 1.25 * (1 << 20), { what: 'the stream to shrink to about 1 MB' });
      const kept = await own.redis.xlen(stream);
      assert.ok(kept > 0 && kept < 600, `${kept} of 600 events kept: the newest`);
    } finally {
      await own.close();
    }
  });

  test('the reaper trims events older than STREAM_MAX_AGE_MS', async () => {
    const own = await startTestApp(redis.url);
    try {
      const stream = `${keyPrefix(own.config)}ev`;
      // 150 events from the distant past (more than one radix-tree node of 100), in one go so
      // that no sweep runs half-way, then now's.
      await own.redis.eval(`for i = 1, 150 do redis.call('XADD', KEYS[1], i .. '-0', 'type', 'granted', 'at', i, 'paths', '[]') end`, 1, stream);
      await acquire(own, 'h', [unique('fresh')]);
      await waitFor(async () => {
        const [first] = await own.redis.xrange(stream, '-', '+', 'COUNT', 1);
        return Number(first![0].split('-')[0]) > 100;
      }, { what: 'the oldest events to be trimmed' });
    } finally {
      await own.close();
    }
  });
});

describe('a full Redis', () => {
  test('a write to a Redis at its maxmemory answers 503 saying so, changes nothing, and works again once there is room', async () => {
    const full = await startTestRedis(['--maxmemory-policy', 'noeviction']);
    const own = await startTestApp(full.url);
    try {
      const root = unique('full');
      const held = await acquire(own, 'h', [`${root}/a`]);
      const heartbeat = await acquire(own, 'h', [`${root}/b`], { action: { kind: 'resize' } });
      // 4 MB of a key of our own, then a limit 1 MB above what Redis used before it: Redis is
      // well over its maxmemory (a limit met exactly can dip under it between two commands).
      const usedBefore = Number(/used_memory:(\d+)/.exec(await own.redis.info('memory'))![1]);
      for (let i = 0; i < 64; i++) await own.redis.set(`filler:${i}`, 'x'.repeat(64 * 1024));
      await own.redis.config('SET', 'maxmemory', String(usedBefore + (1 << 20)));
      const before = await own.snapshotKeys();
      const res = await own.post('/v1/leases', acquireBody('h', widestPaths(`${root}-wide`)));
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().code, 'backend_unavailable');
      assert.match(res.json().detail, /Redis is full/);
      assert.ok(res.headers['retry-after']);
      assert.deepEqual(await own.snapshotKeys(), before, 'nothing of the refused acquire was written');
      // Reads still answer, and what frees memory or keeps a lease alive still runs.
      assert.equal((await own.get(`/v1/leases?prefix=${root}`)).statusCode, 200);
      assert.equal((await own.post(`/v1/leases/${heartbeat.id}/renew`, {})).statusCode, 200);
      assert.equal((await own.post(`/v1/leases/${held.id}/release`, {})).statusCode, 200);
      for (let i = 0; i < 64; i++) await own.redis.del(`filler:${i}`);
      assert.equal((await own.post('/v1/leases', acquireBody('h', widestPaths(`${root}-wide`)))).statusCode, 201);
    } finally {
      await own.close();
      await full.stop();
    }
  });
});

