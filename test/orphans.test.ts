// Orphans: the action of a lease whose holder died, gave up or was revoked. Its resources
// stay reserved until a conductor claims it (with the dead holder's progress, the next
// attempt and a greater token) or an operator resolves it; each orphaning is published once.
// Real redis-server, real time, ttlMs 1000 (the smallest accepted).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import { keyPrefix } from '../src/app.js';
import type { Claim, Lease, Orphan } from '../src/client/types.js';
import { decodePathList } from '../src/store/resource-codec.js';
import { acquireBody, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';


type StreamEntry = Record<string, string> & { streamId: string };

const { t, redis } = useTestApp();

let n = 0;
/** A fresh name per use: the apps of this file share one key prefix, so each test keeps to its own paths and kinds. */
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;
const instance = () => `instances/${unique('i')}`;
const PAYLOAD = { flavor: 'm1.large' };

/** Acquires `path` for an action of `kind` with the shortest ttl, so it dies soon unless renewed. */
async function acquireAction(app: TestApp, holder: string, path: string, kind: string, extra: Record<string, unknown> = {}): Promise<Lease> {
  const res = await app.post('/v1/leases', acquireBody(holder, [path], { ttlMs: 1000, action: { kind, payload: PAYLOAD }, ...extra }));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Lease>();
}

/** Releases a lease with an action as abandoned: its orphan is pending at once. */
async function abandon(app: TestApp, lease: Lease): Promise<string> {
  const res = await app.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' });
  assert.equal(res.statusCode, 200, res.body);
  assert.ok(res.json().orphanId, 'an abandoned lease with an action names its orphan');
  return res.json().orphanId as string;
}

/**
 * Waits until the orphan whose last lease is `leaseId` is listed. Only the orphan listing is
 * read, never the lease, so what settles an expired lease here is the reaper.
 */
async function orphanOf(app: TestApp, leaseId: string, kind: string): Promise<Orphan> {
  return waitFor(
    async () => {
      const res = await app.get(`/v1/orphans?kind=${encodeURIComponent(kind)}&limit=100&include=payload`);
      assert.equal(res.statusCode, 200, res.body);
      return (res.json().items as Orphan[]).find((o) => o.lastLeaseId === leaseId);
    },
    { what: `the orphan of lease ${leaseId}` },
  );
}

async function getOrphan(app: TestApp, id: string): Promise<Orphan> {
  const res = await app.get(`/v1/orphans/${id}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json<Orphan>();
}

function claim(app: TestApp, body: Record<string, unknown>): Promise<LightMyRequestResponse> {
  return app.post('/v1/orphans/claim', body);
}

/** A claim that must succeed; `kinds` null claims any kind. */
async function claimOne(app: TestApp, holder: string, kinds: string[] | null, extra: Record<string, unknown> = {}): Promise<Claim> {
  const res = await claim(app, { holder, ...(kinds ? { kinds } : {}), ...extra });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<Claim>();
}

async function claimOverHttp(app: TestApp, body: Record<string, unknown>): Promise<{ status: number; body: Claim | null }> {
  const res = await fetch(`${app.baseUrl}/v1/orphans/claim`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Claim | null) : null };
}

/** Every entry of one of the app's streams (`orphans` or `ev`), fields as an object. */
async function streamEntries(app: TestApp, name: 'orphans' | 'ev'): Promise<StreamEntry[]> {
  const entries = await app.redis.xrange(`${keyPrefix(app.config)}${name}`, '-', '+');
  return entries.map(([streamId, flat]) => {
    const entry: StreamEntry = { streamId };
    for (let i = 0; i + 1 < flat.length; i += 2) entry[flat[i]!] = flat[i + 1]!;
    return entry;
  });
}

/** When Redis appended a stream entry (its id is Redis' clock in ms). */
const appendedAt = (entry: StreamEntry) => Number(entry.streamId.split('-')[0]);

/** Waits until Redis' clock has passed `iso` (+ extraMs), without asking the service anything. */
async function redisClockPast(app: TestApp, iso: string, extraMs = 0): Promise<void> {
  const until = Date.parse(iso) + extraMs;
  await waitFor(
    async () => {
      const [seconds, micros] = await app.redis.time();
      return Number(seconds) * 1000 + Number(micros) / 1000 > until + 5;
    },
    { what: `Redis clock past ${iso}` },
  );
}

async function assertBlockedBy(app: TestApp, path: string, leaseId: string, state: string): Promise<void> {
  const res = await app.post('/v1/leases', acquireBody(unique('other'), [path]));
  assert.equal(res.statusCode, 409, res.body);
  const conflicts = res.json().conflicts as { leaseId: string; state: string }[];
  assert.deepEqual(
    conflicts.map((c) => [c.leaseId, c.state]),
    [[leaseId, state]],
  );
}

async function assertFree(app: TestApp, path: string): Promise<void> {
  const res = await app.post('/v1/leases', acquireBody(unique('next'), [path]));
  assert.equal(res.statusCode, 201, res.body);
  // Let it go again, so the path is as the test left it.
  await app.post(`/v1/leases/${res.json().id}/release`);
}

describe('a lease with an action that expires becomes an orphan', () => {
  test('the orphan is listed pending with reason expired, attempt 1, the dead lease, and orphanedAt = its expiresAt', async () => {
    const kind = unique('resize');
    const lease = await acquireAction(t, 'conductor-z', instance(), kind);
    const orphan = await orphanOf(t, lease.id, kind);
    assert.equal(orphan.state, 'pending');
    assert.equal(orphan.reason, 'expired');
    assert.deepEqual(orphan.action, { kind, payload: PAYLOAD, attempt: 1, maxAttempts: 3 });
    assert.deepEqual(orphan.resources, lease.resources);
    assert.equal(orphan.lastLeaseId, lease.id);
    assert.equal(orphan.lastHolder, 'conductor-z');
    assert.equal(orphan.lastFencingToken, lease.fencingToken);
    assert.equal(orphan.orphanedAt, lease.expiresAt);
    assert.equal(orphan.claimedBy, null);
    assert.equal(orphan.claimedLeaseId, null);
    assert.equal(orphan.progress, null);
    const pending = (await t.get(`/v1/orphans?state=pending&kind=${kind}&include=payload`)).json().items as Orphan[];
    assert.deepEqual(pending, [orphan]);
  });

  test('the dead lease reads as orphaned, keeps its path and the paths below reserved, and its late renew gets 410 lease_expired', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind);
    const orphan = await orphanOf(t, lease.id, kind);

    const got = await t.get(`/v1/leases/${lease.id}`);
    assert.equal(got.statusCode, 200, got.body);
    assert.equal(got.json().state, 'orphaned');
    assert.equal(got.json().orphanId, orphan.id);

    for (const wanted of [path, `${path}/volumes/v`]) {
      const res = await t.post('/v1/leases', acquireBody('deleter', [wanted]));
      assert.equal(res.statusCode, 409, res.body);
      assert.deepEqual(res.json().conflicts, [{ path, leaseId: lease.id, holder: 'conductor-z', mode: 'exclusive', state: 'orphaned' }]);
    }

    const late = await t.post(`/v1/leases/${lease.id}/renew`, {});
    assert.equal(late.statusCode, 410, late.body);
    assert.equal(late.json().code, 'lease_expired');
    assert.equal(late.json().orphanId, orphan.id);
    assert.equal((await getOrphan(t, orphan.id)).state, 'pending', 'a late renew does not revive the orphan');
  });
});

describe('claiming an orphan', () => {
  test('the claimer gets a new lease on the same resources: the next attempt, a greater token and the last progress', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind);
    const renewed = await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 'disk-copied' } });
    assert.equal(renewed.statusCode, 200, renewed.body);
    const orphan = await orphanOf(t, lease.id, kind);
    assert.deepEqual(orphan.progress, { step: 'disk-copied' });

    const claimed = await claimOne(t, 'conductor-y', [kind]);
    assert.equal(claimed.orphan.id, orphan.id);
    assert.equal(claimed.orphan.state, 'claimed');
    assert.equal(claimed.orphan.claimedBy, 'conductor-y');
    assert.equal(claimed.orphan.claimedLeaseId, claimed.lease.id);
    assert.equal(claimed.lease.state, 'active');
    assert.equal(claimed.lease.holder, 'conductor-y');
    assert.equal(claimed.lease.orphanId, orphan.id);
    assert.deepEqual(claimed.lease.resources, lease.resources);
    assert.deepEqual(claimed.lease.action, { kind, payload: PAYLOAD, attempt: 2, maxAttempts: 3, progress: { step: 'disk-copied' } });
    assert.ok(claimed.lease.fencingToken > claimed.orphan.lastFencingToken);
    assert.ok(claimed.lease.fencingToken > lease.fencingToken);
    assert.deepEqual(await getOrphan(t, orphan.id), claimed.orphan);
  });

  test('once claimed, the dead lease answers 410 with its orphanId and the claim\'s lease holds the resources', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind);
    const orphan = await orphanOf(t, lease.id, kind);
    const claimed = await claimOne(t, 'conductor-y', [kind]);

    for (const res of [await t.get(`/v1/leases/${lease.id}`), await t.post(`/v1/leases/${lease.id}/renew`, {})]) {
      assert.equal(res.statusCode, 410, res.body);
      assert.equal(res.json().code, 'lease_expired');
      assert.equal(res.json().orphanId, orphan.id);
    }
    await assertBlockedBy(t, `${path}/volumes/v`, claimed.lease.id, 'active');
  });

  test('ten concurrent claims of one pending orphan: exactly one gets it, nine get 204', async () => {
    const kind = unique('resize');
    const orphanId = await abandon(t, await acquireAction(t, 'conductor-z', instance(), kind));
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => claimOverHttp(t, { holder: `claimer-${i}`, kinds: [kind] })),
    );
    assert.deepEqual(
      answers.map((a) => a.status).sort(),
      [200, 204, 204, 204, 204, 204, 204, 204, 204, 204],
    );
    const winner = answers.find((a) => a.status === 200)!.body!;
    assert.equal(winner.orphan.id, orphanId);
    const orphan = await getOrphan(t, orphanId);
    assert.equal(orphan.state, 'claimed');
    assert.equal(orphan.claimedLeaseId, winner.lease.id);
    assert.equal(orphan.claimedBy, winner.lease.holder);
  });

  test('a claim takes only the kinds it names, oldest orphaned first; one whose claimer gave up keeps its place', async () => {
    const resize = unique('resize');
    const migrate = unique('migrate');
    // Orphaned in this order: a (resize), b (migrate), c (resize).
    const a = await abandon(t, await acquireAction(t, 'c1', instance(), resize));
    const b = await abandon(t, await acquireAction(t, 'c2', instance(), migrate));
    const c = await abandon(t, await acquireAction(t, 'c3', instance(), resize));

    assert.equal((await claimOne(t, 'migrator', [migrate])).orphan.id, b);
    assert.equal((await claim(t, { holder: 'migrator', kinds: [migrate] })).statusCode, 204);

    const first = await claimOne(t, 'any', [resize, migrate]);
    assert.equal(first.orphan.id, a);
    // Its claimer is revoked: a comes back pending, still ahead of c.
    assert.equal((await t.del(`/v1/leases/${first.lease.id}`)).statusCode, 200);
    const back = await getOrphan(t, a);
    assert.equal(back.state, 'pending');
    assert.equal(back.reason, 'revoked');
    assert.equal(back.action.attempt, 2);

    const again = await claimOne(t, 'any', [resize, migrate]);
    assert.equal(again.orphan.id, a);
    assert.equal(again.lease.action!.attempt, 3);
    assert.equal((await claimOne(t, 'any', [resize])).orphan.id, c);
    assert.equal((await claim(t, { holder: 'any', kinds: [resize, migrate] })).statusCode, 204);
  });

  test('a claim without kinds takes the oldest pending orphan of any kind', async () => {
    // An app of its own (own key prefix): here the queue holds only this test's orphans.
    const app = await startTestApp(redis.url);
    try {
      const older = await abandon(app, await acquireAction(app, 'c1', instance(), 'resize'));
      const newer = await abandon(app, await acquireAction(app, 'c2', instance(), 'migrate'));
      assert.equal((await claimOne(app, 'any', null)).orphan.id, older);
      assert.equal((await claimOne(app, 'any', null)).orphan.id, newer);
      assert.equal((await claim(app, { holder: 'any' })).statusCode, 204);
    } finally {
      await app.close();
    }
  });
});

describe('release outcomes and revocation of a lease with an action', () => {
  test('released abandoned, it is an orphan at once with reason abandoned; the same release again answers the same tombstone', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind, { ttlMs: 60000 });
    const first = await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' });
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.json().state, 'released');
    assert.equal(first.json().outcome, 'abandoned');
    const orphan = await getOrphan(t, first.json().orphanId);
    assert.equal(orphan.state, 'pending');
    assert.equal(orphan.reason, 'abandoned');
    assert.equal(orphan.lastLeaseId, lease.id);
    assert.equal(orphan.action.attempt, 1);
    await assertBlockedBy(t, path, lease.id, 'orphaned');

    const again = await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' });
    assert.equal(again.statusCode, 200, again.body);
    assert.deepEqual(again.json(), first.json());
    assert.deepEqual(await getOrphan(t, orphan.id), orphan, 'a retried release orphans nothing twice');
  });

  test('released completed, its resources are free at once and no orphan is made', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind, { ttlMs: 60000 });
    const res = await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'completed' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().orphanId, undefined);
    await assertFree(t, path);
    assert.deepEqual((await t.get(`/v1/orphans?kind=${kind}`)).json().items, []);
  });

  test('revoked by an operator, it is an orphan with reason revoked', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind, { ttlMs: 60000 });
    const res = await t.del(`/v1/leases/${lease.id}`);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().state, 'revoked');
    const orphan = await getOrphan(t, res.json().orphanId);
    assert.equal(orphan.state, 'pending');
    assert.equal(orphan.reason, 'revoked');
    assert.equal(orphan.lastLeaseId, lease.id);
    await assertBlockedBy(t, path, lease.id, 'orphaned');
  });
});

describe('a claimer that dies in turn', () => {
  test('the orphan comes back with the next attempt until maxAttempts, then is a dead letter that keeps its resources until discarded', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind, { action: { kind, payload: PAYLOAD, maxAttempts: 3 } });
    const orphan = await orphanOf(t, lease.id, kind);
    assert.equal(orphan.action.attempt, 1);

    const second = await claimOne(t, 'conductor-y', [kind], { ttlMs: 1000 });
    assert.equal(second.lease.action!.attempt, 2);
    const back = await orphanOf(t, second.lease.id, kind);
    assert.equal(back.id, orphan.id, 'the orphan keeps its id through every attempt');
    assert.equal(back.state, 'pending');
    assert.equal(back.reason, 'expired');
    assert.equal(back.action.attempt, 2);
    assert.equal(back.lastHolder, 'conductor-y');
    assert.equal(back.claimedBy, null);

    const third = await claimOne(t, 'conductor-x', [kind], { ttlMs: 1000 });
    assert.equal(third.lease.action!.attempt, 3);
    const dead = await orphanOf(t, third.lease.id, kind);
    assert.equal(dead.id, orphan.id);
    assert.equal(dead.state, 'dead_letter');
    assert.equal(dead.action.attempt, 3);
    assert.equal(dead.lastFencingToken, third.lease.fencingToken);

    assert.equal((await claim(t, { holder: 'conductor-w', kinds: [kind] })).statusCode, 204, 'a dead letter is not handed out');
    await assertBlockedBy(t, path, third.lease.id, 'orphaned');

    // Each orphaning was published once, with the attempt that died.
    const published = (await streamEntries(t, 'orphans')).filter((e) => e.orphanId === orphan.id);
    assert.deepEqual(
      published.map((e) => [e.state, e.attempt, e.leaseId]),
      [
        ['pending', '1', lease.id],
        ['pending', '2', second.lease.id],
        ['dead_letter', '3', third.lease.id],
      ],
    );

    const resolved = await t.post(`/v1/orphans/${orphan.id}/resolve`, { resolution: 'discard' });
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.equal(resolved.json().state, 'resolved');
    assert.equal(resolved.json().resolution, 'discard');
    assert.ok(resolved.json().resolvedAt);
    await assertFree(t, path);
  });
});

describe('a claim that finishes resolves its orphan', () => {
  for (const outcome of ['completed', 'failed'] as const) {
    test(`the claim's lease released ${outcome}: the orphan is resolved with resolution ${outcome} and the resources are free`, async () => {
      const kind = unique('resize');
      const path = instance();
      const orphanId = await abandon(t, await acquireAction(t, 'conductor-z', path, kind));
      const claimed = await claimOne(t, 'conductor-y', [kind]);
      const released = await t.post(`/v1/leases/${claimed.lease.id}/release`, { outcome });
      assert.equal(released.statusCode, 200, released.body);
      assert.equal(released.json().orphanId, orphanId);
      const orphan = await getOrphan(t, orphanId);
      assert.equal(orphan.state, 'resolved');
      assert.equal(orphan.resolution, outcome);
      assert.ok(orphan.resolvedAt);
      await assertFree(t, path);
      assert.equal((await claim(t, { holder: 'conductor-x', kinds: [kind] })).statusCode, 204);
    });
  }
});

