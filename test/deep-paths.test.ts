// Leases on deep paths (more than four segments): nodes of at most three segments find what
// lies below them in below-sets of their own, deeper ones in a lex range of the deep sets
// (deep:x, deep:s; wdeep:x, wdeep:s for waiting tickets; see src/store/lua/includes/indexes.lua).
// Each test here asks a deep node what lies below it, through the API a user calls, and
// reads Redis only to check what the index keeps. The app runs no reaper, so expiry below
// a deep node is exact by itself, and a crowd of expired leases stays until acquires meet it.
// Real redis-server, real time, ttlMs 1000 (the smallest accepted).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyPrefix } from '../src/app.js';
import type { Conflict, Lease, ResourceView } from '../src/client/types.js';
import { LeaseStore } from '../src/store/lease-store.js';
import { defineScripts, loadLibrary } from '../src/store/scripts.js';
import { acquireBody, startTestApp, useTestApp } from './helpers/app.js';
import { checkInvariants } from './helpers/invariants.js';
import { waitFor } from './helpers/wait.js';

const { t, redis: server } = useTestApp({ sweep: false });

let n = 0;
/** A fresh name per use: the tests of this file share one key prefix, each keeps to its own paths. */
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;
/**
 * A top segment of the test's own: even the 1-segment ancestor of its paths then holds
 * nothing of other tests, so every conflict list can be compared whole.
 */
const root = () => unique('deep');

/** How many leases below a deep path one acquire reads at most (DEEP_SCAN in includes/conflicts.lua). */
const DEEP_SCAN = 256;
/** A waiter answers this soon after its blocker ended (as in waiting.test.ts). */
const PROMPTLY_MS = 2500;

type Resource = string | { path: string; mode: 'exclusive' | 'shared' };
type Problem = { code?: string; conflicts?: Conflict[] };

const P = () => keyPrefix(t.config);

/** Proper ancestors, shallowest first: "a/b/c" -> ["a", "a/b"]. */
function ancestorsOf(path: string): string[] {
  const segments = path.split('/');
  return segments.slice(1).map((_, i) => segments.slice(0, i + 1).join('/'));
}

const segmentsOf = (path: string) => path.split('/').length;

async function hold(holder: string, resources: Resource[], extra: Record<string, unknown> = {}): Promise<Lease> {
  const res = await t.post('/v1/leases', acquireBody(holder, resources, extra));
  assert.equal(res.statusCode, 201, `${JSON.stringify(resources)}: ${res.body}`);
  return res.json<Lease>();
}

/** An acquire (no waitMs) that must be refused: its conflicts, sorted by path then lease. */
async function refused(resources: Resource[], holder = unique('probe')): Promise<Conflict[]> {
  const res = await t.post('/v1/leases', acquireBody(holder, resources));
  assert.equal(res.statusCode, 409, `${JSON.stringify(resources)} was not refused: ${res.body}`);
  assert.equal(res.json().code, 'conflict');
  return sortConflicts(res.json().conflicts as Conflict[]);
}

