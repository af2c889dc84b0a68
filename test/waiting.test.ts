// Acquires that wait (waitMs): a waiter is granted as soon as what blocks it ends (a release,
// an expiry, an orphan resolved), answers 409 at its deadline and leaves no ticket behind, is
// served in arrival order among overlapping requests (a stream of shared requests never
// starves a waiting exclusive one), and leaves the queue when its client goes away.
// Waiters are real HTTP requests (fetch against the listening app), so several wait at once.
// The app runs no reaper: every wakeup here comes from the waiting machinery itself.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyPrefix } from '../src/app.js';
import type { AcquireRequest, Conflict, Lease } from '../src/client/types.js';
import { acquireBody, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t, redis } = useTestApp({ sweep: false });

let n = 0;
/** A fresh name per use: tests run concurrently against one key prefix, each on its own paths. */
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;
const instance = () => `instances/${unique('i')}`;

/**
 * A waiter answers this soon after its blocker ended. Generous (a loaded machine is slow),
 * yet well short of the 5 s backstop that a missed wakeup falls back on.
 */
const PROMPTLY_MS = 2500;


interface Answer {
  status: number;
  /** The lease on 200/201; the problem (code, conflicts) otherwise. */
  body: Lease & { code?: string; conflicts?: Conflict[] };
  /** performance.now() when the answer arrived. */
  at: number;
}