describe('resolving an orphan', () => {
  test('an unknown orphan is 404 orphan_not_found, as problem+json', async () => {
    const res = await t.post('/v1/orphans/no-such-orphan/resolve', { resolution: 'discard' });
    assert.equal(res.statusCode, 404, res.body);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    assert.equal(res.json().code, 'orphan_not_found');
    assert.equal(res.json().status, 404);
  });

  test('a claimed orphan is 409 orphan_claimed and nothing changes: the claim\'s lease stays active', async () => {
    const kind = unique('resize');
    const path = instance();
    const orphanId = await abandon(t, await acquireAction(t, 'conductor-z', path, kind));
    const claimed = await claimOne(t, 'conductor-y', [kind]);
    const before = await getOrphan(t, orphanId);

    const res = await t.post(`/v1/orphans/${orphanId}/resolve`, { resolution: 'discard' });
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().code, 'orphan_claimed');

    assert.deepEqual(await getOrphan(t, orphanId), before);
    const lease = await t.get(`/v1/leases/${claimed.lease.id}`);
    assert.equal(lease.statusCode, 200, lease.body);
    assert.equal(lease.json().state, 'active');
    assert.equal(lease.json().expiresAt, claimed.lease.expiresAt);
    await assertBlockedBy(t, path, claimed.lease.id, 'active');
    assert.equal((await t.post(`/v1/leases/${claimed.lease.id}/renew`, {})).statusCode, 200);
  });

  test('resolving twice with discard answers 200 with the same orphan both times, and frees the resources', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind);
    const orphanId = await abandon(t, lease);
    const first = await t.post(`/v1/orphans/${orphanId}/resolve`, { resolution: 'discard' });
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.json().state, 'resolved');
    assert.equal(first.json().resolution, 'discard');
    const second = await t.post(`/v1/orphans/${orphanId}/resolve`, { resolution: 'discard' });
    assert.equal(second.statusCode, 200, second.body);
    assert.deepEqual(second.json(), first.json());
    await assertFree(t, path);
    const dead = await t.get(`/v1/leases/${lease.id}`);
    assert.equal(dead.statusCode, 410, 'once its orphan is resolved, the abandoned lease is a tombstone');
    assert.equal(dead.json().code, 'lease_released');
    assert.equal(dead.json().orphanId, orphanId);
  });

  test('an orphan its claim completed is 409 orphan_resolved for a discard', async () => {
    const kind = unique('resize');
    const orphanId = await abandon(t, await acquireAction(t, 'conductor-z', instance(), kind));
    const claimed = await claimOne(t, 'conductor-y', [kind]);
    await t.post(`/v1/leases/${claimed.lease.id}/release`, { outcome: 'completed' });
    const res = await t.post(`/v1/orphans/${orphanId}/resolve`, { resolution: 'discard' });
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().code, 'orphan_resolved');
    assert.equal((await getOrphan(t, orphanId)).resolution, 'completed');
  });

  test('a resolve body other than {resolution: "discard"} is 400 and changes nothing', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind);
    const orphanId = await abandon(t, lease);
    const before = await getOrphan(t, orphanId);
    for (const body of [{ resolution: 'other' }, {}, { resolution: 'completed' }, { resolution: 'discard', force: true }]) {
      const res = await t.post(`/v1/orphans/${orphanId}/resolve`, body);
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    }
    assert.deepEqual(await getOrphan(t, orphanId), before);
    await assertBlockedBy(t, path, lease.id, 'orphaned');
  });
});