function sortConflicts(conflicts: Conflict[]): Conflict[] {
  const key = (c: Conflict) => `${c.path} ${c.leaseId}`;
  return [...conflicts].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** The conflict a lease on `path` shows. */
function heldBy(lease: Lease, path: string, state = 'active'): Conflict {
  const mode = lease.resources.find((r) => r.path === path)?.mode;
  assert.ok(mode, `lease ${lease.id} does not hold ${path}`);
  return { path, leaseId: lease.id, holder: lease.holder, mode, state } as Conflict;
}

async function release(id: string): Promise<void> {
  const res = await t.post(`/v1/leases/${id}/release`, { outcome: 'completed' });
  assert.equal(res.statusCode, 200, res.body);
}

async function view(path: string): Promise<ResourceView> {
  const res = await t.get(`/v1/resources/${path}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json<ResourceView>();
}

/** Ids of GET /v1/leases?prefix=, every page, in the order listed. */
async function listedUnder(prefix: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await t.get(`/v1/leases?prefix=${encodeURIComponent(prefix)}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(res.statusCode, 200, res.body);
    ids.push(...(res.json().items as Lease[]).map((l) => l.id));
    cursor = res.json().nextCursor as string | null;
  } while (cursor);
  return ids;
}

async function leasesOf(holder: string): Promise<Lease[]> {
  const res = await t.get(`/v1/leases?holder=${encodeURIComponent(holder)}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json().items as Lease[];
}

async function redisNow(): Promise<number> {
  const [seconds, micros] = await t.redis.time();
  return Number(seconds) * 1000 + Number(micros) / 1000;
}

/** Waits until Redis' clock is past `iso` + extraMs. */
async function redisClockPast(iso: string, extraMs = 0): Promise<void> {
  const until = Date.parse(iso) + extraMs;
  await waitFor(async () => (await redisNow()) > until + 5, { what: `Redis clock past ${iso} + ${extraMs} ms` });
}

/** The members of deep:x (or deep:s, or the tickets' wdeep:x/s) strictly below `node`, in lex order. */
async function deepMembersBelow(node: string, set: 'deep:x' | 'deep:s' | 'wdeep:x' | 'wdeep:s' = 'deep:x'): Promise<string[]> {
  return t.redis.zrangebylex(`${P()}${set}`, `[${node}/`, `(${node}0`);
}

/** Every member of a deep set that names this lease (or ticket) id. */
async function deepMembersOf(id: string, set: 'deep:x' | 'deep:s' | 'wdeep:x' | 'wdeep:s' = 'deep:x'): Promise<string[]> {
  return (await t.redis.zrange(`${P()}${set}`, 0, -1)).filter((member) => member.endsWith(` ${id}`));
}

async function assertSound(): Promise<void> {
  assert.deepEqual(await checkInvariants(t.redis, t.config.KEY_PREFIX), []);
}

interface Answer {
  status: number;
  body: Lease & Problem;
  at: number;
}

/** An acquire over a real socket, so that it can wait while the test goes on. */
async function acquireOverHttp(body: object): Promise<Answer> {
  const res = await fetch(`${t.baseUrl}/v1/leases`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Answer['body'], at: performance.now() };
}

/** Waits until a ticket is queued exactly at `path` (exclusive or shared). */
async function untilQueued(path: string): Promise<void> {
  await waitFor(async () => (await t.redis.zcard(`${P()}wx:${path}`)) + (await t.redis.zcard(`${P()}ws:${path}`)) > 0, { what: `a waiter queued at ${path}` });
}

describe('what a lease on a deep path blocks', () => {
  test('an exclusive lease on a 7-segment path refuses every ancestor, shallow and deep, in either mode, and no sibling', async () => {
    const base = `${root()}/i-1/volumes/v-7`; // 4 segments: the first node without below-sets
    const path = `${base}/snapshots/s-1/b-2`;
    assert.equal(segmentsOf(path), 7);
    const lease = await hold('holder-x', [path]);
    const ancestors = ancestorsOf(path);
    assert.deepEqual(ancestors.map(segmentsOf), [1, 2, 3, 4, 5, 6]);

    for (const node of [...ancestors, path, `${path}/c-1`]) {
      assert.deepEqual(await refused([node]), [heldBy(lease, path)], `exclusive on ${node}`);
    }
    for (const node of ancestors.slice(3)) {
      assert.deepEqual(await refused([{ path: node, mode: 'shared' }]), [heldBy(lease, path)], `shared on ${node}`);
    }

    // Siblings at each depth, named so that they sort right next to the held path's range.
    const siblings = [
      `${base}/clones/s-1/b-2`, // another 5th segment
      `${base}/snapshots/s-10/b-2`, // "s-1" + "0": the first name past the range of .../s-1
      `${base}/snapshots/s-1/b-20`,
      `${base}0/snapshots/s-1/b-2`, // v-70
      `${base}.x/snapshots/s-1/b-2`, // "." sorts before "/"
      `${base}:a/snapshots/s-1/b-2`, // ":" sorts after "0"
    ];
    const held: [string, Lease][] = [[path, lease]];
    for (const sibling of siblings) held.push([sibling, await hold(unique('sibling'), [sibling])]);

    // Every deep node above any of them is refused by exactly the leases below it.
    const deepNodes = new Set(held.flatMap(([p]) => ancestorsOf(p).filter((a) => segmentsOf(a) >= 4)));
    assert.ok(deepNodes.size >= 12, [...deepNodes].join(' '));
    for (const node of deepNodes) {
      const expected = sortConflicts(held.filter(([p]) => p.startsWith(`${node}/`)).map(([p, l]) => heldBy(l, p)));
      assert.deepEqual(await refused([node]), expected, `exclusive on ${node}`);
      assert.deepEqual(await refused([{ path: node, mode: 'shared' }]), expected, `shared on ${node}`);
    }
    // A free deep node between them: neither the held path's range nor its neighbours'.
    for (const free of [`${base}/snapshots/s-0`, `${base}/snapshots/s-1/b-1`, `${base}/snapshots/s-2`, `${base}/clone`]) {
      await release((await hold(unique('free'), [free])).id);
    }
    await assertSound();
  });

  test('a shared lease below a deep node lets a shared acquire of it through and refuses an exclusive one', async () => {
    const base = `${root()}/i-2/volumes/v-7`;
    const path = `${base}/snapshots/s-1/b-2`;
    const shared = await hold('reader', [{ path, mode: 'shared' }]);
    for (const node of ancestorsOf(path)) {
      assert.deepEqual(await refused([node]), [heldBy(shared, path)], `exclusive on ${node}`);
      const alongside = await hold(unique('reader'), [{ path: node, mode: 'shared' }]);
      assert.equal(alongside.resources[0]?.mode, 'shared');
      await release(alongside.id);
    }
    // And a shared lease below refuses nothing below a sibling.
    await release((await hold(unique('writer'), [`${base}/snapshots/s-2`])).id);
    await assertSound();
  });

  // A deep path first asks whether anything lies at its three shallow ancestors or below the
  // third at all, and skips its own walk when nothing does: a lease at any other depth must
  // still be seen, also from among paths of a fresh part of the tree, which skip theirs.
  test('a lease at any ancestor of a deep path refuses it, alone or among 63 free deep paths, with a long first segment too', async () => {
    for (const head of [root(), `${root()}-${'h'.repeat(100)}`]) {
      const path = `${head}/i-3/volumes/v-7/snapshots/s-1/b-2/c-3`;
      const free = Array.from({ length: 63 }, (_, k) => `${head}-free-${k}/i-3/volumes/v-7/snapshots/s-1/b-2`);
      const ancestors = ancestorsOf(path);
      assert.deepEqual(ancestors.map(segmentsOf), [1, 2, 3, 4, 5, 6, 7]);
      for (const node of [...ancestors, path]) {
        const exclusive = await hold(unique('above'), [node]);
        assert.deepEqual(await refused([path]), [heldBy(exclusive, node)], `exclusive held on ${node}, alone`);
        assert.deepEqual(await refused([...free, { path, mode: 'shared' }]), [heldBy(exclusive, node)], `exclusive held on ${node}, among free`);
        await release(exclusive.id);
        const shared = await hold(unique('reader'), [{ path: node, mode: 'shared' }]);
        assert.deepEqual(await refused([...free, path]), [heldBy(shared, node)], `shared held on ${node}`);
        await release((await hold(unique('reader'), [...free, { path, mode: 'shared' }])).id);
        await release(shared.id);
      }
    }
    await assertSound();
  });
});

describe('expiry below a deep node is exact', () => {
  test('an expired lease stops blocking its deep ancestors at its expiresAt; with lockDelayMs, at the end of the delay', async () => {
    const r = root();
    const base = `${r}/i-1/volumes/v-7`;
    const path = `${base}/snapshots/s-1/b-2`;
    const delayedBase = `${r}/i-2/volumes/v-7`;
    const delayedPath = `${delayedBase}/snapshots/s-1/b-2`;
    const LOCK_DELAY_MS = 1500;
    const [lease, delayed] = await Promise.all([
      hold('short', [path], { ttlMs: 1000 }),
      hold('delayed', [delayedPath], { ttlMs: 1000, lockDelayMs: LOCK_DELAY_MS }),
    ]);
    // Before expiry both block (the probes run well within the 1 s ttl).
    for (const node of ancestorsOf(path).slice(3)) assert.deepEqual(await refused([node]), [heldBy(lease, path)], node);
    assert.deepEqual(await refused([delayedBase]), [heldBy(delayed, delayedPath)]);
    assert.equal((await view(`${base}/snapshots`)).below.count, 1);

    await redisClockPast(lease.expiresAt);
    // Seen as gone below its deep ancestors, without a reaper and without a read of the lease.
    const below = (await view(`${base}/snapshots`)).below;
    assert.deepEqual([below.count, below.items], [0, []]);
    const s1 = await hold('next', [`${base}/snapshots/s-1`]); // 6 segments
    const late = Date.parse(s1.acquiredAt) - Date.parse(lease.expiresAt);
    assert.ok(late >= 0 && late < 1000, `granted ${late} ms after the lease below expired`);
    await release(s1.id);
    const whole = await hold('next', [base]); // 4 segments
    // The acquire dropped the deep member it met: its lease no longer blocks.
    assert.deepEqual(await deepMembersOf(lease.id), []);

    // The lock-delayed one still blocks after its expiry, named as in its delay.
    assert.ok((await redisNow()) < Date.parse(delayed.expiresAt) + LOCK_DELAY_MS - 200, 'the test is too slow to see the lock delay');
    for (const node of ancestorsOf(delayedPath).slice(3)) {
      assert.deepEqual(await refused([node]), [heldBy(delayed, delayedPath, 'lock_delay')], node);
    }
    assert.deepEqual(await deepMembersOf(delayed.id), [`${delayedPath} ${delayed.id}`], 'a member that still blocks is kept');
    await redisClockPast(delayed.expiresAt, LOCK_DELAY_MS);
    const afterDelay = await hold('after-delay', [delayedBase]);
    const wait = Date.parse(afterDelay.acquiredAt) - Date.parse(delayed.expiresAt) - LOCK_DELAY_MS;
    assert.ok(wait >= 0 && wait < 1000, `granted ${wait} ms after the lock delay ended`);
    assert.deepEqual(await deepMembersOf(delayed.id), []);
    await Promise.all([release(whole.id), release(afterDelay.id)]);
    await assertSound();
  });

  test('a lease with an action that expires below a deep node is an orphan that keeps blocking it until resolved', async () => {
    const base = `${root()}/i-1/volumes/v-7`;
    const path = `${base}/snapshots/s-1/b-2`;
    const lease = await hold('conductor', [path], { ttlMs: 1000, action: { kind: unique('resize') } });
    await redisClockPast(lease.expiresAt);
    // Before anything settles it: already reported as an orphan.
    for (const node of ancestorsOf(path).slice(3)) assert.deepEqual(await refused([node]), [heldBy(lease, path, 'orphaned')], node);

    // Settled by a read of the lease (there is no reaper): its orphan exists, it still blocks.
    const read = await t.get(`/v1/leases/${lease.id}`);
    assert.equal(read.statusCode, 200, read.body);
    assert.equal(read.json().state, 'orphaned');
    const orphanId = read.json().orphanId as string;
    assert.ok(orphanId, read.body);
    await sleep(300); // long past expiresAt: an orphan blocks with no end
    for (const node of ancestorsOf(path).slice(3)) {
      assert.deepEqual(await refused([node]), [heldBy(lease, path, 'orphaned')], node);
      assert.deepEqual(await refused([{ path: node, mode: 'shared' }]), [heldBy(lease, path, 'orphaned')], `shared on ${node}`);
    }
    const below = (await view(base)).below;
    assert.deepEqual([below.count, below.items.map((l) => [l.id, l.state])], [1, [[lease.id, 'orphaned']]]);
    assert.deepEqual(await deepMembersOf(lease.id), [`${path} ${lease.id}`]);

    const resolved = await t.post(`/v1/orphans/${orphanId}/resolve`, { resolution: 'discard' });
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.deepEqual(await deepMembersOf(lease.id), [], 'resolving the orphan drops its deep member');
    await release((await hold('next', [base])).id);
    await assertSound();
  });
});

describe('renewal below a deep node', () => {
  test('a renew writes the lease\'s deep members again, so one dropped (only a clock stepped back can drop a renewable one) comes back', async () => {
    const path = `${root()}/i-1/volumes/v-7/snapshots/s-1`;
    const lease = await hold('renewer', [path]);
    const member = `${path} ${lease.id}`;
    await t.redis.zrem(`${P()}deep:x`, member);
    const renewed = await t.post(`/v1/leases/${lease.id}/renew`, {});
    assert.equal(renewed.statusCode, 200, renewed.body);
    assert.deepEqual(await deepMembersOf(lease.id), [member]);
    assert.deepEqual(await refused([ancestorsOf(path)[3]!]), [heldBy(lease, path)]);
    await release(lease.id);
    await assertSound();
  });
});

describe('release below a deep node', () => {
  test('a release frees the deep ancestors at once and leaves no member of the lease in the deep sets', async () => {
    const r = root();
    const base = `${r}/i-1/volumes/v-7`;
    const exclusivePath = `${base}/snapshots/s-1/b-2`;
    const sharedPath = `${base}/clones/c-1/b-1`;
    const neighbourPath = `${r}/i-1/volumes/v-8/snapshots/s-1/b-2`;
    const lease = await hold('holder', [exclusivePath, { path: sharedPath, mode: 'shared' }]);
    const neighbour = await hold('neighbour', [neighbourPath]);
    assert.equal(await t.redis.zscore(`${P()}deep:x`, `${exclusivePath} ${lease.id}`), '0');
    assert.equal(await t.redis.zscore(`${P()}deep:s`, `${sharedPath} ${lease.id}`), '0');
    assert.deepEqual(await refused([base]), sortConflicts([heldBy(lease, exclusivePath), heldBy(lease, sharedPath)]));

    await release(lease.id);
    // Gone with the release itself (an acquire that met them would drop them too).
    assert.deepEqual(await deepMembersOf(lease.id, 'deep:x'), []);
    assert.deepEqual(await deepMembersOf(lease.id, 'deep:s'), []);
    // Free at once: the very next request.
    const next = await hold('next', [base]);
    // Nor anything else of it in the path index: at-sets, and below-sets of the shallow ancestors.
    for (const key of [`ax:${exclusivePath}`, `as:${sharedPath}`, ...ancestorsOf(exclusivePath).slice(0, 3).map((a) => `bx:${a}`), ...ancestorsOf(sharedPath).slice(0, 3).map((a) => `bs:${a}`)]) {
      assert.equal(await t.redis.zscore(`${P()}${key}`, lease.id), null, key);
    }
    // The neighbour's member stays and it still blocks.
    assert.deepEqual(await deepMembersOf(neighbour.id), [`${neighbourPath} ${neighbour.id}`]);
    assert.deepEqual(await refused([`${r}/i-1/volumes/v-8`]), [heldBy(neighbour, neighbourPath)]);
    await Promise.all([release(next.id), release(neighbour.id)]);
    await assertSound();
  });
});

describe('a crowd of expired leases below one deep node', () => {
  const CROWD = 300; // more than DEEP_SCAN: one acquire cannot read them all
  /** Long enough for a crowd to be seen alive on a loaded machine, short enough to wait out. */
  const CROWD_TTL_MS = 2000;
  const nodes = { retried: '', guarded: '', waiting: '', exact: '' };
  const crowds: Record<keyof typeof nodes, Lease[]> = { retried: [], guarded: [], waiting: [], exact: [] };
  const sizes: Record<keyof typeof nodes, number> = { retried: CROWD, guarded: CROWD, waiting: CROWD, exact: DEEP_SCAN };

  /** `size` leases, one request each, on distinct 6-segment paths below the 4-segment `node`. */
  async function crowdBelow(node: string, size: number): Promise<Lease[]> {
    const leases: Lease[] = [];
    for (let i = 0; i < size; i += 50) {
      const batch = Array.from({ length: Math.min(50, size - i) }, (_, j) => hold('crowd', [`${node}/snapshots/s-${String(i + j).padStart(3, '0')}`], { ttlMs: CROWD_TTL_MS }));
      leases.push(...(await Promise.all(batch)));
    }
    return leases;
  }

  const membersOf = (leases: Lease[]) => leases.map((l) => `${l.resources[0]!.path} ${l.id}`).sort();

  before(async () => {
    const r = root();
    for (const name of Object.keys(nodes) as (keyof typeof nodes)[]) nodes[name] = `${r}/i-${name}/volumes/v-7`;
    for (const name of Object.keys(nodes) as (keyof typeof nodes)[]) {
      crowds[name] = await crowdBelow(nodes[name], sizes[name]);
      if (name !== 'retried') continue;
      // While they live, the resource view counts them all: 100 read, the rest counted in the index.
      const live = await view(nodes.retried);
      assert.equal(live.below.count, CROWD);
      assert.equal(live.below.items.length, 100);
    }
    const lastExpiry = Object.values(crowds).flat().map((l) => l.expiresAt).sort().at(-1)!;
    await redisClockPast(lastExpiry);
  });

  after(async () => {
    await assertSound();
  });

  test('an exclusive acquire of the node answers 503 and grants nothing, then succeeds on a later attempt', async () => {
    const node = nodes.retried;
    const all = membersOf(crowds.retried);
    assert.deepEqual(await deepMembersBelow(node), all);
    // The view lists none of them and counts at most those it did not read.
    const stale = (await view(node)).below;
    assert.deepEqual(stale.items, []);
    assert.ok(stale.count <= CROWD - 100, `below.count ${stale.count}`);

    const holder = unique('after-crowd');
    const first = await t.post('/v1/leases', acquireBody(holder, [node]));
    assert.equal(first.statusCode, 503, first.body);
    assert.equal(first.json().code, 'backend_unavailable');
    assert.equal(first.headers['retry-after'], '1');
    assert.match(String(first.headers['content-type']), /^application\/problem\+json/);
    // Nothing granted or queued...
    assert.deepEqual(await leasesOf(holder), []);
    assert.equal(await t.redis.exists(`${P()}ax:${node}`, `${P()}wx:${node}`), 0);
    // ...but the members it read, the first DEEP_SCAN in path order, are gone, and only those.
    assert.deepEqual(await deepMembersBelow(node), all.slice(DEEP_SCAN));

    const statuses = [first.statusCode];
    let granted: Lease | undefined;
    while (!granted && statuses.length < 3) {
      const res = await t.post('/v1/leases', acquireBody(holder, [node]));
      statuses.push(res.statusCode);
      if (res.statusCode === 201) granted = res.json<Lease>();
      else assert.equal(res.statusCode, 503, res.body);
    }
    assert.ok(granted, `answers: ${statuses.join(', ')}`);
    assert.deepEqual(await deepMembersBelow(node), [], 'every member read on the way was dropped');
    assert.deepEqual((await leasesOf(holder)).map((l) => l.id), [granted.id]);
    await release(granted.id);
  });

  test('exactly DEEP_SCAN expired members below: one acquire reads them all and is granted at once', async () => {
    const node = nodes.exact;
    assert.equal((await deepMembersBelow(node)).length, DEEP_SCAN);
    const granted = await hold(unique('exact'), [node]);
    assert.deepEqual(await deepMembersBelow(node), [], 'every member it read was dropped');
    await release(granted.id);
  });

  test('a live lease past the first DEEP_SCAN members is never passed: 503, then 409 naming it', async () => {
    const node = nodes.guarded;
    const livePath = `${node}/snapshots/z-1/b-1`; // sorts after every s-NNN
    const live = await hold('live', [livePath]);
    const holder = unique('guarded');
    const first = await t.post('/v1/leases', acquireBody(holder, [node]));
    assert.equal(first.statusCode, 503, first.body);
    assert.equal(first.json().code, 'backend_unavailable');
    assert.deepEqual(await refused([node], holder), [heldBy(live, livePath)]);
    assert.deepEqual(await leasesOf(holder), []);
    assert.deepEqual(await deepMembersBelow(node), [`${livePath} ${live.id}`]);
    await release(live.id);
  });

  test('an acquire with waitMs keeps waiting past the undecided look and is granted about a second later', async () => {
    const node = nodes.waiting;
    const started = performance.now();
    const answer = await acquireOverHttp(acquireBody(unique('patient'), [node], { waitMs: 5000 }));
    const elapsed = Math.round(answer.at - started);
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    assert.ok(elapsed >= 900 && elapsed < 4000, `granted after ${elapsed} ms`);
    assert.deepEqual(await deepMembersBelow(node), []);
    assert.equal(await t.redis.exists(`${P()}w:${answer.body.id}`), 0, 'no ticket left');
    await release(answer.body.id);
  });
});

describe('waiting below a deep node', () => {
  test('a waiter on a deep ancestor is granted when the lease below is released; a later request below queues behind it', async () => {
    const base = `${root()}/i-1/volumes/v-7`;
    const blockedNode = `${base}/snapshots`; // 5 segments
    const heldPath = `${blockedNode}/s-1/b-2`;
    const laterPath = `${blockedNode}/s-2/b-1`; // free of the held lease, below the waiter's node
    const lease = await hold('holder', [heldPath]);

    const waiter = acquireOverHttp(acquireBody('waiter', [blockedNode], { waitMs: 10000 }));
    await untilQueued(blockedNode);
    // A plain shared request below may not pass the earlier waiter.
    const [ahead, ...more] = await refused([{ path: laterPath, mode: 'shared' }]);
    assert.deepEqual(more, []);
    const ticketId = ahead!.leaseId;
    assert.deepEqual(ahead, { path: blockedNode, leaseId: ticketId, holder: 'waiter', mode: 'exclusive', state: 'waiting' });
    let laterAnswered = false;
    const later = acquireOverHttp(acquireBody('later', [{ path: laterPath, mode: 'shared' }], { waitMs: 10000 })).finally(() => (laterAnswered = true));
    await untilQueued(laterPath);

    const releasedAt = performance.now();
    await release(lease.id);
    const granted = await waiter;
    assert.equal(granted.status, 201, JSON.stringify(granted.body));
    assert.equal(granted.body.id, ticketId);
    assert.ok(granted.at - releasedAt < PROMPTLY_MS, `granted ${Math.round(granted.at - releasedAt)} ms after the release`);
    await sleep(300);
    assert.equal(laterAnswered, false, 'the later request answered while the waiter held its node');

    const waiterReleasedAt = performance.now();
    await release(granted.body.id);
    const laterGranted = await later;
    assert.equal(laterGranted.status, 201, JSON.stringify(laterGranted.body));
    assert.ok(laterGranted.at - waiterReleasedAt < PROMPTLY_MS);
    assert.ok(laterGranted.body.fencingToken > granted.body.fencingToken);
    await release(laterGranted.body.id);
    await assertSound();
  });

  test('a waiting exclusive request on a deep path holds back shared requests on its deep ancestors', async () => {
    const base = `${root()}/i-1/volumes/v-7`;
    const sharedNode = `${base}/snapshots/s-1`; // 6 segments
    const waitedPath = `${sharedNode}/b-1`; // 7 segments: a ticket member of wdeep:x
    const reader = await hold('reader', [{ path: sharedNode, mode: 'shared' }]);
    const waiter = acquireOverHttp(acquireBody('writer', [waitedPath], { waitMs: 10000 }));
    await untilQueued(waitedPath);
    const queued = await deepMembersBelow(base, 'wdeep:x');
    const [ticket] = queued;
    assert.ok(queued.length === 1 && ticket !== undefined && ticket.startsWith(`${waitedPath} `), `wdeep:x below ${base}: ${queued.join(', ')}`);
    const ticketId = ticket.slice(waitedPath.length + 1);

    // Shared with the reader, but not with the exclusive request waiting below them.
    for (const node of [base, `${base}/snapshots`]) {
      assert.deepEqual(await refused([{ path: node, mode: 'shared' }]), [{ path: waitedPath, leaseId: ticketId, holder: 'writer', mode: 'exclusive', state: 'waiting' }], node);
    }
    await release(reader.id);
    const granted = await waiter;
    assert.equal(granted.status, 201, JSON.stringify(granted.body));
    assert.equal(granted.body.id, ticketId);
    assert.deepEqual(await deepMembersOf(ticketId, 'wdeep:x'), [], 'the ticket left the wait queue');
    assert.deepEqual(await deepMembersOf(ticketId, 'deep:x'), [`${waitedPath} ${ticketId}`], 'the lease took its place');
    await release(granted.body.id);
    await assertSound();
  });
});

describe('reading what lies below a deep node', () => {
  test('GET /v1/resources and GET /v1/leases?prefix= of deep nodes list exactly the leases below them', async () => {
    const r = root();
    const node = `${r}/i-1/volumes/v-7`;
    const a = await hold('a', [`${node}/snapshots/s-1/b-2`]);
    const b = await hold('b', [{ path: `${node}/snapshots/s-2`, mode: 'shared' }]);
    const c = await hold('c', [{ path: `${node}/snapshots/s-2/b-1`, mode: 'shared' }]);
    const d = await hold('d', [`${node}/snapshots/s-3`]);
    const e = await hold('e', [`${node}/snapshots/s-4/b-1/c/d`]); // 9 segments
    const wide = await hold('wide', [`${node}/clones/c-1/b-1`, `${node}0/clones/c-1/b-1`]); // one resource inside, one outside
    // Outside the node, sorting next to its range.
    for (const outside of [`${node}0/snapshots/s-1/b-2`, `${node}.x/snapshots/s-1/b-2`, `${node}:a/snapshots/s-1/b-2`, `${r}/i-1/volumes/v-8/snapshots/s-1/b-2`]) {
      await hold(unique('outside'), [outside]);
    }
    // Below the node but ended (released): listed nowhere.
    await release((await hold('gone', [`${node}/snapshots/s-5/b-1`])).id);

    const inside = [a, b, c, d, e, wide];
    const whole = await view(node);
    assert.deepEqual([whole.coveredBy, whole.coveredByCount], [[], 0]);
    assert.equal(whole.below.count, inside.length);
    assert.deepEqual(whole.below.items.map((l) => l.id).sort(), inside.map((l) => l.id).sort());
    const modes = whole.below.items.map((l) => l.resources.find((res) => res.path.startsWith(`${node}/`))!.mode);
    assert.deepEqual(modes, [...modes].sort(), 'exclusive leases first, then shared ones');

    const s2 = await view(`${node}/snapshots/s-2`);
    assert.deepEqual([s2.coveredBy.map((l) => l.id), s2.coveredByCount], [[b.id], 1]);
    assert.deepEqual([s2.below.count, s2.below.items.map((l) => l.id)], [1, [c.id]]);
    const underA = await view(`${node}/snapshots/s-1/b-2/x-1`); // 8 segments, below a's lease
    assert.deepEqual([underA.coveredBy.map((l) => l.id), underA.coveredByCount, underA.below.count], [[a.id], 1, 0]);
    const underE = await view(`${node}/snapshots/s-4/b-1`);
    assert.deepEqual([underE.coveredByCount, underE.below.count, underE.below.items.map((l) => l.id)], [0, 1, [e.id]]);
    const s1 = await view(`${node}/snapshots/s-1`);
    assert.deepEqual([s1.below.count, s1.below.items.map((l) => l.id)], [1, [a.id]], 'not s-10 or anything past the range');

    // Listing: in grant order, each lease once, on every page.
    assert.deepEqual(await listedUnder(node), inside.map((l) => l.id));
    assert.deepEqual(await listedUnder(`${node}/snapshots`), [a, b, c, d, e].map((l) => l.id));
    assert.deepEqual(await listedUnder(`${node}/snapshots/s-2`), [b.id, c.id]);
    assert.deepEqual(await listedUnder(`${node}/snapshots/s-1/b-2`), [a.id]);
    assert.deepEqual(await listedUnder(`${node}/snapshots/s-4/b-1/c`), [e.id]);
    assert.deepEqual(await listedUnder(`${node}/snapshots/s-6`), []);
    await assertSound();
  });

  test('below a deep node, the resource view counts an expired lease no more', async () => {
    const node = `${root()}/i-1/volumes/v-7`;
    const lasting = await hold('lasting', [`${node}/snapshots/s-1/b-1`]);
    const short = await hold('short', [{ path: `${node}/snapshots/s-2/b-1`, mode: 'shared' }], { ttlMs: 1000 });
    assert.equal((await view(node)).below.count, 2);
    await redisClockPast(short.expiresAt);
    const below = (await view(node)).below;
    assert.deepEqual([below.count, below.items.map((l) => l.id)], [1, [lasting.id]]);
    assert.deepEqual(await listedUnder(node), [lasting.id]);
    await release(lasting.id);
  });
});

describe('at the end', () => {
  test('the state is sound, with no request waiting', async () => {
    assert.deepEqual(await checkInvariants(t.redis, t.config.KEY_PREFIX, { quiescent: true }), []);
  });
});

describe('crowds that a request must not pass, and wide leases that must not stall others', () => {
  /** The app's own store, to queue many tickets without as many open HTTP requests. */
  const store = (keyPrefix = P()) =>
    new LeaseStore(defineScripts(t.redis, loadLibrary()), { keyPrefix, tombstoneTtlMs: 3600000, streamCap: 1000, commandTimeoutMs: 5000 });
  const ticketInput = (holder: string, resources: string[], step: 'open' | 'retry' | 'last') => ({
    id: '',
    holder,
    resources: resources.map((path) => ({ path, mode: 'exclusive' as const })),
    ttlMs: 60000,
    maxHoldMs: 86400000,
    lockDelayMs: 0,
    action: null,
    requestId: null,
    fingerprint: '',
    conflictLimit: 10,
    wait: step === 'last' ? ({ step } as const) : ({ step, ticketTtlMs: 30000 } as const),
  });

  /** Queues a waiting request's ticket in `s` (it must wait), and notes its id in `queued`. */
  const queueTicket = async (s: LeaseStore, queued: string[], id: string, holder: string, paths: string[]) => {
    const answer = await s.acquire({ ...ticketInput(holder, paths, 'open'), id });
    assert.equal(answer.kind, 'waiting', `${holder}: ${answer.kind}`);
    queued.push(id);
  };

  test('a waiting request never passes an earlier ticket it overlaps, though more than DEEP_SCAN later ones sort before it', async () => {
    const r = root();
    const node = `${r}/i-1/volumes/v-7`; // 4 segments: tickets below it are deep members
    const blocked = `${r}/elsewhere`;
    const lease = await hold('x', [blocked]);
    const s = store();
    const queued: string[] = [];
    const queue = (id: string, holder: string, paths: string[]) => queueTicket(s, queued, id, holder, paths);
    const earlier = unique('earlier');
    await queue(earlier, 'earlier', [`${node}/zzz`, blocked]); // sorts after every later one below the node
    const waiter = unique('waiter');
    await queue(waiter, 'waiter', [node]); // waits for `earlier`, which is below its node
    for (let i = 0; i <= DEEP_SCAN; i++) await queue(unique('later'), 'later', [`${node}/a-${String(i).padStart(3, '0')}`, blocked]);

    // The waiter looks again: no lease blocks its node, and DEEP_SCAN later tickets come first.
    const again = await s.acquire({ ...ticketInput('waiter', [node], 'retry'), id: waiter });
    assert.equal(again.kind, 'waiting', 'it kept its place behind the earlier ticket');
    const last = await s.acquire({ ...ticketInput('waiter', [node], 'last'), id: waiter });
    assert.ok(last.kind === 'undecided' || last.kind === 'conflict', last.kind);
    assert.deepEqual(await leasesOf('waiter'), []);
    // (The last look took the waiter out of the queue; the others leave as their clients would.)
    for (const id of queued.filter((id) => id !== waiter)) assert.equal(await s.cancelWait(id), true, id);
    await release(lease.id);
    await assertSound();
  });

  test('the first in line is granted once its path is free, though more than DEEP_SCAN later tickets wait below it', async () => {
    // A store of its own: no other test's ticket may be queued before the first in line.
    const prefix = `{crowd-${unique('q')}}:`;
    const s = store(prefix);
    const node = `${root()}/i-1/volumes/v-7`; // 4 segments: tickets below it are deep members
    const blocker = { ...ticketInput('blocker', [node], 'open'), id: unique('blocker'), wait: null };
    assert.equal((await s.acquire(blocker)).kind, 'granted');
    const queued: string[] = [];
    const queue = (id: string, holder: string, paths: string[]) => queueTicket(s, queued, id, holder, paths);
    const first = unique('first');
    await queue(first, 'first', [node]);
    for (let i = 0; i <= DEEP_SCAN; i++) await queue(unique('later'), 'later', [`${node}/a-${String(i).padStart(3, '0')}`]);
    assert.equal((await s.release(blocker.id, 'completed')).kind, 'done');

    // Nothing blocks its node now, and no ticket came before it: the crowd behind is not read.
    const again = await s.acquire({ ...ticketInput('first', [node], 'retry'), id: first });
    assert.equal(again.kind, 'granted', again.kind);
    // Those behind it wait for it, as they should.
    const next = await s.acquire({ ...ticketInput('later', [`${node}/a-000`], 'retry'), id: queued[1]! });
    assert.equal(next.kind, 'waiting', next.kind);
    for (const id of queued.slice(1)) assert.equal(await s.cancelWait(id), true, id);
    assert.equal((await s.release(first, 'completed')).kind, 'done');
    assert.deepEqual(await checkInvariants(t.redis, prefix, { quiescent: true }), []);
  });

  test('a claim settles the narrow leases due behind one too wide for its budget, which it leaves to the reaper', async () => {
    // An app of its own: the leases the other tests left due would fill the claim's batch.
    const own = await startTestApp(server.url, {}, { sweep: false });
    try {
      const post = async (url: string, body: unknown) => own.post(url, body);
      const holdOwn = async (holder: string, resources: string[], extra: Record<string, unknown>) => {
        const res = await post('/v1/leases', acquireBody(holder, resources, extra));
        assert.equal(res.statusCode, 201, res.body);
        return res.json<Lease>();
      };
      const r = root();
      const kind = unique('kind');
      // Due first: 64 deep resources (index weight 64 x 5, past a claim's 256), then more
      // such leases than the claim may read to count (a claim reads at most 16 KiB of
      // resources to count those whose length does not clear them at once).
      const wide = await holdOwn('wide', Array.from({ length: 64 }, (_, i) => `${r}/i-${i}/volumes/v-7/snapshots/s-1`), { ttlMs: 1000 });
      const longSegment = 's'.repeat(120);
      const wider: Lease[] = [];
      for (let k = 0; k < 3; k++) {
        wider.push(await holdOwn(`wider-${k}`, Array.from({ length: 64 }, (_, i) => `${r}/w-${k}-${i}/${longSegment}/a/b`), { ttlMs: 1000 }));
      }
      // One whose resources are long but few (2 x 5 entries): it fits, and is settled.
      const fewLong = await holdOwn('few-long', [`${r}/f-1/${longSegment}/${longSegment}/${longSegment}`, `${r}/f-2/${longSegment}/${longSegment}/${longSegment}`], {
        ttlMs: 1000,
        action: { kind: `${kind}-few` },
      });
      await sleep(50);
      const narrow = await holdOwn('narrow', [`${r}/j-1`], { ttlMs: 1000, action: { kind } });
      await redisClockPast(narrow.expiresAt);
      const res = await post('/v1/orphans/claim', { holder: 'claimer', kinds: [kind], ttlMs: 60000 });
      assert.equal(res.statusCode, 200, `no orphan claimed: ${res.statusCode} ${res.body}`);
      assert.deepEqual((res.json().lease as Lease).resources.map((x) => x.path), [`${r}/j-1`]);
      // The wide ones were passed over, not settled: still active in Redis, expired to a reader.
      const ownPrefix = keyPrefix(own.config);
      for (const lease of [wide, ...wider]) {
        assert.equal(await own.redis.hget(`${ownPrefix}l:${lease.id}`, 'st'), 'active', lease.holder);
        assert.equal((await own.get(`/v1/leases/${lease.id}`)).json().state, 'expired');
      }
      // The one of few long resources was settled by the claim: its orphan is queued already.
      assert.equal(await own.redis.hget(`${ownPrefix}l:${fewLong.id}`, 'st'), 'orphaned');
      const few = await post('/v1/orphans/claim', { holder: 'claimer', kinds: [`${kind}-few`], ttlMs: 60000 });
      assert.equal(few.statusCode, 200, few.body);
      assert.equal((await post(`/v1/leases/${few.json().lease.id}/release`, { outcome: 'completed' })).statusCode, 200);
      assert.equal((await post(`/v1/leases/${res.json().lease.id}/release`, { outcome: 'completed' })).statusCode, 200);
      assert.deepEqual(await checkInvariants(own.redis, own.config.KEY_PREFIX), []);
    } finally {
      await own.close();
    }
  });
});
