// Access control (AUTH=on): every /v1 route needs a bearer token, a service token or a JWT,
// whose grant (role, namespaces, holders) decides what it may do. What a user relies on:
// a missing or bad token is 401 and changes nothing, a revoked token stops working at once
// on every replica, readers see no payloads, events name who acted, and a service that
// other machines can reach does not start without access control.
// Real redis-server, the real app, the real process for start-up.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { ServiceTokens, tokenKeys } from '../src/auth/service-tokens.js';
import type { GrantClaimsValue } from '../src/auth/grants.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { namespaceKeyPrefix } from '../src/namespaces/names.js';
import { findFreePort } from '../src/redis/embedded.js';
import { storeKeys } from '../src/store/keys.js';
import { acquireBody, startTestApp, useTestApp, type TestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

// No reaper here: nothing changes Redis behind a test's back (the snapshots below compare
// every key). Tests that need the reaper start an app of their own.
const { t, redis } = useTestApp({ env: { AUTH: 'on' }, sweep: false });

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const REALM = 'Bearer realm="lease-service"';

let n = 0;
const unique = (name: string) => `${name}-${++n}-${Date.now().toString(36)}`;

function tokensOf(app: TestApp): ServiceTokens {
  return new ServiceTokens(app.redis, tokenKeys(app.config.KEY_PREFIX));
}

async function newToken(app: TestApp, grant: GrantClaimsValue, options: { ttlMs?: number } = {}) {
  return tokensOf(app).create(grant, options);
}

interface CallOptions {
  /** The bearer token; `authorization` sets the whole header instead. */
  token?: string;
  authorization?: string;
  body?: unknown;
}

function call(app: TestApp, method: 'GET' | 'POST' | 'DELETE', url: string, { token, authorization, body }: CallOptions = {}): Promise<LightMyRequestResponse> {
  const header = authorization ?? (token === undefined ? undefined : `Bearer ${token}`);
  const options: InjectOptions = {
    method,
    url,
    ...(header === undefined ? {} : { headers: { authorization: header } }),
    ...(body === undefined ? {} : { payload: body as object }),
  };
  return app.app.inject(options);
}

interface Problem {
  code: string;
  status: number;
}

function assertUnauthorized(res: LightMyRequestResponse, challenge: string, what: string): void {
  assert.equal(res.statusCode, 401, `${what}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/, what);
  assert.equal(res.json<Problem>().code, 'unauthorized', what);
  assert.equal(res.json<Problem>().status, 401, what);
  assert.equal(res.headers['www-authenticate'], challenge, what);
}

function assertForbidden(res: LightMyRequestResponse, what: string): void {
  assert.equal(res.statusCode, 403, `${what}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/, what);
  assert.equal(res.json<Problem>().code, 'forbidden', what);
}

/**
 * Every key of the app's KEY_PREFIX, the namespace "default"'s ({prefix}:...) and every other
 * namespace's ({prefix/ns}:...), with its type and whole content (streams: length and entries).
 */
async function snapshotAll(app: TestApp): Promise<Record<string, unknown>> {
  const r = app.redis;
  const keys = (await r.keys(`{${app.config.KEY_PREFIX}*`)).sort();
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await r.type(key);
    switch (type) {
      case 'string':
        out[key] = { type, value: await r.get(key) };
        break;
      case 'hash':
        out[key] = { type, value: await r.hgetall(key) };
        break;
      case 'zset':
        out[key] = { type, value: await r.zrange(key, 0, -1, 'WITHSCORES') };
        break;
      case 'set':
        out[key] = { type, value: (await r.smembers(key)).sort() };
        break;
      case 'list':
        out[key] = { type, value: await r.lrange(key, 0, -1) };
        break;
      case 'stream':
        out[key] = { type, length: await r.xlen(key), value: await r.xrange(key, '-', '+') };
        break;
      default:
        out[key] = { type };
    }
  }
  return out;
}

/** The events of a namespace's stream, each as its fields. */
async function eventsOf(app: TestApp, namespace = 'default'): Promise<Record<string, string>[]> {
  const stream = storeKeys(namespaceKeyPrefix(app.config.KEY_PREFIX, namespace)).events;
  const entries = await app.redis.xrange(stream, '-', '+');
  return entries.map(([, flat]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
    return fields;
  });
}

async function eventOf(app: TestApp, type: string, leaseId: string, namespace = 'default'): Promise<Record<string, string> | undefined> {
  return (await eventsOf(app, namespace)).find((event) => event.type === type && event.leaseId === leaseId);
}

interface LeaseBody {
  id: string;
  holder: string;
  expiresAt: string;
  acquiredBy?: string;
  action: { kind: string; payload: unknown; progress: unknown } | null;
}

interface OrphanBody {
  id: string;
  lastLeaseId: string;
  action: { kind: string; payload: unknown };
  progress: unknown;
}

async function acquireAs(app: TestApp, token: string, holder: string, path: string, extra: Record<string, unknown> = {}, prefix = '/v1'): Promise<LeaseBody> {
  const res = await call(app, 'POST', `${prefix}/leases`, { token, body: acquireBody(holder, [path], extra) });
  assert.equal(res.statusCode, 201, res.body);
  return res.json<LeaseBody>();
}

