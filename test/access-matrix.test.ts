// The access matrix, walked whole: each role × each /v1 route × a lease of its own holder or
// of another × its own namespace or another. Every allowed call gets its 2xx; every refused
// one gets 403 forbidden and leaves Redis exactly as it was (every key of every namespace,
// streams included). The expected matrix is written out here from the contract, not read
// from the service's policy table, so a wrong row in either shows.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { ServiceTokens, tokenKeys } from '../src/auth/service-tokens.js';
import { acquireBody, useTestApp } from './helpers/app.js';
import { keyContent } from './helpers/key-content.js';

// No reaper, and leases that outlive the test: nothing may change Redis but the calls themselves.
const { t } = useTestApp({ env: { AUTH: 'on' }, sweep: false });
const TTL_MS = 300000;

type Role = 'conductor' | 'operator' | 'reader' | 'resource-server';
type Op =
  | 'acquire'
  | 'renew'
  | 'release'
  | 'getLease'
  | 'listLeases'
  | 'revoke'
  | 'holderRenew'
  | 'resource'
  | 'fencing'
  | 'claim'
  | 'resolve'
  | 'getOrphan'
  | 'listOrphans'
  | 'events';

const HOME = 'cell-a';
const OTHER = 'cell-b';
const OWN_HOLDER = 'cond-1';
const OTHER_HOLDER = 'other-1';

/**
 * Who may call what, from the contract (Access control): a conductor acts only as its holders,
 * an operator does everything, a reader reads, a resource server checks fencing tokens.
 * "holder": a conductor may call it only for its own holder's leases.
 */
const MATRIX: Record<Op, Partial<Record<Role, 'any' | 'holder'>>> = {
  acquire: { conductor: 'holder', operator: 'any' },
  renew: { conductor: 'holder', operator: 'any' },
  release: { conductor: 'holder', operator: 'any' },
  getLease: { conductor: 'holder', operator: 'any', reader: 'any' },
  listLeases: { conductor: 'holder', operator: 'any', reader: 'any' },
  revoke: { operator: 'any' },
  holderRenew: { conductor: 'holder', operator: 'any' },
  resource: { operator: 'any', reader: 'any' },
  fencing: { operator: 'any', 'resource-server': 'any' },
  claim: { conductor: 'holder', operator: 'any' },
  resolve: { operator: 'any' },
  getOrphan: { operator: 'any', reader: 'any' },
  listOrphans: { operator: 'any', reader: 'any' },
  events: { operator: 'any', reader: 'any' },
};

function allowed(role: Role, op: Op, ownHolder: boolean, homeNamespace: boolean): boolean {
  const rule = MATRIX[op][role];
  return homeNamespace && rule !== undefined && (rule === 'any' || ownHolder);
}

let n = 0;
const unique = (name: string) => `${name}-${++n}`;
const base = (namespace: string) => `/v1/namespaces/${namespace}`;

/** Every key of this app (all namespaces) with its content, so any change to any of them shows. */
async function snapshot(redis: Redis, keyPrefix: string): Promise<Map<string, string>> {
  const keys = [...(await redis.keys(`{${keyPrefix}}:*`)), ...(await redis.keys(`{${keyPrefix}/*`))].sort();
  const contents = await Promise.all(keys.map((key) => keyContent(redis, key)));
  return new Map(keys.map((key, i) => [key, contents[i]!]));
}

interface Fixture {
  leaseId: string;
  path: string;
  fencingToken: number;
  orphanId: string;
  kind: string;
}