/** An acquire over a real socket, so that it can wait while the test goes on. */
async function acquireOverHttp(app: TestApp, body: object, signal?: AbortSignal): Promise<Answer> {
  const res = await fetch(`${app.baseUrl}/v1/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  const parsed = (await res.json()) as Answer['body'];
  return { status: res.status, body: parsed, at: performance.now() };
}

/** An acquire that must be granted at once. */
async function hold(holder: string, resource: string | AcquireRequest['resources'][number], extra: Record<string, unknown> = {}, app: TestApp = t): Promise<Lease> {
  const res = await app.post('/v1/leases', acquireBody(holder, [resource], extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Lease>();
}

/** Releases a lease; `sentAt` is performance.now() just before the request, `endedAt` Redis' time of the release. */
async function release(id: string, app: TestApp = t): Promise<{ sentAt: number; endedAt: string }> {
  const sentAt = performance.now();
  const res = await app.post(`/v1/leases/${id}/release`, { outcome: 'completed' });
  assert.equal(res.statusCode, 200, res.body);
  return { sentAt, endedAt: res.json().endedAt as string };
}

/**
 * Waits until `count` tickets are queued exactly at `path` (exclusive and shared), read on
 * t's Redis connection (`prefixOf` names another app's keys).
 */
async function untilQueued(path: string, count: number, prefixOf: TestApp = t): Promise<void> {
  const prefix = keyPrefix(prefixOf.config);
  await waitFor(
    async () => (await t.redis.zcard(`${prefix}wx:${path}`)) + (await t.redis.zcard(`${prefix}ws:${path}`)) >= count,
    { what: `${count} waiter(s) queued at ${path}` },
  );
}

/** The waiting requests that a plain (non-waiting) acquire of `path` is told it may not pass. */
async function waitersAhead(path: string, mode = 'exclusive'): Promise<Conflict[]> {
  const res = await t.post('/v1/leases', acquireBody(unique('probe'), [{ path, mode }]));
  assert.equal(res.statusCode, 409, res.body);
  return (res.json().conflicts as Conflict[]).filter((c) => c.state === 'waiting');
}

async function ticketExists(id: string, app: TestApp = t): Promise<boolean> {
  return (await app.redis.exists(`${keyPrefix(app.config)}w:${id}`)) === 1;
}

async function leasesOf(holder: string): Promise<Lease[]> {
  const res = await t.get(`/v1/leases?holder=${encodeURIComponent(holder)}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json().items as Lease[];
}

/** Asserts that `answer` is a grant that came promptly after `released`, on Redis' clock and on ours. */
function assertGrantedAfter(answer: Answer, released: { sentAt: number; endedAt: string }, who: string): Lease {
  assert.equal(answer.status, 201, `${who}: ${JSON.stringify(answer.body)}`);
  assert.ok(Date.parse(answer.body.acquiredAt) >= Date.parse(released.endedAt), `${who} was granted before the release`);
  const after = Math.round(answer.at - released.sentAt);
  assert.ok(after < PROMPTLY_MS, `${who} answered ${after} ms after the release`);
  return answer.body;
}

describe('a waiter is granted when what blocks it ends', { concurrency: true }, () => {
  test('released: the waiter answers 201 soon after the release, with a greater token', async () => {
    const path = instance();
    const holder = await hold('holder', path);
    let answered = false;
    const waiting = acquireOverHttp(t, acquireBody('waiter', [path], { waitMs: 5000 })).finally(() => (answered = true));
    await untilQueued(path, 1);
    await sleep(300); // the holder works a while; the waiter keeps waiting meanwhile
    assert.equal(answered, false, 'the waiter answered while the path was still held');
    const released = await release(holder.id);
    const lease = assertGrantedAfter(await waiting, released, 'the waiter');
    assert.equal(lease.holder, 'waiter');
    assert.ok(lease.fencingToken > holder.fencingToken, `${lease.fencingToken} > ${holder.fencingToken}`);
    assert.equal(await ticketExists(lease.id), false, 'the granted waiter left no ticket');
  });

  test('expired: a holder that never renews is replaced at about its expiresAt, with no release', async () => {
    const path = instance();
    const holder = await hold('dies', path, { ttlMs: 1000 });
    const answer = await acquireOverHttp(t, acquireBody('waiter', [path], { waitMs: 10000 }));
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const late = Date.parse(answer.body.acquiredAt) - Date.parse(holder.expiresAt);
    assert.ok(late >= 0, `granted ${-late} ms before the holder expired`);
    // Its own timer wakes it at expiresAt (there is no reaper and no release to announce it).
    assert.ok(late < PROMPTLY_MS, `granted ${late} ms after the holder expired`);
    assert.ok(answer.body.fencingToken > holder.fencingToken);
  });

  test('orphan resolved: a waiter behind an abandoned action is granted once an operator discards the orphan', async () => {
    const path = instance();
    const lease = await hold('conductor-z', path, { action: { kind: 'resize' } });
    const abandoned = await t.post(`/v1/leases/${lease.id}/release`, { outcome: 'abandoned' });
    const orphanId = abandoned.json().orphanId as string;
    assert.ok(orphanId, abandoned.body);
    // waitMs well past the 5 s backstop: only the resolution's notice can wake it in time.
    const waiting = acquireOverHttp(t, acquireBody('waiter', [path], { waitMs: 10000 }));
    await untilQueued(path, 1);
    const blocked = await t.post('/v1/leases', acquireBody(unique('probe'), [path]));
    assert.deepEqual(
      (blocked.json().conflicts as Conflict[]).map((c) => [c.holder, c.state]),
      [['conductor-z', 'orphaned'], ['waiter', 'waiting']],
    );
    const sentAt = performance.now();
    const resolved = await t.post(`/v1/orphans/${orphanId}/resolve`, { resolution: 'discard' });
    assert.equal(resolved.statusCode, 200, resolved.body);
    const granted = assertGrantedAfter(await waiting, { sentAt, endedAt: resolved.json().resolvedAt }, 'the waiter');
    assert.ok(granted.fencingToken > lease.fencingToken);
  });

  test('below a held path: a waiter on instances/y/volumes/v is granted when the lease on instances/y ends', async () => {
    const path = instance();
    const volume = `${path}/volumes/v-1`;
    const holder = await hold('parent', path);
    const waiting = acquireOverHttp(t, acquireBody('child', [volume], { waitMs: 5000 }));
    await untilQueued(volume, 1);
    const released = await release(holder.id);
    assert.equal(assertGrantedAfter(await waiting, released, 'the waiter below').resources[0]?.path, volume);
  });

  test('above a held path: a waiter on instances/z is granted when the lease on instances/z/volumes/v ends', async () => {
    const path = instance();
    const holder = await hold('child', `${path}/volumes/v-1`);
    const waiting = acquireOverHttp(t, acquireBody('parent', [path], { waitMs: 5000 }));
    await untilQueued(path, 1);
    const released = await release(holder.id);
    assert.equal(assertGrantedAfter(await waiting, released, 'the waiter above').resources[0]?.path, path);
  });
});

describe('deadline', () => {
  test('a waiter answers 409 conflict naming the holder at its deadline, and leaves no ticket in Redis', async (tt) => {
    // An app of its own (its own key prefix), so "no ticket left" can be checked on every key.
    const app = await startTestApp(redis.url, {}, { sweep: false });
    tt.after(() => app.close());
    const path = `${instance()}/volumes/v-1`; // ancestors get below-sets too, which must go as well
    const holder = await hold('holder', path, {}, app);
    const started = performance.now();
    const answer = await acquireOverHttp(app, acquireBody('waiter', [path], { waitMs: 800 }));
    const elapsed = Math.round(answer.at - started);
    assert.equal(answer.status, 409, JSON.stringify(answer.body));
    assert.equal(answer.body.code, 'conflict');
    assert.deepEqual(answer.body.conflicts, [{ path, leaseId: holder.id, holder: 'holder', mode: 'exclusive', state: 'active' }]);
    assert.ok(elapsed >= 750, `answered after ${elapsed} ms`);
    assert.ok(elapsed < 3000, `answered after ${elapsed} ms`);

    const prefix = keyPrefix(app.config);
    assert.deepEqual(await app.redis.keys(`${prefix}w:*`), [], 'no ticket hash left');
    // Redis drops an emptied sorted set, so an empty queue leaves no wx:, ws:, wbs:, wbx: key and no wexp.
    const queueKeys = (await app.redis.keys(`${prefix}w*`)).filter((key) => key !== `${prefix}wseq`);
    assert.deepEqual(queueKeys, [], 'the queue sets are empty');
    // The holder is not disturbed, and a later acquire is not blocked by the gone waiter.
    assert.equal((await app.get(`/v1/leases/${holder.id}`)).json().state, 'active');
    await app.post(`/v1/leases/${holder.id}/release`);
    await hold('next', path, {}, app);
  });
});

describe('arrival order', { concurrency: true }, () => {
  test('exclusive waiters on one path are granted one after another in the order they arrived', async () => {
    const path = instance();
    const holder = await hold('h', path);
    const names = ['a', 'b', 'c'];
    const waiters: Promise<Answer>[] = [];
    for (const name of names) {
      waiters.push(acquireOverHttp(t, acquireBody(name, [path], { waitMs: 10000 })));
      await untilQueued(path, waiters.length);
    }
    assert.deepEqual((await waitersAhead(path)).map((c) => c.holder), names, 'the queue in arrival order');

    let released = await release(holder.id);
    const granted: Lease[] = [];
    for (const [i, waiter] of waiters.entries()) {
      // Each is granted only after the one before it released (Redis' clock) and promptly.
      const lease = assertGrantedAfter(await waiter, released, names[i]!);
      assert.equal(lease.holder, names[i]);
      granted.push(lease);
      // Each works a moment: a release while the others' retries are in flight is the lost
      // wakeup tested in "wakeups are not lost" below, not what this test is about.
      await sleep(200);
      released = await release(lease.id);
    }
    const tokens = granted.map((lease) => lease.fencingToken);
    assert.ok(tokens[0]! > holder.fencingToken && tokens[0]! < tokens[1]! && tokens[1]! < tokens[2]!, `tokens ${tokens.join(',')}`);
  });

  test('a stream of shared requests never starves a waiting exclusive one', async () => {
    const path = instance();
    const s1 = await hold('s1', { path, mode: 'shared' });
    const exclusive = acquireOverHttp(t, acquireBody('x', [path], { waitMs: 10000 }));
    await untilQueued(path, 1);

    // Compatible with s1, but none may pass x: each answers 409 naming x as waiting.
    let ticketId = '';
    for (let i = 0; i < 5; i++) {
      const res = await t.post('/v1/leases', acquireBody(`s-${i}`, [{ path, mode: 'shared' }]));
      assert.equal(res.statusCode, 409, res.body);
      const [conflict, ...more] = res.json().conflicts as Conflict[];
      assert.deepEqual(more, []);
      const { leaseId, ...rest } = conflict!;
      assert.deepEqual(rest, { path, holder: 'x', mode: 'exclusive', state: 'waiting' });
      ticketId = leaseId;
    }
    // Shared requests that wait queue behind x.
    const sharedNames = ['w1', 'w2'];
    let sharedAnswered = 0;
    const shared = sharedNames.map((name) =>
      acquireOverHttp(t, acquireBody(name, [{ path, mode: 'shared' }], { waitMs: 10000 })).finally(() => sharedAnswered++),
    );
    await untilQueued(path, 3);

    const s1Released = await release(s1.id);
    const x = assertGrantedAfter(await exclusive, s1Released, 'the exclusive waiter');
    assert.equal(x.id, ticketId, 'the waiting entry named the id the lease got');
    assert.ok(x.fencingToken > s1.fencingToken);
    // While x holds, the shared waiters stay queued (they were woken by s1's release too).
    await sleep(300);
    assert.equal(sharedAnswered, 0, 'a shared waiter answered while x held the path');
    assert.deepEqual((await t.get(`/v1/leases?prefix=${path}`)).json().items.map((l: Lease) => l.holder), ['x']);

    const xReleased = await release(x.id);
    const granted = (await Promise.all(shared)).map((answer, i) => assertGrantedAfter(answer, xReleased, sharedNames[i]!));
    for (const lease of granted) assert.ok(lease.fencingToken > x.fencingToken);
    // Shared does not conflict with shared: both hold the path at once.
    const holding = (await t.get(`/v1/leases?prefix=${path}`)).json().items as Lease[];
    assert.deepEqual(holding.map((l) => [l.holder, l.state]).sort(), [['w1', 'active'], ['w2', 'active']]);
  });

  test('a request never passes an earlier waiter it overlaps, even one blocked by something else', async () => {
    const path = instance();
    const holder = await hold('h', `${path}/volumes/v-1`);
    // a waits for the whole instance (blocked by h below it); v-2 itself is free.
    const a = acquireOverHttp(t, acquireBody('a', [path], { waitMs: 10000 }));
    await untilQueued(path, 1);
    const plain = await t.post('/v1/leases', acquireBody('plain', [`${path}/volumes/v-2`]));
    assert.equal(plain.statusCode, 409, plain.body);
    assert.deepEqual((plain.json().conflicts as Conflict[]).map((c) => [c.path, c.holder, c.state]), [[path, 'a', 'waiting']]);
    const c = acquireOverHttp(t, acquireBody('c', [`${path}/volumes/v-2`], { waitMs: 10000 }));
    await untilQueued(`${path}/volumes/v-2`, 1);

    const hReleased = await release(holder.id);
    const aLease = assertGrantedAfter(await a, hReleased, 'a');
    await sleep(200); // a works a moment (see the arrival-order test)
    const aReleased = await release(aLease.id);
    const cLease = assertGrantedAfter(await c, aReleased, 'c');
    assert.ok(cLease.fencingToken > aLease.fencingToken);
  });
});

describe('a waiter that goes away, and retries', { concurrency: true }, () => {
  test('a waiter whose client disconnects leaves the queue and never holds a lease', async () => {
    const path = instance();
    const volume = `${path}/volumes/v-1`;
    const holder = await hold('h', path);
    const controller = new AbortController();
    const gone = acquireOverHttp(t, acquireBody('gone', [path], { waitMs: 10000 }), controller.signal);
    await untilQueued(path, 1);
    const later = acquireOverHttp(t, acquireBody('later', [volume], { waitMs: 10000 }));
    await untilQueued(volume, 1);
    const ahead = await waitersAhead(volume);
    assert.deepEqual(ahead.map((c) => c.holder), ['gone', 'later']);
    const goneTicket = ahead[0]!.leaseId;

    controller.abort();
    await assert.rejects(gone, { name: 'AbortError' });
    await waitFor(async () => !(await ticketExists(goneTicket)), { timeoutMs: 2000, what: "the disconnected waiter's ticket to go" });
    assert.deepEqual((await waitersAhead(volume)).map((c) => c.holder), ['later']);

    // Had the ticket stayed, later would wait until it lapsed (10 s and more).
    const released = await release(holder.id);
    assertGrantedAfter(await later, released, 'the later waiter');
    assert.deepEqual(await leasesOf('gone'), []);
    assert.equal((await t.get(`/v1/leases/${goneTicket}`)).statusCode, 404);
  });

  test('two waiting acquires with one requestId end with one lease, named by both answers', async () => {
    const path = instance();
    const holder = await hold('h', path);
    const body = acquireBody('retrier', [path], { waitMs: 5000, requestId: unique('resize') });
    const first = acquireOverHttp(t, body);
    await untilQueued(path, 1);
    const second = acquireOverHttp(t, body); // a client retrying while its first attempt still waits
    await untilQueued(path, 2);
    const tickets = (await waitersAhead(path)).map((c) => c.leaseId);
    assert.equal(tickets.length, 2);

    const released = await release(holder.id);
    const answers = await Promise.all([first, second]);
    for (const answer of answers) {
      assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.body));
      assert.ok(answer.at - released.sentAt < PROMPTLY_MS, `answered ${Math.round(answer.at - released.sentAt)} ms after the release`);
    }
    assert.ok(answers.some((answer) => answer.status === 201), 'one of them was granted');
    const [lease] = await leasesOf('retrier');
    assert.deepEqual(answers.map((answer) => answer.body.id), [lease!.id, lease!.id]);
    assert.equal((await leasesOf('retrier')).length, 1);
    for (const id of tickets) assert.equal(await ticketExists(id), false, `ticket ${id} left`);
  });
});