describe('without a valid bearer token, /v1 answers 401 and changes nothing', () => {
  test('no Authorization header: 401 unauthorized, problem+json, WWW-Authenticate: Bearer realm="lease-service"', async () => {
    const routes: ['GET' | 'POST' | 'DELETE', string, unknown?][] = [
      ['POST', '/v1/leases', acquireBody('conductor-1', ['instances/i-1'])],
      ['GET', '/v1/leases'],
      ['GET', '/v1/leases/AAAAAAAAAAAAAAAAAAAAAA'],
      ['DELETE', '/v1/leases/AAAAAAAAAAAAAAAAAAAAAA'],
      ['POST', '/v1/holders/conductor-1/renew', {}],
      ['GET', '/v1/orphans'],
      ['POST', '/v1/fencing/check', { path: 'instances/i-1', fencingToken: 1 }],
      ['GET', '/v1/events'],
      ['POST', '/v1/namespaces/cell-1/leases', acquireBody('conductor-1', ['instances/i-1'])],
      ['GET', '/v1/namespaces/cell-1/leases'],
    ];
    for (const [method, url, body] of routes) {
      assertUnauthorized(await call(t, method, url, { body }), REALM, `${method} ${url}`);
    }
  });

  test('a malformed Authorization header is 401 with error="invalid_request"', async () => {
    const { token } = await newToken(t, { role: 'operator', namespaces: '*' });
    for (const authorization of ['Basic x', 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer  ', token, `Token ${token}`, `Bearer ${token} x`, `Bearer ${'a'.repeat(9000)}`]) {
      assertUnauthorized(await call(t, 'GET', '/v1/leases', { authorization }), `${REALM}, error="invalid_request"`, JSON.stringify(authorization.slice(0, 40)));
    }
    // The same token, well formed, works: the 401s above were for the header's shape.
    assert.equal((await call(t, 'GET', '/v1/leases', { token })).statusCode, 200);
  });

  test('an unknown token, the right id with a wrong secret, an expired token: 401 with error="invalid_token"', async () => {
    const invalid = `${REALM}, error="invalid_token"`;
    const randomToken = () => `lst_${randomBytes(12).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    assertUnauthorized(await call(t, 'GET', '/v1/leases', { token: randomToken() }), invalid, 'an unknown lst_ token');

    const { token, record } = await newToken(t, { role: 'operator', namespaces: '*' });
    const wrongSecret = `lst_${record.id}.${randomBytes(32).toString('base64url')}`;
    assertUnauthorized(await call(t, 'GET', '/v1/leases', { token: wrongSecret }), invalid, 'the right id, a wrong secret');
    // Asked after the right secret was accepted (and remembered): still refused.
    assert.equal((await call(t, 'GET', '/v1/leases', { token })).statusCode, 200);
    assertUnauthorized(await call(t, 'GET', '/v1/leases', { token: wrongSecret }), invalid, 'a wrong secret after the right one was accepted');

    // Without a JWT key configured, anything that is not a service token is refused.
    assertUnauthorized(await call(t, 'GET', '/v1/leases', { token: 'eyJhbGciOiJub25lIn0.eyJyb2xlIjoib3BlcmF0b3IifQ.' }), invalid, 'a JWT with no JWT key configured');

    // A token whose ttlMs passed before it was ever used.
    const stillborn = await newToken(t, { role: 'operator', namespaces: '*' }, { ttlMs: 1 });
    await waitFor(() => Date.now() > stillborn.record.expiresAt!, { what: 'the token\'s ttlMs to pass' });
    assertUnauthorized(await call(t, 'GET', '/v1/leases', { token: stillborn.token }), invalid, 'a token past its ttlMs');

    // A token that worked stops at its expiry.
    const shortLived = await newToken(t, { role: 'operator', namespaces: '*' }, { ttlMs: 3000 });
    assert.equal((await call(t, 'GET', '/v1/leases', { token: shortLived.token })).statusCode, 200, 'it works before its expiry');
    await waitFor(() => Date.now() > shortLived.record.expiresAt!, { what: 'the token\'s ttlMs to pass' });
    assertUnauthorized(await call(t, 'GET', '/v1/leases', { token: shortLived.token }), invalid, 'a token past its ttlMs');
  });

  test('/healthz and /readyz need no token; /metrics, /openapi.json and /docs need none by default', async () => {
    for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs']) {
      const res = await call(t, 'GET', url);
      assert.ok(res.statusCode === 200 || (url === '/docs' && res.statusCode === 302), `${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
    }
    // A bad token on an open route is no reason to refuse it.
    assert.equal((await call(t, 'GET', '/readyz', { authorization: 'Bearer nonsense' })).statusCode, 200);
  });

  test('a 401 on an acquire or any other change writes nothing to Redis, in the default namespace or another', async () => {
    // Some state first, so the snapshot holds leases, indexes, streams, a namespace and tokens.
    const { token } = await newToken(t, { role: 'operator', namespaces: '*' });
    const expiredToken = await newToken(t, { role: 'operator', namespaces: '*' }, { ttlMs: 1 });
    await acquireAs(t, token, 'conductor-1', `instances/${unique('i')}`, { action: { kind: 'resize', payload: { flavor: 'm1' } } });
    const held = await acquireAs(t, token, 'conductor-1', `instances/${unique('i')}`, {}, '/v1/namespaces/cell-1');
    await waitFor(() => Date.now() > expiredToken.record.expiresAt!, { what: 'the token\'s ttlMs to pass' });
    const before = await snapshotAll(t);
    assert.ok(Object.keys(before).some((key) => key.startsWith(`{${t.config.KEY_PREFIX}/cell-1}:`)), 'the snapshot covers the namespace cell-1');
    assert.ok(Object.values(before).some((value) => (value as { type: string }).type === 'stream'), 'the snapshot covers streams');

    const refusals: CallOptions[] = [{}, { authorization: 'Basic x' }, { token: `lst_${randomBytes(12).toString('base64url')}.${randomBytes(32).toString('base64url')}` }, { token: expiredToken.token }];
    const fresh = `instances/${unique('i')}`;
    for (const auth of refusals) {
      for (const prefix of ['/v1', '/v1/namespaces/cell-1', '/v1/namespaces/cell-9']) {
        const res = await call(t, 'POST', `${prefix}/leases`, { ...auth, body: acquireBody('conductor-1', [fresh], { action: { kind: 'resize' }, requestId: 'r-1' }) });
        assert.equal(res.statusCode, 401, `${prefix} ${JSON.stringify(auth)}: ${res.body}`);
      }
      assert.equal((await call(t, 'POST', `/v1/namespaces/cell-1/leases/${held.id}/renew`, { ...auth, body: { progress: { step: 'x' } } })).statusCode, 401);
      assert.equal((await call(t, 'POST', `/v1/namespaces/cell-1/leases/${held.id}/release`, { ...auth, body: {} })).statusCode, 401);
      assert.equal((await call(t, 'DELETE', `/v1/namespaces/cell-1/leases/${held.id}`, auth)).statusCode, 401);
    }
    assert.deepEqual(await snapshotAll(t), before);
  });

  test('a percent-encoded /v1 path is no way around the token', async () => {
    // The router decodes %76 to "v" and serves /v1/leases; the check must see the same route.
    const before = await snapshotAll(t);
    for (const url of ['/%761/leases', '/v%31/leases', '/%76%31/namespaces/cell-1/leases']) {
      assertUnauthorized(await call(t, 'GET', url), REALM, `GET ${url}`);
      assertUnauthorized(await call(t, 'POST', url, { body: acquireBody('conductor-1', [`instances/${unique('i')}`]) }), REALM, `POST ${url}`);
    }
    assert.deepEqual(await snapshotAll(t), before, 'nothing was acquired without a token');
  });
});

describe('revocation', () => {
  /** Uses a token on each app, revokes it, and answers what each says to it next. */
  async function revokeAfterUse(apps: TestApp[]): Promise<number[]> {
    const { token, record } = await newToken(apps[0]!, { role: 'operator', namespaces: '*' });
    for (const app of apps) assert.equal((await call(app, 'GET', '/v1/leases', { token })).statusCode, 200);
    assert.equal(await tokensOf(apps[0]!).revoke(record.id), true);
    const next: number[] = [];
    for (const app of apps) {
      const res = await call(app, 'GET', '/v1/leases', { token });
      if (res.statusCode === 401) assertUnauthorized(res, `${REALM}, error="invalid_token"`, 'the next request');
      next.push(res.statusCode);
    }
    return next;
  }

  test('an event stream opened with a token ends within a heartbeat (15 s) once the token is revoked', async () => {
    const { token, record } = await newToken(t, { role: 'reader', namespaces: '*' });
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    try {
      assert.equal(res.status, 200);
      // Read until the service ends the stream (or the test gives up and aborts it).
      const ended = res.text().then(
        () => true,
        () => false,
      );
      assert.equal(await tokensOf(t).revoke(record.id), true);
      const timeout = new Promise<false>((resolve) => setTimeout(() => resolve(false), 20000).unref());
      assert.equal(await Promise.race([ended, timeout]), true, 'the stream of a revoked token was still open 20 s later');
    } finally {
      controller.abort();
    }
  });

  test('a busy event stream (an event every 300 ms) ends within a heartbeat once its token is revoked', async () => {
    const { token: operator } = await newToken(t, { role: 'operator', namespaces: '*' });
    const { token, record } = await newToken(t, { role: 'reader', namespaces: '*' });
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    try {
      assert.equal(res.status, 200);
      let ended = false;
      const reading = res.text().then(
        () => (ended = true),
        () => undefined,
      );
      assert.equal(await tokensOf(t).revoke(record.id), true);
      // Never idle: an event every 300 ms, for at most 20 s.
      const until = Date.now() + 20000;
      while (!ended && Date.now() < until) {
        const lease = await call(t, 'POST', '/v1/leases', { token: operator, body: acquireBody('busy', [`instances/${unique('busy')}`]) });
        assert.equal(lease.statusCode, 201, lease.body);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.equal(ended, true, 'the busy stream of a revoked token was still open 20 s later');
      await reading;
    } finally {
      controller.abort();
    }
  });

  test('a waiting acquire whose token is revoked while it waits is 401 when it wakes, grants nothing and leaves no ticket', async () => {
    const { token: operator } = await newToken(t, { role: 'operator', namespaces: '*' });
    const { token, record } = await newToken(t, { role: 'conductor', namespaces: '*', holders: 'waiter-*' });
    const path = `instances/${unique('revoked-waiter')}`;
    const blocker = await call(t, 'POST', '/v1/leases', { token: operator, body: acquireBody('blocker', [path], { ttlMs: 60000 }) });
    assert.equal(blocker.statusCode, 201, blocker.body);
    const holder = unique('waiter');
    const waiting = call(t, 'POST', '/v1/leases', { token, body: acquireBody(holder, [path], { waitMs: 10000 }) });
    await waitFor(async () => (await t.redis.zcard(`${storeKeys(namespaceKeyPrefix(t.config.KEY_PREFIX, 'default')).prefix}wq`)) > 0, {
      what: 'the waiter to queue',
    });
    assert.equal(await tokensOf(t).revoke(record.id), true);
    assert.equal((await call(t, 'POST', `/v1/leases/${blocker.json<{ id: string }>().id}/release`, { token: operator, body: {} })).statusCode, 200);
    assertUnauthorized(await waiting, `${REALM}, error="invalid_token"`, 'the waiter woken after its token was revoked');
    const leases = await call(t, 'GET', `/v1/leases?holder=${encodeURIComponent(holder)}`, { token: operator });
    assert.deepEqual(leases.json<{ items: unknown[] }>().items, []);
    // The path is free again, for anyone still allowed.
    assert.equal((await call(t, 'POST', '/v1/leases', { token: operator, body: acquireBody('after', [path]) })).statusCode, 201);
  });

  // Each case is repeated: once revoke() has returned, the token must be refused every time,
  // not only when the revocation happens to reach the replica before the next request does.
  test('with the default settings, a revoked service token that worked gets 401 on the very next request', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 20; i++) answers.push(...(await revokeAfterUse([t])));
    assert.deepEqual(answers, answers.map(() => 401));
  });

  test('with the default settings, a revoked token gets 401 on the very next request also on another replica (same Redis and KEY_PREFIX) that had used it', async () => {
    const replica = await startTestApp(redis.url, { AUTH: 'on', KEY_PREFIX: t.config.KEY_PREFIX }, { sweep: false });
    try {
      const answers: number[][] = [];
      for (let i = 0; i < 10; i++) answers.push(await revokeAfterUse([t, replica]));
      assert.deepEqual(answers, answers.map(() => [401, 401]));
      const { record } = await newToken(t, { role: 'reader', namespaces: '*' });
      assert.equal(await tokensOf(t).revoke(record.id), true);
      assert.equal(await tokensOf(t).revoke(record.id), false, 'a second revoke finds no token');
    } finally {
      await replica.close();
    }
  });

  describe('with AUTH_CACHE_MS=10000 (each replica remembers a checked token 10 s)', () => {
    const REMEMBER_MS = 10000;
    const replicas: TestApp[] = [];
    before(async () => {
      const prefix = `t${randomBytes(4).toString('hex')}`;
      for (let i = 0; i < 2; i++) replicas.push(await startTestApp(redis.url, { AUTH: 'on', AUTH_CACHE_MS: String(REMEMBER_MS), KEY_PREFIX: prefix }, { sweep: false }));
    });
    after(async () => {
      for (const replica of replicas) await replica.close();
    });

    test('a token removed from Redis behind the service\'s back is still remembered (the control for the next test)', async () => {
      const { token, record } = await newToken(replicas[0]!, { role: 'reader', namespaces: '*' });
      for (const app of replicas) assert.equal((await call(app, 'GET', '/v1/leases', { token })).statusCode, 200);
      await replicas[0]!.redis.hdel(tokenKeys(replicas[0]!.config.KEY_PREFIX).tokens, record.id);
      for (const app of replicas) assert.equal((await call(app, 'GET', '/v1/leases', { token })).statusCode, 200, 'remembered for AUTH_CACHE_MS');
    });

    test('revoke() reaches every replica by pub/sub: the token is refused on each long before AUTH_CACHE_MS', async () => {
      const { token, record } = await newToken(replicas[0]!, { role: 'reader', namespaces: '*' });
      for (const app of replicas) assert.equal((await call(app, 'GET', '/v1/leases', { token })).statusCode, 200);
      const revokedAt = Date.now();
      assert.equal(await tokensOf(replicas[0]!).revoke(record.id), true);
      for (const app of replicas) {
        await waitFor(async () => (await call(app, 'GET', '/v1/leases', { token })).statusCode === 401, { timeoutMs: REMEMBER_MS / 2, intervalMs: 5, what: 'the revoked token to be refused' });
      }
      assert.ok(Date.now() - revokedAt < REMEMBER_MS / 2, 'refused well within AUTH_CACHE_MS');
    });

    test('a remembered token stops working at its own expiry, not AUTH_CACHE_MS later', async () => {
      const { token, record } = await newToken(replicas[0]!, { role: 'reader', namespaces: '*' }, { ttlMs: 3000 });
      for (const app of replicas) assert.equal((await call(app, 'GET', '/v1/leases', { token })).statusCode, 200, 'it works before its expiry');
      await waitFor(() => Date.now() > record.expiresAt!, { what: 'the token\'s ttlMs to pass' });
      for (const app of replicas) assertUnauthorized(await call(app, 'GET', '/v1/leases', { token }), `${REALM}, error="invalid_token"`, 'past its ttlMs');
    });
  });
});

