// Quotas and rate limits, as a caller meets them: requests a second per token (or client
// address) and namespace, shared by every replica; active leases per token and namespace,
// counted in the script that would grant one; waiting requests and event streams per token.
// Every refusal is 429 rate_limited with Retry-After, and Redis is read after it to show
// that nothing was written. Real redis-server, real HTTP for the event streams.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import type { GrantClaimsValue } from '../src/auth/grants.js';
import { ServiceTokens, tokenKeys } from '../src/auth/service-tokens.js';
import { acquireBody, startTestApp, type TestApp } from './helpers/app.js';
import { keyContent } from './helpers/key-content.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const redis = {} as TestRedis;
before(async () => {
  Object.assign(redis, await startTestRedis());
});
after(async () => {
  await redis.stop?.();
});

let n = 0;
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;
const base = (namespace: string) => `/v1/namespaces/${namespace}`;

interface Caller {
  token: string;
  /** The token id: the actor that lease records, counters and rate keys name. */
  id: string;
}

interface LeaseBody {
  id: string;
  holder: string;
}

async function makeToken(app: TestApp, grant: GrantClaimsValue): Promise<Caller> {
  const { token, record } = await new ServiceTokens(app.redis, tokenKeys(app.config.KEY_PREFIX)).create(grant);
  return { token, id: record.id };
}

function as(
  app: TestApp,
  caller: Caller | null,
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: unknown,
  remoteAddress?: string,
): Promise<LightMyRequestResponse> {
  return app.app.inject({
    method,
    url,
    ...(caller ? { headers: { authorization: `Bearer ${caller.token}` } } : {}),
    ...(body === undefined ? {} : { payload: body as object }),
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  });
}

/** The hash-tagged prefix of a namespace's keys. */
function prefixOf(app: TestApp, namespace: string): string {
  return namespace === 'default' ? `{${app.config.KEY_PREFIX}}:` : `{${app.config.KEY_PREFIX}/${namespace}}:`;
}

/**
 * Every key of a namespace with its content, so that any change to any of them shows; the
 * per-second request counters (rate:*) are left out, as every request counts, refused or not.
 */
async function dumpNamespace(app: TestApp, namespace: string): Promise<Map<string, string>> {
  const prefix = prefixOf(app, namespace);
  const keys = (await app.redis.keys(`${prefix}*`)).filter((key) => !key.startsWith(`${prefix}rate:`)).sort();
  const contents = await Promise.all(keys.map((key) => keyContent(app.redis, key)));
  return new Map(keys.map((key, i) => [key, contents[i]!]));
}