describe('the access matrix: role × route × own or other holder × own or other namespace', () => {
  const tokens: Partial<Record<Role | 'admin', string>> = {};

  async function as(token: string, method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) {
    return t.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
  }

  /** A lease of `holder` in `namespace`, and a pending orphan of its own kind there, made by an operator of every namespace. */
  async function fixture(namespace: string, holder: string): Promise<Fixture> {
    const admin = tokens.admin!;
    const kind = unique('resize');
    const path = `instances/${unique('i')}`;
    const lease = await as(admin, 'POST', `${base(namespace)}/leases`, acquireBody(holder, [path], { ttlMs: TTL_MS, action: { kind, payload: { flavor: 'm1' } } }));
    assert.equal(lease.statusCode, 201, lease.body);
    const orphaned = await as(admin, 'POST', `${base(namespace)}/leases`, acquireBody(holder, [`${path}-o`], { ttlMs: TTL_MS, action: { kind } }));
    const abandoned = await as(admin, 'POST', `${base(namespace)}/leases/${orphaned.json<{ id: string }>().id}/release`, { outcome: 'abandoned' });
    const orphanId = abandoned.json<{ orphanId: string }>().orphanId;
    const { id, fencingToken } = lease.json<{ id: string; fencingToken: number }>();
    return { leaseId: id, path, fencingToken, orphanId, kind };
  }

  /** The call of `op` on the fixture, with the holder it names; the answer's status. */
  async function call(op: Op, token: string, namespace: string, holder: string, f: Fixture): Promise<number> {
    const b = base(namespace);
    switch (op) {
      case 'acquire':
        return (await as(token, 'POST', `${b}/leases`, acquireBody(holder, [`instances/${unique('new')}`], { ttlMs: TTL_MS }))).statusCode;
      case 'renew':
        return (await as(token, 'POST', `${b}/leases/${f.leaseId}/renew`, { progress: { step: 1 } })).statusCode;
      case 'release':
        return (await as(token, 'POST', `${b}/leases/${f.leaseId}/release`, {})).statusCode;
      case 'getLease':
        return (await as(token, 'GET', `${b}/leases/${f.leaseId}`)).statusCode;
      case 'listLeases':
        return (await as(token, 'GET', `${b}/leases?holder=${holder}`)).statusCode;
      case 'revoke':
        return (await as(token, 'DELETE', `${b}/leases/${f.leaseId}`)).statusCode;
      case 'holderRenew':
        return (await as(token, 'POST', `${b}/holders/${holder}/renew`, {})).statusCode;
      case 'resource':
        return (await as(token, 'GET', `${b}/resources/${f.path}`)).statusCode;
      case 'fencing':
        return (await as(token, 'POST', `${b}/fencing/check`, { path: f.path, fencingToken: f.fencingToken })).statusCode;
      case 'claim':
        return (await as(token, 'POST', `${b}/orphans/claim`, { holder, kinds: [f.kind], ttlMs: TTL_MS })).statusCode;
      case 'resolve':
        return (await as(token, 'POST', `${b}/orphans/${f.orphanId}/resolve`, { resolution: 'discard' })).statusCode;
      case 'getOrphan':
        return (await as(token, 'GET', `${b}/orphans/${f.orphanId}`)).statusCode;
      case 'listOrphans':
        return (await as(token, 'GET', `${b}/orphans`)).statusCode;
      case 'events': {
        // A stream that is allowed opens and never ends: read its status, then leave.
        const controller = new AbortController();
        const res = await fetch(`${t.baseUrl}${b}/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
        controller.abort();
        return res.status;
      }
    }
  }

  test('every cell of the matrix', async () => {
    const store = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const make = async (grant: Parameters<ServiceTokens['create']>[0]) => (await store.create(grant)).token;
    tokens.admin = await make({ role: 'operator', namespaces: '*' });
    tokens.conductor = await make({ role: 'conductor', namespaces: [HOME], holders: 'cond-*' });
    tokens.operator = await make({ role: 'operator', namespaces: [HOME] });
    tokens.reader = await make({ role: 'reader', namespaces: [HOME] });
    tokens['resource-server'] = await make({ role: 'resource-server', namespaces: [HOME] });

    const wrong: string[] = [];
    let cells = 0;
    for (const op of Object.keys(MATRIX) as Op[]) {
      for (const role of ['conductor', 'operator', 'reader', 'resource-server'] as Role[]) {
        for (const ownHolder of [true, false]) {
          for (const home of [true, false]) {
            cells++;
            const namespace = home ? HOME : OTHER;
            const holder = ownHolder ? OWN_HOLDER : OTHER_HOLDER;
            const f = await fixture(namespace, holder);
            const expected = allowed(role, op, ownHolder, home);
            const before = expected ? undefined : await snapshot(t.redis, t.config.KEY_PREFIX);
            const status = await call(op, tokens[role]!, namespace, holder, f);
            const cell = `${role} ${op} ${ownHolder ? 'own' : 'other'} holder, ${home ? 'own' : 'other'} namespace`;
            if (expected && (status < 200 || status > 299)) wrong.push(`${cell}: ${status}, expected 2xx`);
            if (!expected) {
              if (status !== 403) wrong.push(`${cell}: ${status}, expected 403`);
              const after = await snapshot(t.redis, t.config.KEY_PREFIX);
              const changed = [...new Set([...before!.keys(), ...after.keys()])].filter((key) => before!.get(key) !== after.get(key));
              if (changed.length > 0) wrong.push(`${cell}: refused, yet changed ${changed.join(', ')}`);
            }
          }
        }
      }
    }
    assert.equal(cells, 14 * 4 * 2 * 2);
    assert.deepEqual(wrong, []);
  });

  test('a token of one namespace is refused on the routes of the namespace "default" too', async () => {
    const res = await as(tokens.operator!, 'GET', '/v1/leases');
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json<{ code: string }>().code, 'forbidden');
  });

  test('a conductor lists only its own holders\' leases, and claims only the orphan kinds it was given', async () => {
    const store = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const { token } = await store.create({ role: 'conductor', namespaces: [HOME], holders: 'cond-*', kinds: ['resize'] });
    assert.equal((await as(token, 'GET', `${base(HOME)}/leases`)).statusCode, 403, 'a listing that names no holder');
    assert.equal((await as(token, 'GET', `${base(HOME)}/leases?holder=cond-7`)).statusCode, 200);
    const refused = await as(token, 'POST', `${base(HOME)}/orphans/claim`, { holder: 'cond-1', kinds: ['resize', 'migrate'] });
    assert.equal(refused.statusCode, 403, refused.body);
    assert.match(refused.json<{ detail: string }>().detail, /migrate/);

    // Without kinds, it claims among its own: the pending orphans (of kinds resize-1, resize-2, ...) are not its to claim.
    await fixture(HOME, 'other-2');
    const orphans = await as(tokens.admin!, 'GET', `${base(HOME)}/orphans?state=pending&limit=1000`);
    const pendingKinds = new Set(orphans.json<{ items: { action: { kind: string } }[] }>().items.map((o) => o.action.kind));
    assert.ok(pendingKinds.size > 0);
    const claimed = await as(token, 'POST', `${base(HOME)}/orphans/claim`, { holder: 'cond-1' });
    assert.equal(claimed.statusCode, 204, 'no pending orphan of kind resize: the others are not its to claim');
  });

  test('a lease, and its tombstone, record the token that acquired it', async () => {
    const store = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const { token, record } = await store.create({ role: 'conductor', namespaces: [HOME], holders: 'cond-*' });
    const lease = await as(token, 'POST', `${base(HOME)}/leases`, acquireBody('cond-9', [`instances/${unique('i')}`]));
    assert.equal(lease.statusCode, 201, lease.body);
    assert.equal(lease.json<{ acquiredBy: string }>().acquiredBy, record.id);
    // And its tombstone still says so.
    const released = await as(token, 'POST', `${base(HOME)}/leases/${lease.json<{ id: string }>().id}/release`, {});
    assert.equal(released.statusCode, 200, released.body);
    assert.equal(released.json<{ acquiredBy: string }>().acquiredBy, record.id);
  });

  test('a token for every namespace uses the namespaces that exist, and creates none unless it is an operator\'s', async () => {
    const store = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const { token } = await store.create({ role: 'conductor', namespaces: '*', holders: 'cond-*' });
    const fresh = unique('fresh');
    const registry = `{${t.config.KEY_PREFIX}}:namespaces`;
    const refused = await as(token, 'POST', `${base(fresh)}/leases`, acquireBody('cond-1', ['instances/i-1'], { ttlMs: TTL_MS }));
    assert.equal(refused.statusCode, 403, refused.body);
    assert.equal(await t.redis.sismember(registry, fresh), 0, 'the refused acquire registered nothing');
    assert.deepEqual(await t.redis.keys(`{${t.config.KEY_PREFIX}/${fresh}}:*`), []);
    // An operator's first acquire creates it; from then on the conductor works there.
    assert.equal((await as(tokens.admin!, 'POST', `${base(fresh)}/leases`, acquireBody('other-1', ['instances/i-1'], { ttlMs: TTL_MS }))).statusCode, 201);
    assert.equal((await as(token, 'POST', `${base(fresh)}/leases`, acquireBody('cond-1', ['instances/i-2'], { ttlMs: TTL_MS }))).statusCode, 201);
  });

  test('grants: orphan kinds are any printable text (no control characters), and a holder glob has at most two stars', async () => {
    const store = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const conductor = { role: 'conductor' as const, namespaces: [HOME] };
    await store.create({ ...conductor, holders: 'cond-*', kinds: ['snapshot', 'Create', 'x}y'] });
    await store.create({ ...conductor, holders: 'cell-*-cond-*' });
    await assert.rejects(store.create({ ...conductor, holders: 'cond-*', kinds: ['a\nb'] }), TypeError, 'a newline would split one kind into two');
    await assert.rejects(store.create({ ...conductor, holders: '*-*-*' }), TypeError, 'three stars');
  });

  test('a conductor\'s read of another holder\'s expired lease is 403 and settles nothing (its own holder\'s read would)', async () => {
    const store = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const { token } = await store.create({ role: 'conductor', namespaces: [HOME], holders: 'cond-*' });
    const lease = await as(tokens.admin!, 'POST', `${base(HOME)}/leases`, acquireBody('other-9', [`instances/${unique('i')}`], { ttlMs: 1000, action: { kind: 'resize' } }));
    assert.equal(lease.statusCode, 201, lease.body);
    const { id, expiresAt } = lease.json<{ id: string; expiresAt: string }>();
    await new Promise((resolve) => setTimeout(resolve, Date.parse(expiresAt) - Date.now() + 300));
    const before = await snapshot(t.redis, t.config.KEY_PREFIX);
    const refused = await as(token, 'GET', `${base(HOME)}/leases/${id}`);
    assert.equal(refused.statusCode, 403, refused.body);
    assert.deepEqual(await snapshot(t.redis, t.config.KEY_PREFIX), before, 'the expired lease was not settled by the refused read');
    // The operator's read settles it: orphaned, its orphan published.
    assert.equal((await as(tokens.admin!, 'GET', `${base(HOME)}/leases/${id}`)).json<{ state: string }>().state, 'orphaned');
  });
});