describe('JWTs', () => {
  const ISSUER = 'https://issuer.example';
  let jwtApp: TestApp;
  let keyDir: string;
  let privateKey: CryptoKey;
  let otherKey: CryptoKey;
  let publicPem: string;

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    otherKey = (await generateKeyPair('ES256', { extractable: true })).privateKey;
    publicPem = await exportSPKI(pair.publicKey);
    keyDir = mkdtempSync(join(tmpdir(), 'lease-test-jwt-'));
    const keyFile = join(keyDir, 'public.pem');
    writeFileSync(keyFile, publicPem);
    jwtApp = await startTestApp(redis.url, { AUTH: 'on', AUTH_JWT_PUBLIC_KEY_FILE: keyFile, AUTH_JWT_ISSUER: ISSUER }, { sweep: false });
  });
  after(async () => {
    await jwtApp?.close();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  const now = () => Math.floor(Date.now() / 1000);
  const conductorClaims = (sub: string): JWTPayload => ({ role: 'conductor', namespaces: ['cell-1'], holders: 'conductor-*', sub, iss: ISSUER, exp: now() + 300 });

  function sign(claims: JWTPayload, key: CryptoKey | Uint8Array = privateKey, alg = 'ES256'): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg }).sign(key);
  }

  test('a JWT signed with the configured key acquires in its namespace, and the lease and its grant event name jwt:<sub>', async () => {
    const sub = unique('conductor-sub');
    const token = await sign(conductorClaims(sub));
    const lease = await acquireAs(jwtApp, token, 'conductor-7', `instances/${unique('i')}`, {}, '/v1/namespaces/cell-1');
    assert.equal(lease.acquiredBy, `jwt:${sub}`);
    const read = await call(jwtApp, 'GET', `/v1/namespaces/cell-1/leases/${lease.id}`, { token });
    assert.equal(read.statusCode, 200, read.body);
    assert.equal(read.json<LeaseBody>().acquiredBy, `jwt:${sub}`);
    const granted = await eventOf(jwtApp, 'granted', lease.id, 'cell-1');
    assert.ok(granted, 'the grant is on cell-1\'s event stream');
    assert.equal(granted.actor, `jwt:${sub}`);
    // The holder glob still holds: conductor-* may not act as someone else.
    assertForbidden(await call(jwtApp, 'POST', '/v1/namespaces/cell-1/leases', { token, body: acquireBody('operator-1', [`instances/${unique('i')}`]) }), 'a holder outside the glob');
  });

  test('JWTs signed by another key, expired, without exp, of another issuer, or HS256 are 401 invalid_token and change nothing', async () => {
    const base = conductorClaims(unique('conductor-sub'));
    const { exp: _exp, ...withoutExp } = base;
    const { iss: _iss, ...withoutIssuer } = base;
    const { sub: _sub, ...withoutSubject } = base;
    const refused: [string, Promise<string>][] = [
      ['signed by another key', sign(base, otherKey)],
      ['expired a minute ago', sign({ ...base, exp: now() - 60 })],
      ['without exp', sign(withoutExp)],
      ['of another issuer', sign({ ...base, iss: 'https://elsewhere.example' })],
      ['without an issuer', sign(withoutIssuer)],
      ['HS256 with a secret', sign(base, new TextEncoder().encode(randomBytes(32).toString('hex')), 'HS256')],
      // The classic confusion: the public key taken for an HMAC secret.
      ['HS256 with the public key as its secret', sign(base, new TextEncoder().encode(publicPem), 'HS256')],
      ['not carrying a valid role', sign({ ...base, role: 'admin' })],
      // Events, leases, quotas and slots name the caller by it: without one all would share one.
      ['without a sub', sign(withoutSubject)],
      // Stored as UTF-8, a lone surrogate becomes U+FFFD: two such subs would be one actor.
      ['with a sub holding a lone surrogate', sign({ ...base, sub: 'conductor-\ud800' })],
    ];
    const before = await snapshotAll(jwtApp);
    for (const [what, signing] of refused) {
      const token = await signing;
      const res = await call(jwtApp, 'POST', '/v1/namespaces/cell-1/leases', { token, body: acquireBody('conductor-7', [`instances/${unique('i')}`]) });
      assertUnauthorized(res, `${REALM}, error="invalid_token"`, what);
      assertUnauthorized(await call(jwtApp, 'GET', '/v1/namespaces/cell-1/leases?holder=conductor-7', { token }), `${REALM}, error="invalid_token"`, `${what} (a read)`);
    }
    assert.deepEqual(await snapshotAll(jwtApp), before);
  });

  test('a JWT for another namespace is 403 forbidden there, and registers nothing', async () => {
    const token = await sign(conductorClaims(unique('conductor-sub')));
    const before = await snapshotAll(jwtApp);
    assertForbidden(await call(jwtApp, 'POST', '/v1/namespaces/cell-2/leases', { token, body: acquireBody('conductor-7', [`instances/${unique('i')}`]) }), 'cell-2');
    assertForbidden(await call(jwtApp, 'POST', '/v1/leases', { token, body: acquireBody('conductor-7', [`instances/${unique('i')}`]) }), 'the namespace default');
    assertForbidden(await call(jwtApp, 'GET', '/v1/namespaces/cell-2/leases?holder=conductor-7', { token }), 'a read in cell-2');
    assert.deepEqual(await snapshotAll(jwtApp), before);
    assert.deepEqual(await jwtApp.redis.keys(`{${jwtApp.config.KEY_PREFIX}/cell-2}:*`), []);
  });
});