describe('waitMs without a conflict, and its bounds', { concurrency: true }, () => {
  test('waitMs on a free path grants at once and queues nothing', async () => {
    for (const waitMs of [5000, 60000]) {
      const started = performance.now();
      const answer = await acquireOverHttp(t, acquireBody(unique('h'), [instance()], { waitMs }));
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      assert.ok(answer.at - started < 1000, `answered after ${Math.round(answer.at - started)} ms`);
      assert.equal(await ticketExists(answer.body.id), false);
    }
  });

  test('waitMs below 0, above WAIT_MAX_MS or not an integer is 400 and grants nothing', async () => {
    for (const waitMs of [-1, 60001, '100', 1.5, null]) {
      const holder = unique('h');
      const res = await t.post('/v1/leases', acquireBody(holder, [instance()], { waitMs }));
      assert.equal(res.statusCode, 400, `waitMs ${JSON.stringify(waitMs)}: ${res.body}`);
      assert.equal(res.json().code, 'invalid_request');
      assert.deepEqual(await leasesOf(holder), []);
    }
  });
});

describe('wakeups are not lost', () => {
  test(
    'a notice that overtakes the reply of the waiter\'s own script still wakes it',
    async () => {
      // Script replies and pub/sub notices travel on different connections, so a notice can
      // reach the service before the reply of a script that ran earlier (it happens under
      // load by itself); a proxy that delays replies on command connections makes it certain.
      const proxy = await startDelayingProxy(redis.port, new URL(redis.url).password);
      const app = await startTestApp(proxy.url, {}, { sweep: false });
      const controller = new AbortController();
      try {
        const path = instance();
        const holder = await hold('h', path, {}, app);
        proxy.delayMs = 200;
        const waiting = acquireOverHttp(app, acquireBody('waiter', [path], { waitMs: 10000 }), controller.signal);
        // Read on a direct connection: the waiter's script has run, its reply is on its way.
        await untilQueued(path, 1, app);
        const released = await release(holder.id, app); // its script runs at once; its notice is not delayed
        proxy.delayMs = 0;
        const answer = await Promise.race([waiting, sleep(PROMPTLY_MS + 500).then(() => null)]);
        assert.ok(answer, `the waiter had not answered ${PROMPTLY_MS + 500} ms after the release`);
        assertGrantedAfter(answer, released, 'the waiter');
      } finally {
        controller.abort();
        await app.close();
        proxy.close();
      }
    },
  );
});

/**
 * A TCP proxy to Redis that holds back what Redis sends on command connections by `delayMs`
 * (in order); a subscriber's connection (it sent SUBSCRIBE) is passed through at once.
 */
async function startDelayingProxy(redisPort: number, password: string) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(redisPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    let subscriber = false;
    const queue: { at: number; chunk: Buffer }[] = [];
    let draining = false;
    const drain = async () => {
      draining = true;
      for (let next = queue[0]; next; next = queue[0]) {
        if (next.at > Date.now()) await sleep(next.at - Date.now());
        client.write(queue.shift()!.chunk);
      }
      draining = false;
    };
    client.on('data', (chunk: Buffer) => {
      if (/subscribe/i.test(chunk.toString('latin1'))) subscriber = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      queue.push({ at: Date.now() + (subscriber ? 0 : proxy.delayMs), chunk });
      if (!draining) void drain();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = {
    url: `redis://:${password}@127.0.0.1:${(server.address() as AddressInfo).port}`,
    delayMs: 0,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
  return proxy;
}
