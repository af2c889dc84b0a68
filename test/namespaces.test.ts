// Namespaces: every /v1 route also under /v1/namespaces/{namespace}, each namespace a world
// of its own (leases, orphans, waiters, events, fencing tokens), its keys under one hash tag.
// Real redis-server, real HTTP for the event stream, the real reaper.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { acquireBody, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t, redis } = useTestApp({ env: { NAMESPACES_MAX: '6' } });

let n = 0;
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;
const ns = (name: string) => `/v1/namespaces/${name}`;

interface LeaseBody {
  id: string;
  fencingToken: number;
  holder: string;
  state: string;
}

async function acquireIn(app: TestApp, namespace: string, holder: string, path: string, extra: Record<string, unknown> = {}): Promise<LeaseBody> {
  const res = await app.post(`${ns(namespace)}/leases`, acquireBody(holder, [path], extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<LeaseBody>();
}

/** Every key of one namespace, by the hash tag it must carry. */
async function keysOf(app: TestApp, namespace: string): Promise<string[]> {
  return app.redis.keys(`{${app.config.KEY_PREFIX}/${namespace}}:*`);
}

describe('namespaces keep their worlds apart', () => {
  test('the same path in two namespaces is granted in each; each namespace counts its own fencing tokens', async () => {
    const path = `instances/${unique('i')}`;
    const inA = await acquireIn(t, 'tenant-a', 'conductor-1', path);
    const inB = await acquireIn(t, 'tenant-b', 'conductor-2', path);
    // And in the default namespace too, by either route.
    const inDefault = await t.post('/v1/leases', acquireBody('conductor-3', [path]));
    assert.equal(inDefault.statusCode, 201, inDefault.body);
    const again = await t.post(`${ns('default')}/leases`, acquireBody('conductor-4', [path]));
    assert.equal(again.statusCode, 409, 'the namespace "default" is the routes without a prefix');

    // A second grant in A carries a greater token than A's first; B's counter is its own.
    const secondInA = await acquireIn(t, 'tenant-a', 'conductor-1', `${path}-2`);
    assert.ok(secondInA.fencingToken > inA.fencingToken);
    assert.ok(inB.fencingToken > 0);
    const tokenKeys = await t.redis.keys(`{${t.config.KEY_PREFIX}/tenant-*}:token`);
    assert.deepEqual(tokenKeys.sort(), [`{${t.config.KEY_PREFIX}/tenant-a}:token`, `{${t.config.KEY_PREFIX}/tenant-b}:token`]);
  });

  test('an id of another namespace is 404 there, for reads and for every change', async () => {
    const lease = await acquireIn(t, 'tenant-a', 'conductor-1', `instances/${unique('i')}`);
    assert.equal((await t.get(`${ns('tenant-a')}/leases/${lease.id}`)).statusCode, 200);
    for (const other of [ns('tenant-b'), '/v1', ns('default')]) {
      assert.equal((await t.get(`${other}/leases/${lease.id}`)).json<{ code: string }>().code, 'lease_not_found', other);
      assert.equal((await t.post(`${other}/leases/${lease.id}/renew`, {})).statusCode, 404, other);
      assert.equal((await t.post(`${other}/leases/${lease.id}/release`, {})).statusCode, 404, other);
      assert.equal((await t.del(`${other}/leases/${lease.id}`)).statusCode, 404, other);
    }
    // Still held in its own namespace, untouched.
    const read = await t.get(`${ns('tenant-a')}/leases/${lease.id}`);
    assert.equal(read.json<LeaseBody>().state, 'active');
  });

  test('listings, resource views, holder renewals and fencing checks see their own namespace only', async () => {
    const path = `instances/${unique('i')}`;
    const holder = unique('conductor');
    const inA = await acquireIn(t, 'tenant-a', holder, path);

    const listA = (await t.get(`${ns('tenant-a')}/leases?holder=${holder}`)).json<{ items: LeaseBody[] }>();
    assert.deepEqual(listA.items.map((l) => l.id), [inA.id]);
    assert.deepEqual((await t.get(`${ns('tenant-b')}/leases?holder=${holder}`)).json<{ items: unknown[] }>().items, []);
    assert.deepEqual((await t.get(`/v1/leases?holder=${holder}`)).json<{ items: unknown[] }>().items, []);

    assert.equal((await t.get(`${ns('tenant-a')}/resources/${path}`)).json<{ coveredByCount: number }>().coveredByCount, 1);
    assert.equal((await t.get(`${ns('tenant-b')}/resources/${path}`)).json<{ coveredByCount: number }>().coveredByCount, 0);

    assert.deepEqual((await t.post(`${ns('tenant-b')}/holders/${holder}/renew`, {})).json<{ renewed: unknown[] }>().renewed, []);
    assert.equal((await t.post(`${ns('tenant-a')}/holders/${holder}/renew`, {})).json<{ renewed: unknown[] }>().renewed.length, 1);

    const check = (namespace: string) => t.post(`${ns(namespace)}/fencing/check`, { path, fencingToken: inA.fencingToken });
    assert.equal((await check('tenant-a')).json<{ valid: boolean }>().valid, true);
    assert.equal((await check('tenant-b')).json<{ valid: boolean }>().valid, false);
  });

  test('an expired lease of a namespace becomes an orphan of that namespace only, published by the reaper', async () => {
    const kind = unique('resize');
    const lease = await acquireIn(t, 'tenant-c', 'conductor-1', `instances/${unique('i')}`, { ttlMs: 1000, action: { kind } });
    // Nobody touches the lease: only the reaper, which sweeps every namespace, can publish it.
    const orphansStream = `{${t.config.KEY_PREFIX}/tenant-c}:orphans`;
    await waitFor(async () => (await t.redis.xlen(orphansStream)) > 0, { what: 'the orphan in tenant-c\'s orphans stream', timeoutMs: 10000 });
    const listed = (await t.get(`${ns('tenant-c')}/orphans?kind=${kind}`)).json<{ items: { lastLeaseId: string; state: string }[] }>().items;
    assert.deepEqual(listed.map((o) => [o.lastLeaseId, o.state]), [[lease.id, 'pending']]);
    assert.deepEqual((await t.get(`${ns('tenant-d')}/orphans?kind=${kind}`)).json<{ items: unknown[] }>().items, []);
    assert.deepEqual((await t.get(`/v1/orphans?kind=${kind}`)).json<{ items: unknown[] }>().items, []);

    // A claim elsewhere finds nothing; in tenant-c it gets the orphan with a greater token.
    assert.equal((await t.post(`${ns('tenant-d')}/orphans/claim`, { holder: 'conductor-2', kinds: [kind] })).statusCode, 204);
    assert.equal((await t.post('/v1/orphans/claim', { holder: 'conductor-2', kinds: [kind] })).statusCode, 204);
    const claimed = await t.post(`${ns('tenant-c')}/orphans/claim`, { holder: 'conductor-2', kinds: [kind] });
    assert.equal(claimed.statusCode, 200, claimed.body);
    assert.ok(claimed.json<{ lease: LeaseBody }>().lease.fencingToken > lease.fencingToken);
  });

  test('a waiting acquire is woken by a release in its own namespace; the same path held elsewhere does not block it', async () => {
    const path = `instances/${unique('i')}`;
    const blocker = await acquireIn(t, 'tenant-a', 'conductor-1', path);
    await acquireIn(t, 'tenant-b', 'conductor-9', path);
    const waiting = t.post(`${ns('tenant-a')}/leases`, acquireBody('conductor-2', [path], { waitMs: 10000 }));
    let answered = false;
    void waiting.then(() => (answered = true));
    await setTimeout(300);
    assert.equal(answered, false, 'it waits while the blocker in its namespace holds the path');
    const started = Date.now();
    assert.equal((await t.post(`${ns('tenant-a')}/leases/${blocker.id}/release`, {})).statusCode, 200);
    const granted = await waiting;
    assert.equal(granted.statusCode, 201, granted.body);
    assert.ok(Date.now() - started < 5000, 'woken by the release, not by the end of its wait');
  });

  test('each namespace has its own event stream', async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}${ns('tenant-e')}/events`, { signal: controller.signal });
    assert.equal(res.status, 200);
    let text = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of res.body!) text += decoder.decode(chunk, { stream: true });
    })().catch(() => {});
    try {
      const path = `instances/${unique('i')}`;
      const elsewhere = await acquireIn(t, 'tenant-f', 'conductor-1', path);
      const own = await acquireIn(t, 'tenant-e', 'conductor-1', path);
      await waitFor(async () => text.includes(own.id), { what: 'tenant-e\'s grant on its stream' });
      assert.ok(!text.includes(elsewhere.id), 'tenant-f\'s grant is not on tenant-e\'s stream');
    } finally {
      controller.abort();
      await reading;
    }
  });

  test('every key of a namespace carries its hash tag (one Cluster slot), and none is written under another', async () => {
    const lease = await acquireIn(t, 'tenant-g', 'conductor-1', `instances/${unique('i')}`, { action: { kind: 'resize' } });
    await t.post(`${ns('tenant-g')}/leases/${lease.id}/release`, { outcome: 'abandoned' });
    const keys = await keysOf(t, 'tenant-g');
    assert.ok(keys.length >= 4, keys.join(' '));
    for (const key of keys) assert.ok(key.startsWith(`{${t.config.KEY_PREFIX}/tenant-g}:`), key);
  });
});

describe('namespace names and the namespace budget', () => {
  test('a malformed namespace is 400 invalid_request and writes nothing', async () => {
    const before = await t.snapshotKeys();
    for (const name of ['Tenant', '-a', 'a_b', 'a.b', 'x'.repeat(64), 'a%20b', 'a%2Fb', '%C3%A9']) {
      const res = await t.post(`/v1/namespaces/${name}/leases`, acquireBody('conductor-1', ['instances/i-1']));
      assert.equal(res.statusCode, 400, `${name}: ${res.body}`);
      assert.equal(res.json<{ code: string }>().code, 'invalid_request', name);
      assert.match(String(res.headers['content-type']), /application\/problem\+json/);
    }
    assert.deepEqual(await t.snapshotKeys(), before);
  });

  test('past NAMESPACES_MAX an acquire in a new namespace is 429 rate_limited with Retry-After and writes nothing; existing ones go on', async () => {
    const app = await startTestApp(redis.url, { NAMESPACES_MAX: '2' });
    try {
      await acquireIn(app, 'one', 'conductor-1', 'instances/i-1');
      await acquireIn(app, 'two', 'conductor-1', 'instances/i-1');
      const refused = await app.post(`${ns('three')}/leases`, acquireBody('conductor-1', ['instances/i-1']));
      assert.equal(refused.statusCode, 429, refused.body);
      assert.equal(refused.json<{ code: string }>().code, 'rate_limited');
      assert.ok(Number(refused.headers['retry-after']) > 0);
      assert.deepEqual(await keysOf(app, 'three'), []);
      assert.deepEqual((await app.redis.smembers(`{${app.config.KEY_PREFIX}}:namespaces`)).sort(), ['one', 'two']);
      // Reads of a namespace that does not exist find it empty; the default and known ones still grant.
      assert.deepEqual((await app.get(`${ns('three')}/leases`)).json<{ items: unknown[] }>().items, []);
      await acquireIn(app, 'one', 'conductor-1', 'instances/i-2');
      assert.equal((await app.post('/v1/leases', acquireBody('conductor-1', ['instances/i-1']))).statusCode, 201);
    } finally {
      await app.close();
    }
  });

  test('/metrics counts the leases of every namespace', async () => {
    const app = await startTestApp(redis.url, {}, { sweep: false });
    try {
      await acquireIn(app, 'one', 'conductor-1', 'instances/i-1');
      await acquireIn(app, 'two', 'conductor-1', 'instances/i-1');
      assert.equal((await app.post('/v1/leases', acquireBody('conductor-1', ['instances/i-1']))).statusCode, 201);
      const text = (await app.get('/metrics')).body;
      assert.match(text, /^lease_leases\{state="active"\} 3$/m);
    } finally {
      await app.close();
    }
  });
});