describe('readers see no payload or progress unless their token grants them', () => {
  let operator: string;
  let lease: LeaseBody;
  let orphan: OrphanBody;
  const kind = unique('resize');
  const payload = { flavor: 'm1.large', secret: 'db-password' };
  const progress = { step: 'disk-copied' };

  before(async () => {
    operator = (await newToken(t, { role: 'operator', namespaces: '*' })).token;
    lease = await acquireAs(t, operator, 'conductor-1', `instances/${unique('i')}`, { action: { kind, payload } });
    assert.equal((await call(t, 'POST', `/v1/leases/${lease.id}/renew`, { token: operator, body: { progress } })).statusCode, 200);
    // A lease given up with its action becomes an orphan at once, with its payload and progress.
    const gaveUp = await acquireAs(t, operator, 'conductor-2', `instances/${unique('i')}`, { action: { kind, payload } });
    assert.equal((await call(t, 'POST', `/v1/leases/${gaveUp.id}/renew`, { token: operator, body: { progress } })).statusCode, 200);
    assert.equal((await call(t, 'POST', `/v1/leases/${gaveUp.id}/release`, { token: operator, body: { outcome: 'abandoned' } })).statusCode, 200);
    const listed = await call(t, 'GET', `/v1/orphans?kind=${kind}&include=payload`, { token: operator });
    orphan = listed.json<{ items: OrphanBody[] }>().items.find((o) => o.lastLeaseId === gaveUp.id)!;
    assert.ok(orphan, listed.body);
  });

  /** What a token sees of the lease and the orphan, in every answer that carries them. */
  async function seenBy(token: string) {
    const one = await call(t, 'GET', `/v1/leases/${lease.id}`, { token });
    assert.equal(one.statusCode, 200, one.body);
    const list = await call(t, 'GET', `/v1/leases?holder=conductor-1&include=payload`, { token });
    assert.equal(list.statusCode, 200, list.body);
    const orphans = await call(t, 'GET', `/v1/orphans?kind=${kind}&include=payload`, { token });
    assert.equal(orphans.statusCode, 200, orphans.body);
    const oneOrphan = await call(t, 'GET', `/v1/orphans/${orphan.id}`, { token });
    assert.equal(oneOrphan.statusCode, 200, oneOrphan.body);
    const listed = list.json<{ items: LeaseBody[] }>().items.find((l) => l.id === lease.id)!;
    const listedOrphan = orphans.json<{ items: OrphanBody[] }>().items.find((o) => o.id === orphan.id)!;
    assert.ok(listed && listedOrphan);
    return {
      lease: one.json<LeaseBody>().action,
      listed: listed.action,
      orphan: [listedOrphan.action.payload, listedOrphan.progress],
      oneOrphan: [oneOrphan.json<OrphanBody>().action.payload, oneOrphan.json<OrphanBody>().progress],
    };
  }

  test('an operator sees them (the answers below hide what is there)', async () => {
    assert.deepEqual(await seenBy(operator), {
      lease: { kind, payload, attempt: 1, maxAttempts: 3, progress },
      listed: { kind, payload, attempt: 1, maxAttempts: 3, progress },
      orphan: [payload, progress],
      oneOrphan: [payload, progress],
    });
  });

  test('a reader token sees action.payload and progress as null in GET /v1/leases/{id}, the lease listing and the orphans', async () => {
    const { token } = await newToken(t, { role: 'reader', namespaces: '*' });
    assert.deepEqual(await seenBy(token), {
      lease: { kind, payload: null, attempt: 1, maxAttempts: 3, progress: null },
      listed: { kind, payload: null, attempt: 1, maxAttempts: 3, progress: null },
      orphan: [null, null],
      oneOrphan: [null, null],
    });
    const resource = await call(t, 'GET', `/v1/resources/instances`, { token });
    assert.ok(!resource.body.includes('db-password'), resource.body);
  });

  test('a reader token created with payload: true sees them', async () => {
    const { token } = await newToken(t, { role: 'reader', namespaces: '*', payload: true });
    assert.deepEqual(await seenBy(token), {
      lease: { kind, payload, attempt: 1, maxAttempts: 3, progress },
      listed: { kind, payload, attempt: 1, maxAttempts: 3, progress },
      orphan: [payload, progress],
      oneOrphan: [payload, progress],
    });
  });

  test('a reader\'s POST /v1/leases, renew, release and DELETE are 403 forbidden and change nothing', async () => {
    const { token } = await newToken(t, { role: 'reader', namespaces: '*', payload: true });
    const before = await snapshotAll(t);
    assertForbidden(await call(t, 'POST', '/v1/leases', { token, body: acquireBody('conductor-1', [`instances/${unique('i')}`]) }), 'acquire');
    assertForbidden(await call(t, 'POST', '/v1/namespaces/cell-5/leases', { token, body: acquireBody('conductor-1', [`instances/${unique('i')}`]) }), 'acquire in a namespace');
    assertForbidden(await call(t, 'POST', `/v1/leases/${lease.id}/renew`, { token, body: { progress: { step: 'overwritten' } } }), 'renew');
    assertForbidden(await call(t, 'POST', `/v1/leases/${lease.id}/release`, { token, body: {} }), 'release');
    assertForbidden(await call(t, 'DELETE', `/v1/leases/${lease.id}`, { token }), 'revoke');
    assertForbidden(await call(t, 'POST', `/v1/orphans/${orphan.id}/resolve`, { token, body: { resolution: 'discard' } }), 'resolve');
    assert.deepEqual(await snapshotAll(t), before);
  });
});