describe('claim long poll', () => {
  test('a waiting claim is woken by a new orphan of its kind and answers long before its deadline', async () => {
    const kind = unique('resize');
    const started = performance.now();
    const waiting = claimOverHttp(t, { holder: 'conductor-y', kinds: [kind], waitMs: 5000 });
    await sleep(300); // the claim is waiting by now; the orphan appears while it does
    const orphanId = await abandon(t, await acquireAction(t, 'conductor-z', instance(), kind));
    const answer = await waiting;
    const elapsed = performance.now() - started;
    assert.equal(answer.status, 200);
    assert.equal(answer.body!.orphan.id, orphanId);
    assert.equal(answer.body!.lease.holder, 'conductor-y');
    // A wakeup check, not a benchmark: without the wakeup it would wait the backstop (5 s).
    assert.ok(elapsed < 3000, `answered after ${Math.round(elapsed)} ms`);
  });

  test('claims waiting on one replica are served in arrival order', async () => {
    const kind = unique('resize');
    const holders = ['first', 'second', 'third'];
    const waiting: Promise<{ status: number; body: Claim | null }>[] = [];
    for (const holder of holders) {
      waiting.push(claimOverHttp(t, { holder, kinds: [kind], waitMs: 5000 }));
      await sleep(100); // so that the arrival order is known
    }
    const orphanIds: string[] = [];
    for (let i = 0; i < holders.length; i++) {
      orphanIds.push(await abandon(t, await acquireAction(t, 'conductor-z', instance(), kind)));
      await sleep(100);
    }
    const answers = await Promise.all(waiting);
    assert.deepEqual(
      answers.map((a) => [a.status, a.body?.lease.holder, a.body?.orphan.id]),
      holders.map((holder, i) => [200, holder, orphanIds[i]]),
    );
  });

  test('a waiting claim with nothing pending of its kind answers 204 after waitMs, whatever else is orphaned meanwhile', async () => {
    const kind = unique('resize');
    const started = performance.now();
    const waiting = claimOverHttp(t, { holder: 'conductor-y', kinds: [kind], waitMs: 600 });
    await sleep(100);
    const other = await abandon(t, await acquireAction(t, 'conductor-z', instance(), unique('migrate')));
    const answer = await waiting;
    const elapsed = performance.now() - started;
    assert.equal(answer.status, 204);
    assert.ok(elapsed >= 550, `answered after ${Math.round(elapsed)} ms`);
    assert.equal((await getOrphan(t, other)).state, 'pending', 'an orphan of another kind is not taken');
  });
});

