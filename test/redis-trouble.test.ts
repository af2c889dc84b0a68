// Redis stuck (SIGSTOP) or gone (SIGKILL, then started again): the service answers
// 503 backend_unavailable fast, never 500, and serves again by itself once Redis is back.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadLibrary } from '../src/store/scripts.js';
import { acquireBody, startTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

/** A bound on "fails fast" with a 500 ms command timeout, not a performance target. */
const FAST_MS = 3000;

interface Answer {
  status: number;
  headers: Headers;
  body: any;
  elapsedMs: number;
}

/** Every answer of this file, to prove at the end that none was a 500. */
const answered: { request: string; status: number }[] = [];

async function call(t: TestApp, method: 'GET' | 'POST', url: string, body?: unknown): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`${t.baseUrl}${url}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const elapsedMs = performance.now() - started;
  answered.push({ request: `${method} ${url}`, status: res.status });
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON; the assertions below say so
  }
  return { status: res.status, headers: res.headers, body: parsed, elapsedMs };
}

function assertUnavailable(answer: Answer, what: string): void {
  assert.equal(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json\b/, what);
  assert.equal(answer.body.code, 'backend_unavailable', what);
  assert.equal(answer.body.status, 503, what);
  assert.match(answer.headers.get('retry-after') ?? '', /^\d+$/, `${what}: Retry-After`);
  assert.ok(answer.elapsedMs < FAST_MS, `${what} took ${Math.round(answer.elapsedMs)} ms to fail`);
}

let n = 0;
const instance = () => `instances/i-${++n}-${Date.now()}`;
const holderName = (role: string) => `${role}-${n}-${Date.now()}`;

describe('Redis paused (SIGSTOP): the socket stays open and nothing answers', () => {
  let redis: TestRedis;
  let t: TestApp;
  before(async () => {
    redis = await startTestRedis();
    t = await startTestApp(redis.url, { REDIS_COMMAND_TIMEOUT_MS: '500' });
  });
  after(async () => {
    try {
      redis?.resume();
    } catch {
      // already gone
    }
    await t?.close();
    await redis?.stop();
  });

  test('calls that timed out against a paused Redis change nothing when it wakes up', async () => {
    const holder = holderName('late');
    const held = await call(t, 'POST', '/v1/leases', acquireBody(holder, [instance()], { ttlMs: 30000 }));
    assert.equal(held.status, 201);
    const path = instance();
    const before = await t.snapshotKeys();

    redis.pause();
    try {
      assertUnavailable(await call(t, 'POST', '/v1/leases', acquireBody('other', [path], { ttlMs: 30000 })), 'acquire');
      assertUnavailable(await call(t, 'POST', `/v1/leases/${held.body.id}/renew`, { ttlMs: 60000 }), 'renew');
      assertUnavailable(await call(t, 'POST', `/v1/leases/${held.body.id}/release`, {}), 'release');
    } finally {
      redis.resume();
    }
    await waitFor(async () => (await call(t, 'GET', '/readyz')).status === 200, { what: 'Redis to answer again' });

    // The three scripts ran once Redis woke up, found their deadlines passed, and did nothing.
    assert.deepEqual(await t.snapshotKeys(), before);
    const lease = await call(t, 'GET', `/v1/leases/${held.body.id}`);
    assert.equal(lease.status, 200);
    assert.equal(lease.body.state, 'active');
    assert.equal(lease.body.expiresAt, held.body.expiresAt);
    assert.equal((await call(t, 'POST', '/v1/leases', acquireBody('third', [path]))).status, 201);
  });

  test('every lease call answers 503 backend_unavailable within seconds; after resume the service serves again', async () => {
    const holder = holderName('paused');
    const held = await call(t, 'POST', '/v1/leases', acquireBody(holder, [instance()], { ttlMs: 30000 }));
    assert.equal(held.status, 201);
    const id = held.body.id as string;
    const path = instance();
    // Short ttl: if the timed-out attempt still runs once Redis resumes (see the requestId
    // test below), the lease it grants lapses soon and the retry below is granted.
    const body = acquireBody(holder, [path], { ttlMs: 1000 });

    redis.pause();
    try {
      assertUnavailable(await call(t, 'POST', '/v1/leases', body), 'acquire');
      assertUnavailable(await call(t, 'POST', `/v1/leases/${id}/renew`, { ttlMs: 30000 }), 'renew');
      assertUnavailable(await call(t, 'POST', `/v1/leases/${id}/release`, {}), 'release');
      assertUnavailable(await call(t, 'GET', `/v1/leases/${id}`), 'get');
      assertUnavailable(await call(t, 'GET', `/v1/leases?holder=${encodeURIComponent(holder)}`), 'list');
      assertUnavailable(await call(t, 'GET', '/readyz'), 'readyz');
      assert.equal((await call(t, 'GET', '/healthz')).status, 200, 'the process itself is up');
    } finally {
      redis.resume();
    }

    const granted = await waitFor(
      async () => {
        const retry = await call(t, 'POST', '/v1/leases', body);
        if (retry.status === 201) return retry;
        // Before the timed-out attempt's lease lapses, only that lease may stand in the way.
        if (retry.status === 409) assert.deepEqual(retry.body.conflicts.map((c: { holder: string }) => c.holder), [holder]);
        else assert.equal(retry.status, 503, JSON.stringify(retry.body));
        return undefined;
      },
      { timeoutMs: 10000, intervalMs: 100, what: 'the acquire to be granted after resume' },
    );
    assert.equal(granted.body.resources[0].path, path);
    assert.equal((await call(t, 'GET', '/readyz')).status, 200);
  });

  test('an acquire that got 503 and is retried with its requestId ends with exactly one lease, never a conflict with itself', async () => {
    const holder = holderName('retrier');
    const body = acquireBody(holder, [instance()], { requestId: `req-${n}`, ttlMs: 30000 });

    redis.pause();
    try {
      assertUnavailable(await call(t, 'POST', '/v1/leases', body), 'acquire while paused');
    } finally {
      redis.resume();
    }

    const retry = await waitFor(
      async () => {
        const answer = await call(t, 'POST', '/v1/leases', body);
        return answer.status === 503 ? undefined : answer;
      },
      { timeoutMs: 10000, intervalMs: 100, what: 'the retry to reach Redis' },
    );
    // 200: the first attempt ran once Redis resumed and the retry found it; 201: it never ran.
    assert.ok(retry.status === 200 || retry.status === 201, `retry answered ${retry.status} ${JSON.stringify(retry.body)}`);
    assert.equal(retry.body.state, 'active');

    const list = await call(t, 'GET', `/v1/leases?holder=${encodeURIComponent(holder)}`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items.map((lease: { id: string; state: string }) => [lease.id, lease.state]), [[retry.body.id, 'active']]);
  });

  test('a waiting claim whose client leaves while its subscription waits on a paused Redis claims nothing once Redis wakes', async () => {
    // A namespace of its own: its channel is not subscribed yet, so the claim first waits
    // for Redis to confirm the subscription (which a paused Redis does not).
    const base = `/v1/namespaces/claim-gone-${n}-${Date.now().toString(36)}`;
    const kind = `gone-${n}`;
    const held = await call(t, 'POST', `${base}/leases`, acquireBody(holderName('dying'), [instance()], { ttlMs: 30000, action: { kind, maxAttempts: 2 } }));
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const abandoned = await call(t, 'POST', `${base}/leases/${held.body.id}/release`, { outcome: 'abandoned' });
    assert.equal(abandoned.status, 200);
    const orphanId = abandoned.body.orphanId as string;

    redis.pause();
    try {
      const leaving = new AbortController();
      const claim = fetch(`${t.baseUrl}${base}/orphans/claim`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ holder: holderName('ghost'), kinds: [kind], waitMs: 5000, ttlMs: 30000 }),
        signal: leaving.signal,
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      leaving.abort();
      await claim.catch(() => undefined);
      // Let the service see the client go before Redis answers anything.
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      redis.resume();
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const orphan = await waitFor(
      async () => {
        const answer = await call(t, 'GET', `${base}/orphans/${orphanId}`);
        return answer.status === 503 ? undefined : answer;
      },
      { timeoutMs: 10000, intervalMs: 100, what: 'the orphan to be readable after resume' },
    );
    assert.equal(orphan.status, 200);
    // Still pending at its first attempt: no claim was made for the client that left.
    assert.equal(orphan.body.state, 'pending', JSON.stringify(orphan.body));
    assert.equal(orphan.body.action.attempt, 1);
  });
});

describe('Redis killed (SIGKILL) and started again on the same port', () => {
  let redis: TestRedis;
  let t: TestApp;
  before(async () => {
    // fsync every write: a lease granted before the SIGKILL must be on disk.
    redis = await startTestRedis(['--appendfsync', 'always']);
    t = await startTestApp(redis.url, { REDIS_COMMAND_TIMEOUT_MS: '500' });
  });
  after(async () => {
    await t?.close();
    await redis?.stop();
  });

  test('503 fast during the outage; afterwards the app reconnects by itself and earlier leases still hold', async () => {
    const path = instance();
    const held = await call(t, 'POST', '/v1/leases', acquireBody('survivor', [path], { ttlMs: 60000 }));
    assert.equal(held.status, 201);
    const id = held.body.id as string;

    await redis.kill();
    try {
      assertUnavailable(await call(t, 'POST', '/v1/leases', acquireBody('outage', [instance()])), 'acquire');
      assertUnavailable(await call(t, 'POST', `/v1/leases/${id}/renew`, {}), 'renew');
      assertUnavailable(await call(t, 'POST', `/v1/leases/${id}/release`, {}), 'release');
      assertUnavailable(await call(t, 'GET', `/v1/leases/${id}`), 'get');
      assertUnavailable(await call(t, 'GET', '/v1/leases?holder=survivor'), 'list');
      assertUnavailable(await call(t, 'GET', '/readyz'), 'readyz');
      // Still failing fast after the client has been reconnecting for a while.
      await waitFor(() => t.redis.status === 'reconnecting' || t.redis.status === 'connecting', { what: 'the client to be reconnecting' });
      assertUnavailable(await call(t, 'POST', '/v1/leases', acquireBody('outage', [instance()])), 'acquire while reconnecting');
    } finally {
      await redis.start();
    }

    const fresh = await waitFor(
      async () => {
        const answer = await call(t, 'POST', '/v1/leases', acquireBody('after-restart', [instance()]));
        if (answer.status === 201) return answer;
        assertUnavailable(answer, 'acquire while the client reconnects');
        return undefined;
      },
      { timeoutMs: 15000, intervalMs: 100, what: 'a grant after the restart' },
    );
    assert.equal(fresh.body.state, 'active');
    // Ready means Redis holds the functions library (kept in the append-only file, or loaded again).
    assert.equal((await call(t, 'GET', '/readyz')).status, 200);
    assert.equal(((await t.redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', loadLibrary().name)) as unknown[]).length, 1);

    const survived = await call(t, 'GET', `/v1/leases/${id}`);
    assert.equal(survived.status, 200, JSON.stringify(survived.body));
    assert.equal(survived.body.state, 'active');
    assert.equal(survived.body.fencingToken, held.body.fencingToken);
    assert.equal(survived.body.expiresAt, held.body.expiresAt, 'the renew that got 503 renewed nothing');

    const conflicting = await call(t, 'POST', '/v1/leases', acquireBody('intruder', [`${path}/volumes/v-1`]));
    assert.equal(conflicting.status, 409);
    assert.deepEqual(conflicting.body.conflicts, [{ path, leaseId: id, holder: 'survivor', mode: 'exclusive', state: 'active' }]);

    // Fencing tokens keep increasing across the restart.
    assert.equal((await call(t, 'POST', `/v1/leases/${id}/release`, {})).status, 200);
    const next = await call(t, 'POST', '/v1/leases', acquireBody('next', [path]));
    assert.equal(next.status, 201);
    assert.ok(next.body.fencingToken > held.body.fencingToken, `token ${next.body.fencingToken} after ${held.body.fencingToken}`);
  });
});

test('no request in this file was answered 500 (or any 5xx but 503)', () => {
  assert.ok(answered.length > 20, `only ${answered.length} answers recorded`);
  assert.deepEqual(answered.filter((a) => a.status >= 500 && a.status !== 503), []);
});