describe('events name who acted', () => {
  test('an operator\'s DELETE writes a "revoked" event whose actor is that operator token\'s id', async () => {
    const acquirer = await newToken(t, { role: 'operator', namespaces: '*' });
    const revoker = await newToken(t, { role: 'operator', namespaces: '*' });
    const lease = await acquireAs(t, acquirer.token, 'conductor-1', `instances/${unique('i')}`);
    const res = await call(t, 'DELETE', `/v1/leases/${lease.id}`, { token: revoker.token });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await eventOf(t, 'granted', lease.id))?.actor, acquirer.record.id);
    assert.equal((await eventOf(t, 'revoked', lease.id))?.actor, revoker.record.id, 'the revoker, not the acquirer');
  });

  test('an expiry names no actor, whether the reaper noticed it or a request did', async () => {
    const swept = await startTestApp(redis.url, { AUTH: 'on' });
    try {
      const { token, record } = await newToken(swept, { role: 'operator', namespaces: '*' });
      const lease = await acquireAs(swept, token, 'conductor-1', `instances/${unique('i')}`, { ttlMs: 1000 });
      assert.equal((await eventOf(swept, 'granted', lease.id))?.actor, record.id);
      // Nobody asks about the lease: only the reaper can notice its expiry.
      const expired = await waitFor(() => eventOf(swept, 'expired', lease.id), { timeoutMs: 15000, what: 'the reaper to expire the lease' });
      assert.equal(expired.actor, undefined, JSON.stringify(expired));
    } finally {
      await swept.close();
    }

    // Without a reaper, the operator's read is what notices it: still nobody's act.
    const { token, record } = await newToken(t, { role: 'operator', namespaces: '*' });
    const lease = await acquireAs(t, token, 'conductor-1', `instances/${unique('i')}`, { ttlMs: 1000 });
    await waitFor(() => Date.now() > Date.parse(lease.expiresAt) + 50, { timeoutMs: 5000, what: 'the lease to expire' });
    const read = await call(t, 'GET', `/v1/leases/${lease.id}`, { token });
    assert.equal(read.statusCode, 410, read.body);
    assert.equal(read.json<Problem>().code, 'lease_expired');
    assert.equal((await eventOf(t, 'granted', lease.id))?.actor, record.id);
    const expired = await eventOf(t, 'expired', lease.id);
    assert.ok(expired);
    assert.equal(expired.actor, undefined, JSON.stringify(expired));
  });
});