describe('listing orphans', () => {
  test('pages of one kind and state follow nextCursor until null and return each orphan once, in orphaning order', async () => {
    const kind = unique('resize');
    // Not listed: a claimed one of the same kind, a pending one of another kind.
    const claimedId = await abandon(t, await acquireAction(t, 'c-claimed', instance(), kind));
    assert.equal((await claimOne(t, 'conductor-y', [kind])).orphan.id, claimedId);
    const expected: string[] = [];
    for (let i = 0; i < 3; i++) {
      expected.push(await abandon(t, await acquireAction(t, `c${i}`, instance(), kind)));
      await abandon(t, await acquireAction(t, `c-other-${i}`, instance(), unique('migrate')));
    }

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query = `state=pending&kind=${kind}&limit=1${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const res = await t.get(`/v1/orphans?${query}`);
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json<{ items: Orphan[]; nextCursor: string | null }>();
      assert.ok(page.items.length <= 1);
      for (const item of page.items) {
        assert.equal(item.state, 'pending');
        assert.equal(item.action.kind, kind);
        seen.push(item.id);
      }
      cursor = page.nextCursor;
      assert.ok(++pages < 100, 'the listing never ends');
    } while (cursor !== null);
    assert.deepEqual(seen, expected);
  });

  test('a cursor the service did not issue is 400 invalid_cursor; an unknown state or a bad limit is 400', async () => {
    const badCursor = await t.get('/v1/orphans?cursor=not-a-cursor');
    assert.equal(badCursor.statusCode, 400, badCursor.body);
    assert.equal(badCursor.json().code, 'invalid_cursor');
    for (const query of ['state=orphaned', 'state=', 'limit=0', 'limit=abc', 'colour=red']) {
      const res = await t.get(`/v1/orphans?${query}`);
      assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    }
  });
});

describe('streams', () => {
  test('an orphaning is appended once to the orphans stream, also when several requests notice the same expiry at once', async () => {
    // No reaper here: the requests below are the first to meet the expired lease.
    const app = await startTestApp(redis.url, {}, { sweep: false });
    try {
      const kind = unique('resize');
      const path = instance();
      const lease = await acquireAction(app, 'conductor-z', path, kind);
      await redisClockPast(app, lease.expiresAt);
      const answers = await Promise.all([
        ...Array.from({ length: 4 }, () => app.get(`/v1/leases/${lease.id}`)),
        ...Array.from({ length: 4 }, () => app.post(`/v1/leases/${lease.id}/renew`, {})),
        ...Array.from({ length: 4 }, (_, i) => app.post('/v1/leases', acquireBody(`rival-${i}`, [i % 2 ? path : `${path}/volumes/v`]))),
      ]);
      assert.deepEqual(
        answers.map((res) => res.statusCode),
        [200, 200, 200, 200, 410, 410, 410, 410, 409, 409, 409, 409],
      );
      for (const res of answers.slice(8)) assert.equal(res.json().conflicts[0].state, 'orphaned');

      const published = (await streamEntries(app, 'orphans')).filter((e) => e.leaseId === lease.id);
      assert.equal(published.length, 1, JSON.stringify(published));
      const orphanId = answers[0]!.json().orphanId as string;
      assert.equal(published[0]!.orphanId, orphanId);
      assert.equal(published[0]!.state, 'pending');
      assert.equal(published[0]!.attempt, '1');
      assert.equal(published[0]!.reason, 'expired');
      assert.equal(published[0]!.kind, kind);

      const events = (await streamEntries(app, 'ev')).filter((e) => e.leaseId === lease.id).map((e) => e.type);
      assert.deepEqual(events, ['granted', 'expired', 'orphaned']);
    } finally {
      await app.close();
    }
  });

  test('the events stream tells a lifecycle: granted, renewed, expired, orphaned, claimed, released, resolved', async () => {
    const kind = unique('resize');
    const path = instance();
    const lease = await acquireAction(t, 'conductor-z', path, kind);
    const renewed = (await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 'disk-copied' } })).json<Lease>();
    const orphan = await orphanOf(t, lease.id, kind);
    const claimed = await claimOne(t, 'conductor-y', [kind]);
    await t.post(`/v1/leases/${claimed.lease.id}/release`, { outcome: 'completed' });

    const events = (await streamEntries(t, 'ev')).filter((e) => e.leaseId === lease.id || e.leaseId === claimed.lease.id);
    assert.deepEqual(
      events.map((e) => [e.type, e.leaseId]),
      [
        ['granted', lease.id],
        ['renewed', lease.id],
        ['expired', lease.id],
        ['orphaned', lease.id],
        ['claimed', claimed.lease.id],
        ['released', claimed.lease.id],
        ['resolved', claimed.lease.id],
      ],
    );
    for (const event of events.filter((e) => ['orphaned', 'claimed', 'released', 'resolved'].includes(e.type ?? ''))) {
      assert.equal(event.orphanId, orphan.id, `${event.type} names the orphan`);
    }
    for (const event of events) {
      assert.deepEqual(decodePathList(event.paths!), [path], 'the paths, as resources are stored or as JSON');
      assert.ok(Number(event.at) > 0);
    }
    assert.equal(Number(events[2]!.at), Date.parse(renewed.expiresAt), 'an expiry happens at expiresAt, whoever notices it');
    assert.equal(Number(events[4]!.fencingToken), claimed.lease.fencingToken);
  });
});

describe('reaper leadership', () => {
  test('of two replicas one leads and publishes orphans nobody asks about; when it closes, the other takes over', async () => {
    // The leader extends its lock when half of it is left, so a stall of the test process (two
    // test files run at once on two cores) shorter than half the lock never loses it: 1.5 s.
    const env = { KEY_PREFIX: unique('shared'), REAPER_LOCK_MS: '3000' };
    const lockMs = 3000;
    // The other replica tries each REAPER_INTERVAL_MS (1 s): a released lock is taken within
    // about that, a lock left to expire would take up to lockMs.
    const takeoverBoundMs = 1500;
    const first = await startTestApp(redis.url, env);
    let firstOpen = true;
    const lockKey = `${keyPrefix(first.config)}reaper`;
    try {
      // Started alone, the first replica leads.
      const firstLock = await waitFor(() => first.redis.get(lockKey).then((v) => v ?? undefined), { what: 'a reaper leader' });
      const second = await startTestApp(redis.url, env);
      try {
        const kind = unique('resize');
        const lease = await acquireAction(second, 'conductor-z', instance(), kind);
        // Read Redis only, never the service: what publishes the orphan is the leading reaper.
        const published = await waitFor(
          async () => {
            assert.equal(await first.redis.get(lockKey), firstLock, 'the lock stays with one leader, extended in time');
            return (await streamEntries(first, 'orphans')).find((e) => e.leaseId === lease.id);
          },
          { intervalMs: 50, what: 'the orphan published by the reaper' },
        );
        const delay = appendedAt(published) - Date.parse(lease.expiresAt);
        assert.ok(delay >= 0 && delay < 1000, `published ${delay} ms after expiry`);
        // Held past its own length: the leader extends it and the other replica never takes it.
        await redisClockPast(first, lease.expiresAt, lockMs);
        assert.equal(await first.redis.get(lockKey), firstLock);

        await first.close();
        firstOpen = false;
        const closedAt = performance.now();
        assert.notEqual(await second.redis.get(lockKey), firstLock, 'a closing leader releases its lock');
        const secondLock = await waitFor(() => second.redis.get(lockKey).then((v) => v ?? undefined), { what: 'a new reaper leader' });
        const takeover = performance.now() - closedAt;
        assert.notEqual(secondLock, firstLock);
        assert.ok(takeover < takeoverBoundMs, `the other replica led after ${Math.round(takeover)} ms`);

        const later = await acquireAction(second, 'conductor-z', instance(), kind);
        const republished = await waitFor(
          async () => (await streamEntries(second, 'orphans')).find((e) => e.leaseId === later.id),
          { intervalMs: 50, what: 'an orphan published by the new leader' },
        );
        const laterDelay = appendedAt(republished) - Date.parse(later.expiresAt);
        assert.ok(laterDelay >= 0 && laterDelay < 1000, `published ${laterDelay} ms after expiry`);
        assert.equal(await second.redis.get(lockKey), secondLock);
      } finally {
        await second.close();
      }
    } finally {
      if (firstOpen) await first.close();
    }
  });
});