function assertRateLimited(res: LightMyRequestResponse, what: string): void {
  assert.equal(res.statusCode, 429, `${what}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/, what);
  const body = res.json<{ code: string; status: number }>();
  assert.equal(body.code, 'rate_limited', what);
  assert.equal(body.status, 429, what);
  const retryAfter = Number(res.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `${what}: Retry-After ${String(res.headers['retry-after'])}`);
}

function assertStatus(res: LightMyRequestResponse, status: number, what: string): void {
  assert.equal(res.statusCode, status, `${what}: ${res.body}`);
}

/**
 * Runs `attempt` at the start of a fresh one-second window of the counter `rateKey`, and
 * again (up to 5 times) when the window turned over before it was done, as it may on a
 * loaded machine: an attempt counts only when the counter still holds `expected` requests
 * at its end, i.e. all of them fell in one window. Returns what the attempt collected; the
 * caller asserts on it.
 */
async function inOneWindow<T>(app: TestApp, rateKey: string, expected: number, attempt: () => Promise<T>): Promise<T> {
  for (let tries = 0; tries < 5; tries++) {
    await waitFor(async () => (await app.redis.exists(rateKey)) === 0, { what: `a fresh window of ${rateKey}`, timeoutMs: 5000 });
    const result = await attempt();
    if (Number(await app.redis.get(rateKey)) === expected) return result;
  }
  throw new Error(`five attempts each took longer than one window of ${rateKey}`);
}

describe('RATE_LIMIT_PER_SECOND with access control on: per token and namespace, across replicas', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp(redis.url, { AUTH: 'on', RATE_LIMIT_PER_SECOND: '5' }, { sweep: false });
    // Namespaces that exist, each with its own buckets (one that does not counts in the default's).
    const setup = await makeToken(app, { role: 'conductor', namespaces: ['cell-1', 'cell-2'], holders: 'setup' });
    for (const namespace of ['cell-1', 'cell-2']) {
      const res = await as(app, setup, 'POST', `${base(namespace)}/leases`, acquireBody('setup', [`instances/${unique('setup')}`]));
      assertStatus(res, 201, `the first acquire in ${namespace}`);
    }
  });
  after(async () => {
    await app?.close();
  });

  test('a token\'s 6th request in a second in one namespace is 429 rate_limited with Retry-After and changes nothing; other tokens and namespaces go on', async () => {
    const alice = await makeToken(app, { role: 'conductor', namespaces: ['cell-1', 'cell-2'], holders: 'c-*' });
    const bob = await makeToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'c-*' });
    const refusedPath = `instances/${unique('refused')}`;
    const aliceKey = `${prefixOf(app, 'cell-1')}rate:${alice.id}`;

    const seen = await inOneWindow(app, aliceKey, 7, async () => {
      const first: number[] = [];
      for (let i = 0; i < 5; i++) first.push((await as(app, alice, 'GET', `${base('cell-1')}/leases?holder=c-1`)).statusCode);
      const before = await dumpNamespace(app, 'cell-1');
      const sixth = await as(app, alice, 'POST', `${base('cell-1')}/leases`, acquireBody('c-1', [refusedPath]));
      const afterSixth = await dumpNamespace(app, 'cell-1');
      // While alice is limited: bob in the same namespace, and alice in another.
      const byBob = await as(app, bob, 'POST', `${base('cell-1')}/leases`, acquireBody('c-2', [`instances/${unique('bob')}`]));
      const elsewhere = await as(app, alice, 'GET', `${base('cell-2')}/leases?holder=c-1`);
      // ...and alice is still limited in cell-1 after both.
      const seventh = await as(app, alice, 'GET', `${base('cell-1')}/leases?holder=c-1`);
      return { first, before, sixth, afterSixth, byBob, elsewhere, seventh };
    });

    assert.deepEqual(seen.first, [200, 200, 200, 200, 200]);
    assertRateLimited(seen.sixth, 'the 6th request');
    assert.ok(Number(seen.sixth.headers['retry-after']) <= 1, 'the window is one second');
    assert.deepEqual(seen.afterSixth, seen.before, 'a refused acquire writes nothing');
    assert.ok(![...seen.afterSixth.keys()].some((key) => key.includes(refusedPath)), 'no index entry of the refused path');
    assertStatus(seen.byBob, 201, 'another token in the same namespace');
    assertStatus(seen.elsewhere, 200, 'the same token in another namespace');
    assertRateLimited(seen.seventh, 'still limited in cell-1');
    assert.ok(Number(await app.redis.get(`${prefixOf(app, 'cell-2')}rate:${alice.id}`)) <= 1, 'cell-2 counts alice\'s requests apart');

    // A client that waits as long as Retry-After says is served again.
    await sleep(Number(seen.seventh.headers['retry-after']) * 1000);
    const again = await as(app, alice, 'POST', `${base('cell-1')}/leases`, acquireBody('c-1', [refusedPath]));
    assertStatus(again, 201, 'after Retry-After');
    assert.equal(await app.redis.hget(`${prefixOf(app, 'cell-1')}l:${again.json<LeaseBody>().id}`, 'by'), alice.id);
  });

  test('a malformed namespace counts in the default namespace\'s bucket: no key is named after it', async () => {
    const caller = await makeToken(app, { role: 'reader', namespaces: ['cell-1'] });
    const forged = `zz${encodeURIComponent('}:h:conductor-x')}`;
    const res = await as(app, caller, 'GET', `/v1/namespaces/${forged}/leases?holder=a`);
    assert.equal(res.statusCode, 400, res.body);
    // (Not merely "zz" anywhere: a random token id in a key may hold it.)
    const stray = (await app.redis.keys(`{${app.config.KEY_PREFIX}*`)).filter((key) => key.includes('conductor-x') || key.startsWith(`{${app.config.KEY_PREFIX}/zz`));
    assert.deepEqual(stray, []);
    assert.ok((await app.redis.exists(`${prefixOf(app, 'default')}rate:${caller.id}`)) === 1, 'it was counted, in the default bucket');
  });

  test('a namespace that does not exist counts in the default namespace\'s bucket: made-up names add no budget', async () => {
    const reader = await makeToken(app, { role: 'reader', namespaces: '*' });
    const defaultKey = `${prefixOf(app, 'default')}rate:${reader.id}`;
    const madeUp = Array.from({ length: 6 }, () => unique('nowhere'));
    const seen = await inOneWindow(app, defaultKey, 6, async () => {
      const answers: number[] = [];
      for (const namespace of madeUp) answers.push((await as(app, reader, 'GET', `${base(namespace)}/leases`)).statusCode);
      return answers;
    });
    assert.deepEqual(seen, [200, 200, 200, 200, 200, 429], 'the 6th request in a second, whatever name it makes up');
    for (const namespace of madeUp) assert.equal(await app.redis.exists(`${prefixOf(app, namespace)}rate:${reader.id}`), 0, `no bucket of ${namespace}`);
  });

  test('/healthz, /readyz and /metrics are never limited, with or without a token', async () => {
    const alice = await makeToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'c-*' });
    const rateKeysBefore = (await app.redis.keys(`*rate*`)).sort();
    const calls = [];
    for (let i = 0; i < 12; i++) {
      for (const url of ['/healthz', '/readyz', '/metrics']) {
        calls.push(as(app, null, 'GET', url), as(app, alice, 'GET', url));
      }
    }
    const answers = await Promise.all(calls);
    assert.deepEqual(
      answers.map((res) => res.statusCode),
      answers.map(() => 200),
    );
    // Not counted at all: no counter was made for them, by token or by address.
    const made = (await app.redis.keys(`*rate*`)).filter((key) => !rateKeysBefore.includes(key));
    assert.deepEqual(made, []);
  });

  test('two replicas on the same Redis and KEY_PREFIX share the count', async () => {
    const replica = await startTestApp(redis.url, { AUTH: 'on', RATE_LIMIT_PER_SECOND: '5', KEY_PREFIX: app.config.KEY_PREFIX }, { sweep: false });
    try {
      const carol = await makeToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'c-*' });
      const list = `${base('cell-1')}/leases?holder=c-1`;
      const seen = await inOneWindow(app, `${prefixOf(app, 'cell-1')}rate:${carol.id}`, 7, async () => {
        const served: number[] = [];
        for (const target of [app, replica, app, replica, app]) served.push((await as(target, carol, 'GET', list)).statusCode);
        const onReplica = await as(replica, carol, 'GET', list);
        const onFirst = await as(app, carol, 'GET', list);
        return { served, onReplica, onFirst };
      });
      assert.deepEqual(seen.served, [200, 200, 200, 200, 200]);
      assertRateLimited(seen.onReplica, 'the 6th, on the second replica');
      assertRateLimited(seen.onFirst, 'the 7th, on the first replica');
    } finally {
      await replica.close();
    }
  });
});

describe('RATE_LIMIT_PER_SECOND with access control off: per client address and namespace', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp(redis.url, { RATE_LIMIT_PER_SECOND: '5' }, { sweep: false });
    // Namespaces that exist, each with its own buckets (one that does not counts in the default's).
    for (const namespace of ['cell-1', 'cell-2']) {
      const res = await as(app, null, 'POST', `${base(namespace)}/leases`, acquireBody('h-setup', [`instances/${unique('setup')}`]), '10.0.0.9');
      assertStatus(res, 201, `the first acquire in ${namespace}`);
    }
  });
  after(async () => {
    await app?.close();
  });

  test('an address\'s 6th request in a second is 429 whatever holder it names; another address, or another namespace, goes on', async () => {
    const busy = '10.0.0.1';
    const other = '10.0.0.2';
    const refusedPath = `instances/${unique('refused')}`;
    const seen = await inOneWindow(app, `${prefixOf(app, 'cell-1')}rate:ip:${busy}`, 7, async () => {
      const first: number[] = [];
      for (let i = 0; i < 5; i++) first.push((await as(app, null, 'GET', `${base('cell-1')}/leases?holder=h-${i}`, undefined, busy)).statusCode);
      const before = await dumpNamespace(app, 'cell-1');
      const sixth = await as(app, null, 'POST', `${base('cell-1')}/leases`, acquireBody('h-other', [refusedPath]), busy);
      const afterSixth = await dumpNamespace(app, 'cell-1');
      const fromOther = await as(app, null, 'POST', `${base('cell-1')}/leases`, acquireBody('h-other', [refusedPath]), other);
      const elsewhere = await as(app, null, 'GET', `${base('cell-2')}/leases`, undefined, busy);
      const seventh = await as(app, null, 'GET', `${base('cell-1')}/leases`, undefined, busy);
      return { first, before, sixth, afterSixth, fromOther, elsewhere, seventh };
    });
    assert.deepEqual(seen.first, [200, 200, 200, 200, 200]);
    assertRateLimited(seen.sixth, 'the 6th request from one address');
    assert.deepEqual(seen.afterSixth, seen.before, 'a refused acquire writes nothing');
    assertStatus(seen.fromOther, 201, 'another address, same holder and path');
    assertStatus(seen.elsewhere, 200, 'the same address in another namespace');
    assertRateLimited(seen.seventh, 'still limited in cell-1');
  });
});

/** Tokens' active leases in a namespace, by the lease records: token id -> ids (sorted) of hashes with st=active and by=token. */
async function activeByToken(app: TestApp, namespace: string): Promise<Map<string, string[]>> {
  const ids = new Map<string, string[]>();
  const prefix = `${prefixOf(app, namespace)}l:`;
  for (const key of await app.redis.keys(`${prefix}*`)) {
    const [st, by] = await app.redis.hmget(key, 'st', 'by');
    if (st === 'active' && by) ids.set(by, [...(ids.get(by) ?? []), key.slice(prefix.length)].sort());
  }
  return ids;
}

/** What the quota counts in a namespace: token id -> the lease ids (sorted) its live:<token id> set holds. */
async function liveCounters(app: TestApp, namespace: string): Promise<Map<string, string[]>> {
  const prefix = `${prefixOf(app, namespace)}live:`;
  const ids = new Map<string, string[]>();
  for (const key of await app.redis.keys(`${prefix}*`)) ids.set(key.slice(prefix.length), (await app.redis.zrange(key, 0, -1)).sort());
  return ids;
}

/** Every token's live set holds exactly its active leases (absent when none), in every namespace given. */
async function assertCountersMatchLeases(app: TestApp, namespaces: string[]): Promise<void> {
  for (const namespace of namespaces) {
    assert.deepEqual(
      new Map([...(await liveCounters(app, namespace))].sort()),
      new Map([...(await activeByToken(app, namespace))].sort()),
      `live:* counters against the active lease records of ${namespace}`,
    );
  }
}

describe('LEASES_MAX_PER_TOKEN with access control on: active leases per token and namespace', () => {
  let app: TestApp;
  let operator: Caller;
  // No reaper: nothing may change Redis but the calls themselves.
  before(async () => {
    app = await startTestApp(redis.url, { AUTH: 'on', LEASES_MAX_PER_TOKEN: '2' }, { sweep: false });
    operator = await makeToken(app, { role: 'operator', namespaces: '*' });
  });
  after(async () => {
    await app?.close();
  });

  const conductor = () => makeToken(app, { role: 'conductor', namespaces: ['cell-1', 'cell-2'], holders: 'c-*' });
  // Leases outlive the describe (unless a test says otherwise): with the reaper off, none may
  // fall due and be settled by a later request, which would change keys a test compares.
  const acquire = (caller: Caller, namespace: string, holder: string, path: string, extra: Record<string, unknown> = {}) =>
    as(app, caller, 'POST', `${base(namespace)}/leases`, acquireBody(holder, [path], { ttlMs: 300000, ...extra }));
  async function granted(caller: Caller, namespace: string, holder: string, path: string, extra: Record<string, unknown> = {}): Promise<LeaseBody> {
    const res = await acquire(caller, namespace, holder, path, extra);
    assertStatus(res, 201, `acquire of ${path}`);
    return res.json<LeaseBody>();
  }
  /** An acquire past the quota: 429, and the namespace exactly as it was. */
  async function refusedAcquire(caller: Caller, namespace: string, path: string, extra: Record<string, unknown> = {}): Promise<void> {
    const before = await dumpNamespace(app, namespace);
    assertRateLimited(await acquire(caller, namespace, 'c-1', path, extra), `acquire of ${path} past the quota`);
    assert.deepEqual(await dumpNamespace(app, namespace), before, 'a refused acquire writes nothing');
  }
  /** A pending orphan of `kind` in cell-1, left by an operator's lease (which stops counting). */
  async function orphanOf(kind: string): Promise<string> {
    const lease = await granted(operator, 'cell-1', 'o-1', `instances/${unique('o')}`, { action: { kind } });
    const abandoned = await as(app, operator, 'POST', `${base('cell-1')}/leases/${lease.id}/release`, { outcome: 'abandoned' });
    assertStatus(abandoned, 200, 'abandon');
    return abandoned.json<{ orphanId: string }>().orphanId;
  }

  test('two acquires are granted, the third is 429 rate_limited and writes nothing; a retry of a granted one (same requestId) still answers it', async () => {
    const cond = await conductor();
    const first = await granted(cond, 'cell-1', 'c-1', `instances/${unique('a')}`, { requestId: 'r-1' });
    await granted(cond, 'cell-1', 'c-2', `instances/${unique('b')}`);
    assert.equal(String(await app.redis.zcard(`${prefixOf(app, 'cell-1')}live:${cond.id}`)), '2');
    await refusedAcquire(cond, 'cell-1', `instances/${unique('c')}`);
    // The quota never turns an idempotent retry into a refusal.
    const before = await dumpNamespace(app, 'cell-1');
    const retried = await acquire(cond, 'cell-1', 'c-1', await pathOf(first.id), { requestId: 'r-1' });
    assertStatus(retried, 200, 'retry with the same requestId');
    assert.equal(retried.json<LeaseBody>().id, first.id);
    assert.deepEqual(await dumpNamespace(app, 'cell-1'), before);
    await assertCountersMatchLeases(app, ['cell-1', 'cell-2']);
  });

  async function pathOf(leaseId: string): Promise<string> {
    const res = await as(app, operator, 'GET', `${base('cell-1')}/leases/${leaseId}`);
    return res.json<{ resources: { path: string }[] }>().resources[0]!.path;
  }

  test('a release frees a slot, and so does a revoke by an operator', async () => {
    const cond = await conductor();
    const a = await granted(cond, 'cell-1', 'c-1', `instances/${unique('a')}`);
    const b = await granted(cond, 'cell-1', 'c-1', `instances/${unique('b')}`);
    await refusedAcquire(cond, 'cell-1', `instances/${unique('c')}`);

    assertStatus(await as(app, cond, 'POST', `${base('cell-1')}/leases/${a.id}/release`, {}), 200, 'release');
    assert.equal(String(await app.redis.zcard(`${prefixOf(app, 'cell-1')}live:${cond.id}`)), '1');
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('c')}`);
    await refusedAcquire(cond, 'cell-1', `instances/${unique('d')}`);

    const revoked = await as(app, operator, 'DELETE', `${base('cell-1')}/leases/${b.id}`);
    assert.ok(revoked.statusCode >= 200 && revoked.statusCode < 300, revoked.body);
    assert.equal(String(await app.redis.zcard(`${prefixOf(app, 'cell-1')}live:${cond.id}`)), '1');
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('d')}`);
    await refusedAcquire(cond, 'cell-1', `instances/${unique('e')}`);
    await assertCountersMatchLeases(app, ['cell-1', 'cell-2']);
  });

  // Expiry is exact for the quota too: the acquire settles the token's expired lease itself.
  test('a lease past its expiry by Redis\' clock no longer counts, even before the reaper has swept it', async () => {
    const cond = await conductor();
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('a')}`);
    const short = await granted(cond, 'cell-1', 'c-1', `instances/${unique('b')}`, { ttlMs: 1000 });
    await refusedAcquire(cond, 'cell-1', `instances/${unique('c')}`);
    const exp = Number(await app.redis.hget(`${prefixOf(app, 'cell-1')}l:${short.id}`, 'exp'));
    await waitFor(
      async () => {
        const [seconds, micros] = await app.redis.time();
        return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) > exp;
      },
      { what: 'Redis\' clock past the short lease\'s expiry', timeoutMs: 10000 },
    );
    // The lease is over (a read says so); the token holds one active lease, not two.
    const next = await acquire(cond, 'cell-1', 'c-1', `instances/${unique('c')}`);
    assertStatus(next, 201, 'an acquire once one of the two leases has expired');
    await assertCountersMatchLeases(app, ['cell-1']);
  });

  test('a claim counts too: refused at the quota (the orphan stays pending), granted below it; an operator is not held by a conductor\'s quota', async () => {
    const cond = await conductor();
    const kind = unique('resize');
    const firstOrphan = await orphanOf(kind);
    const secondOrphan = await orphanOf(kind);
    const a = await granted(cond, 'cell-1', 'c-1', `instances/${unique('a')}`);
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('b')}`);

    const before = await dumpNamespace(app, 'cell-1');
    assertRateLimited(await as(app, cond, 'POST', `${base('cell-1')}/orphans/claim`, { holder: 'c-1', kinds: [kind] }), 'claim past the quota');
    assert.deepEqual(await dumpNamespace(app, 'cell-1'), before, 'a refused claim writes nothing');
    assert.equal((await as(app, operator, 'GET', `${base('cell-1')}/orphans/${firstOrphan}`)).json<{ state: string }>().state, 'pending');

    const byOperator = await as(app, operator, 'POST', `${base('cell-1')}/orphans/claim`, { holder: 'c-1', kinds: [kind], ttlMs: 300000 });
    assertStatus(byOperator, 200, 'an operator\'s claim while the conductor is at its quota');
    assert.equal(byOperator.json<{ orphan: { id: string } }>().orphan.id, firstOrphan);

    assertStatus(await as(app, cond, 'POST', `${base('cell-1')}/leases/${a.id}/release`, {}), 200, 'release');
    const claimed = await as(app, cond, 'POST', `${base('cell-1')}/orphans/claim`, { holder: 'c-1', kinds: [kind], ttlMs: 300000 });
    assertStatus(claimed, 200, 'a claim below the quota');
    const claimedLease = claimed.json<{ orphan: { id: string }; lease: LeaseBody }>();
    assert.equal(claimedLease.orphan.id, secondOrphan);
    assert.equal(await app.redis.hget(`${prefixOf(app, 'cell-1')}l:${claimedLease.lease.id}`, 'by'), cond.id);
    assert.equal(String(await app.redis.zcard(`${prefixOf(app, 'cell-1')}live:${cond.id}`)), '2', 'one acquired and one claimed');
    await refusedAcquire(cond, 'cell-1', `instances/${unique('c')}`);
    // The claimed lease's end frees its slot like any other.
    assertStatus(await as(app, cond, 'POST', `${base('cell-1')}/leases/${claimedLease.lease.id}/release`, { outcome: 'completed' }), 200, 'release of the claim');
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('c')}`);
    await assertCountersMatchLeases(app, ['cell-1', 'cell-2']);
  });

  test('the quota is per namespace: another namespace starts at 0', async () => {
    const cond = await conductor();
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('a')}`);
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('b')}`);
    await refusedAcquire(cond, 'cell-1', `instances/${unique('c')}`);
    await granted(cond, 'cell-2', 'c-1', `instances/${unique('a')}`);
    await granted(cond, 'cell-2', 'c-1', `instances/${unique('b')}`);
    await refusedAcquire(cond, 'cell-2', `instances/${unique('c')}`);
    assert.equal(String(await app.redis.zcard(`${prefixOf(app, 'cell-1')}live:${cond.id}`)), '2');
    assert.equal(String(await app.redis.zcard(`${prefixOf(app, 'cell-2')}live:${cond.id}`)), '2');
    await assertCountersMatchLeases(app, ['cell-1', 'cell-2']);
  });

  test('a waiting acquire at the quota is refused at once; one that comes to be granted after its token reached the quota is 429 and leaves no ticket', async () => {
    const cond = await conductor();
    const prefix = prefixOf(app, 'cell-1');
    const ticketKeys = () => app.redis.keys(`${prefix}w:*`);
    const blocked = `instances/${unique('blocked')}`;
    const blocker = await granted(operator, 'cell-1', 'o-1', blocked);
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('a')}`);

    // Below the quota, the acquire waits: its ticket is queued in Redis.
    const started = Date.now();
    const waiting = acquire(cond, 'cell-1', 'c-1', blocked, { waitMs: 60000 });
    const [ticketKey] = await waitFor(async () => {
      const keys = await ticketKeys();
      return keys.length === 1 ? keys : undefined;
    }, { what: 'the waiting acquire\'s ticket' });
    const ticketId = ticketKey!.slice(`${prefix}w:`.length);
    assert.notEqual(await app.redis.zscore(`${prefix}wexp`, ticketId), null, 'the ticket is indexed');

    // Meanwhile the token takes its second lease; then the blocker goes.
    await granted(cond, 'cell-1', 'c-1', `instances/${unique('b')}`);
    assertStatus(await as(app, operator, 'POST', `${base('cell-1')}/leases/${blocker.id}/release`, {}), 200, 'release of the blocker');
    const answer = await waiting;
    assertRateLimited(answer, 'the waiter woken at the quota');
    assert.ok(Date.now() - started < 30000, 'refused when woken, not at the end of its wait');

    // No ticket, nor any index entry of it, is left; the path is free for others at once.
    assert.deepEqual(await ticketKeys(), []);
    for (const key of await app.redis.keys(`${prefix}*`)) {
      if ((await app.redis.type(key)) === 'zset') assert.equal(await app.redis.zscore(key, ticketId), null, `${key} still names the ticket`);
    }
    assert.equal(await app.redis.exists(`${prefix}l:${ticketId}`), 0, 'no lease was written for it');
    assert.equal(String(await app.redis.zcard(`${prefix}live:${cond.id}`)), '2');
    const byOperator = await granted(operator, 'cell-1', 'o-1', blocked);

    // Already at the quota: a waiting acquire is refused at once, without queuing.
    const before = await dumpNamespace(app, 'cell-1');
    const refusedAt = Date.now();
    assertRateLimited(await acquire(cond, 'cell-1', 'c-1', blocked, { waitMs: 60000 }), 'a waiting acquire at the quota');
    assert.ok(Date.now() - refusedAt < 30000);
    assert.deepEqual(await dumpNamespace(app, 'cell-1'), before);
    assertStatus(await as(app, operator, 'POST', `${base('cell-1')}/leases/${byOperator.id}/release`, {}), 200, 'release');
    await assertCountersMatchLeases(app, ['cell-1', 'cell-2']);
  });
});

describe('LEASES_MAX_PER_TOKEN with the reaper on', () => {
  test('an expiry swept by the reaper frees a slot', async () => {
    const app = await startTestApp(redis.url, { AUTH: 'on', LEASES_MAX_PER_TOKEN: '1' });
    try {
      const cond = await makeToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'c-*' });
      const post = (path: string, extra: Record<string, unknown> = {}) => as(app, cond, 'POST', `${base('cell-1')}/leases`, acquireBody('c-1', [path], extra));
      const short = await post(`instances/${unique('a')}`, { ttlMs: 1000 });
      assertStatus(short, 201, 'the first lease');
      assertRateLimited(await post(`instances/${unique('b')}`), 'the second, at the quota');
      const counter = `${prefixOf(app, 'cell-1')}live:${cond.id}`;
      await waitFor(async () => (await app.redis.exists(counter)) === 0, { what: 'the reaper to expire the lease and drop its count', timeoutMs: 15000 });
      assert.equal(await app.redis.hget(`${prefixOf(app, 'cell-1')}l:${short.json<LeaseBody>().id}`, 'st'), 'expired');
      assertStatus(await post(`instances/${unique('b')}`), 201, 'an acquire after the expiry');
    } finally {
      await app.close();
    }
  });
});

describe('waiters and event streams per token (WAITERS_MAX_PER_HOLDER=1, EVENT_STREAMS_MAX_PER_CLIENT=1)', () => {
  let app: TestApp;
  let operator: Caller;
  before(async () => {
    app = await startTestApp(redis.url, { AUTH: 'on', WAITERS_MAX_PER_HOLDER: '1', EVENT_STREAMS_MAX_PER_CLIENT: '1' });
    operator = await makeToken(app, { role: 'operator', namespaces: '*' });
  });
  after(async () => {
    await app?.close();
  });

  test('a token\'s second waiting acquire is 429 even as another of its holders; another token may still wait', async () => {
    const first = await makeToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'c-*' });
    const second = await makeToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'c-*' });
    const prefix = prefixOf(app, 'cell-1');
    const x = `instances/${unique('x')}`;
    const y = `instances/${unique('y')}`;
    const blockers = [await as(app, operator, 'POST', `${base('cell-1')}/leases`, acquireBody('o-1', [x])), await as(app, operator, 'POST', `${base('cell-1')}/leases`, acquireBody('o-1', [y]))];
    for (const res of blockers) assertStatus(res, 201, 'blocker');
    const tickets = () => app.redis.keys(`${prefix}w:*`);

    const waitingX = as(app, first, 'POST', `${base('cell-1')}/leases`, acquireBody('c-1', [x], { waitMs: 60000 }));
    await waitFor(async () => (await tickets()).length === 1, { what: 'the first waiter\'s ticket' });

    const startedAt = Date.now();
    const refused = await as(app, first, 'POST', `${base('cell-1')}/leases`, acquireBody('c-2', [y], { waitMs: 60000 }));
    assertRateLimited(refused, 'the same token\'s second waiter, as holder c-2');
    assert.ok(Date.now() - startedAt < 30000, 'refused at once');
    assert.equal((await tickets()).length, 1, 'the refused waiter queued nothing');

    const waitingY = as(app, second, 'POST', `${base('cell-1')}/leases`, acquireBody('c-2', [y], { waitMs: 60000 }));
    await waitFor(async () => (await tickets()).length === 2, { what: 'the other token\'s waiter to queue' });

    for (const res of blockers) assertStatus(await as(app, operator, 'POST', `${base('cell-1')}/leases/${res.json<LeaseBody>().id}/release`, {}), 200, 'release');
    const [gotX, gotY] = await Promise.all([waitingX, waitingY]);
    assertStatus(gotX, 201, 'the first token\'s waiter');
    assertStatus(gotY, 201, 'the other token\'s waiter');
    assert.deepEqual(await tickets(), []);

    // Its slot is free again: the first token may wait once more (and meets the conflict at the end).
    const again = await as(app, first, 'POST', `${base('cell-1')}/leases`, acquireBody('c-3', [y], { waitMs: 300 }));
    assertStatus(again, 409, 'a new wait once the first one ended');
  });

  test('a token\'s second open event stream is 429, while another token from the same address opens one', async () => {
    const first = await makeToken(app, { role: 'reader', namespaces: ['cell-1'] });
    const second = await makeToken(app, { role: 'reader', namespaces: ['cell-1'] });
    const controllers: AbortController[] = [];
    const open = (caller: Caller) => {
      const controller = new AbortController();
      controllers.push(controller);
      return fetch(`${app.baseUrl}${base('cell-1')}/events`, { headers: { authorization: `Bearer ${caller.token}` }, signal: controller.signal });
    };
    try {
      const stream = await open(first);
      assert.equal(stream.status, 200);
      const refused = await open(first);
      assert.equal(refused.status, 429);
      assert.match(String(refused.headers.get('content-type')), /^application\/problem\+json/);
      assert.equal((await refused.json() as { code: string }).code, 'rate_limited');
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);

      const other = await open(second);
      assert.equal(other.status, 200, 'another token from the same address');

      // Closing the first stream gives its slot back.
      controllers[0]!.abort();
      const reopened = await waitFor(async () => {
        const res = await open(first);
        if (res.status === 200) return res;
        await res.body?.cancel();
        return undefined;
      }, { what: 'the first token\'s slot to be given back', intervalMs: 100 });
      assert.equal(reopened.status, 200);
    } finally {
      for (const controller of controllers) controller.abort();
    }
  });
});