describe('AUTH_METRICS and AUTH_DOCS', () => {
  test('set to token, /metrics, /openapi.json and /docs answer 401 without a token and 200 with any valid one', async () => {
    const app = await startTestApp(redis.url, { AUTH: 'on', AUTH_METRICS: 'token', AUTH_DOCS: 'token' }, { sweep: false });
    try {
      const reader = await newToken(app, { role: 'reader', namespaces: ['cell-1'] });
      const fencing = await newToken(app, { role: 'resource-server', namespaces: ['cell-1'] });
      const conductor = await newToken(app, { role: 'conductor', namespaces: ['cell-1'], holders: 'conductor-*' });
      for (const url of ['/metrics', '/openapi.json', '/docs']) {
        assertUnauthorized(await call(app, 'GET', url), REALM, url);
        assertUnauthorized(await call(app, 'GET', url, { token: 'lst_AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), `${REALM}, error="invalid_token"`, url);
        for (const { token } of [reader, fencing, conductor]) {
          const res = await call(app, 'GET', url, { token });
          assert.ok(res.statusCode === 200 || (url === '/docs' && res.statusCode === 302), `${url}: ${res.statusCode}`);
        }
      }
      assert.match((await call(app, 'GET', '/metrics', { token: reader.token })).body, /^# HELP /m);
      assert.equal((await call(app, 'GET', '/openapi.json', { token: reader.token })).json<{ openapi: string }>().openapi, '3.1.0');
      // Health stays open whatever these say.
      assert.equal((await call(app, 'GET', '/healthz')).statusCode, 200);
      assert.equal((await call(app, 'GET', '/readyz')).statusCode, 200);
    } finally {
      await app.close();
    }
  });

  test('by default (public), /metrics and /openapi.json answer 200 without a token', async () => {
    assert.equal(t.config.AUTH_METRICS, 'public');
    assert.equal(t.config.AUTH_DOCS, 'public');
    const metrics = await call(t, 'GET', '/metrics');
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /^# HELP /m);
    const document = await call(t, 'GET', '/openapi.json');
    assert.equal(document.statusCode, 200);
    assert.equal(document.json<{ openapi: string }>().openapi, '3.1.0');
  });
});

describe('secure by default', () => {
  const refused = (env: Record<string, string>, message: RegExp) =>
    assert.throws(() => loadConfig(env), (error: unknown) => error instanceof ConfigError && message.test(error.message), JSON.stringify(env));

  test('loadConfig: an address other machines reach needs AUTH set; loopback does not', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'lease.internal']) refused({ HOST: host }, new RegExp(`HOST=${host.replace(/[.:]/g, '\\$&')}.*AUTH=on`));
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) assert.equal(loadConfig({ HOST: host }).AUTH, undefined, host);
    assert.equal(loadConfig({}).HOST, '127.0.0.1', 'the default HOST is loopback');
    assert.equal(loadConfig({ HOST: '0.0.0.0', AUTH: 'none' }).AUTH, 'none');
    const on = loadConfig({ HOST: '0.0.0.0', AUTH: 'on' });
    assert.equal(on.AUTH, 'on');
    assert.equal(on.AUTH_METRICS, 'public');
    assert.equal(on.AUTH_DOCS, 'public');
    refused({ HOST: '0.0.0.0', AUTH: 'off' }, /AUTH/);
  });

  test('loadConfig: JWT settings need AUTH=on and exactly one key source', () => {
    refused({ AUTH_JWT_PUBLIC_KEY_FILE: '/k.pem' }, /AUTH_JWT_PUBLIC_KEY_FILE: JWTs are checked only with AUTH=on/);
    refused({ AUTH: 'none', AUTH_JWKS_FILE: '/k.json' }, /AUTH_JWKS_FILE: JWTs are checked only with AUTH=on/);
    refused({ AUTH: 'on', AUTH_JWT_PUBLIC_KEY_FILE: '/k.pem', AUTH_JWKS_FILE: '/k.json' }, /either AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_FILE/);
    refused({ AUTH: 'on', AUTH_JWT_ISSUER: 'https://issuer.example' }, /missing AUTH_JWT_PUBLIC_KEY_FILE/);
    refused({ AUTH: 'on', AUTH_JWT_AUDIENCE: 'lease-service' }, /missing AUTH_JWT_PUBLIC_KEY_FILE/);
    assert.equal(loadConfig({ AUTH: 'on', AUTH_JWKS_FILE: '/k.json', AUTH_JWT_AUDIENCE: 'lease-service' }).AUTH_JWT_AUDIENCE, 'lease-service');
  });

  /** The real process: `node --import tsx src/main.ts` with exactly this environment. */
  function spawnService(env: Record<string, string>) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOAD_SHED_EVENT_LOOP_DELAY_MS: '60000', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    return { child, exited, stdout: () => stdout, stderr: () => stderr };
  }

  test('the process started on 0.0.0.0 without AUTH exits with code 2 and says why on stderr', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lease-test-auth-'));
    // Were it to start, it would use the test Redis, never a redis-server of its own.
    const service = spawnService({ HOST: '0.0.0.0', PORT: String(await findFreePort()), REDIS_URL: redis.url, DATA_DIR: dataDir, KEY_PREFIX: `t${randomBytes(4).toString('hex')}` });
    try {
      const code = await Promise.race([service.exited, new Promise<string>((resolve) => setTimeout(resolve, 60000, 'still running').unref())]);
      assert.equal(code, 2, `stdout: ${service.stdout()} stderr: ${service.stderr()}`);
      assert.match(service.stderr(), /invalid HOST=0\.0\.0\.0/);
      assert.match(service.stderr(), /AUTH=on/);
      assert.match(service.stderr(), /AUTH=none/);
    } finally {
      if (service.child.exitCode === null && service.child.signalCode === null) service.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  // On loopback, not 0.0.0.0: tests open no port to the network (loadConfig's test above
  // shows 0.0.0.0 is accepted with AUTH=on).
  test('the process started with AUTH=on serves, says so in its log, and refuses /v1 without a token', async () => {
    const port = await findFreePort();
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const service = spawnService({ HOST: '127.0.0.1', PORT: String(port), REDIS_URL: redis.url, AUTH: 'on', KEY_PREFIX: prefix, LOG_LEVEL: 'info' });
    const base = `http://127.0.0.1:${port}`;
    let ended = false;
    void service.exited.then(() => (ended = true));
    try {
      await waitFor(
        async () => {
          if (ended) throw new Error(`the service exited: ${service.stdout()} ${service.stderr()}`);
          try {
            return (await fetch(`${base}/readyz`)).status === 200;
          } catch {
            return false;
          }
        },
        { timeoutMs: 60000, intervalMs: 100, what: 'the service to be ready' },
      );
      assert.match(service.stdout(), /access control is on/);
      const refused = await fetch(`${base}/v1/leases`);
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get('www-authenticate'), REALM);
      const { token } = await new ServiceTokens(t.redis, tokenKeys(prefix)).create({ role: 'reader', namespaces: '*' });
      assert.equal((await fetch(`${base}/v1/leases`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
    } finally {
      service.child.kill('SIGTERM');
      const code = await Promise.race([service.exited, new Promise<string>((resolve) => setTimeout(resolve, 30000, 'timeout').unref())]);
      if (code === 'timeout') service.child.kill('SIGKILL');
    }
  });
});

describe('the OpenAPI document', () => {
  type Operation = { responses?: Record<string, unknown>; security?: unknown };

  test('declares bearerAuth (http bearer), and every /v1 operation lists 401, 403 and security bearerAuth', () => {
    const document = t.app.swagger() as { components?: { securitySchemes?: Record<string, { type: string; scheme: string }> }; paths: Record<string, Record<string, Operation>> };
    assert.equal(document.components?.securitySchemes?.bearerAuth?.type, 'http');
    assert.equal(document.components?.securitySchemes?.bearerAuth?.scheme, 'bearer');
    let checked = 0;
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        const what = `${method.toUpperCase()} ${path}`;
        if (path.startsWith('/v1/')) {
          checked++;
          assert.ok(operation.responses?.['401'], `${what} lists 401`);
          assert.ok(operation.responses?.['403'], `${what} lists 403`);
          assert.deepEqual(operation.security, [{ bearerAuth: [] }], what);
        } else {
          assert.equal(operation.security, undefined, `${what} needs no token`);
        }
      }
    }
    // Every route at /v1 and again at /v1/namespaces/{namespace}.
    assert.ok(checked >= 26, `only ${checked} /v1 operations`);
    assert.ok(document.paths['/v1/namespaces/{namespace}/leases']?.post, 'the namespaced routes are documented');
  });
});
