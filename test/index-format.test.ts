// Moving a store written by an earlier version to this version's path index (layout 2:
// below-sets for the first three levels only, deep paths in lex sets, long nodes named by
// their SHA-1). The test writes leases with today's service, rewrites their index entries by
// hand into the earlier layout (a below-set entry at every ancestor, every node named as it
// is, no deep member), and checks that the move puts back exactly what today's service would
// have written: the same conflicts, the same scores, nothing of the old layout left.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyPrefix } from '../src/app.js';
import type { Conflict, Lease } from '../src/client/types.js';
import { ensureIndexFormat, INDEX_FORMAT } from '../src/store/index-format.js';
import { storeKeys } from '../src/store/keys.js';
import { LeaseStore } from '../src/store/lease-store.js';
import { NODE_KEY_MAX, nodeKeyName as nodeName } from '../src/store/node-digests.js';
import { defineScripts, loadLibrary } from '../src/store/scripts.js';
import { acquireBody, useTestApp } from './helpers/app.js';
import { checkInvariants } from './helpers/invariants.js';
import { waitFor } from './helpers/wait.js';

const { t } = useTestApp({ sweep: false });

const long = (name: string) => name.padEnd(100, 'x');
const ancestorsOf = (path: string) => path.split('/').slice(1).map((_, i) => path.split('/').slice(0, i + 1).join('/'));

async function hold(holder: string, resources: (string | { path: string; mode: string })[], extra: Record<string, unknown> = {}): Promise<Lease> {
  const res = await t.post('/v1/leases', acquireBody(holder, resources, extra));
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Lease>();
}

async function conflictsOf(path: string): Promise<Conflict[]> {
  const res = await t.post('/v1/leases', acquireBody('probe', [path]));
  assert.equal(res.statusCode, 409, `${path}: ${res.body}`);
  return res.json().conflicts as Conflict[];
}

/** Rewrites a lease's index entries as a version before layout 2 wrote them. */
async function toEarlierLayout(lease: Lease): Promise<void> {
  const P = keyPrefix(t.config);
  for (const { path, mode } of lease.resources) {
    const m = mode === 'shared' ? 's' : 'x';
    const score = await t.redis.zscore(`${P}a${m}:${nodeName(path)}`, lease.id);
    assert.ok(score !== null, `${lease.id} is indexed at ${path}`);
    await t.redis.zrem(`${P}a${m}:${nodeName(path)}`, lease.id);
    await t.redis.zadd(`${P}a${m}:${path}`, score, lease.id);
    for (const [i, node] of ancestorsOf(path).entries()) {
      if (i < 3) await t.redis.zrem(`${P}b${m}:${nodeName(node)}`, lease.id);
      await t.redis.zadd(`${P}b${m}:${node}`, score, lease.id);
    }
    await t.redis.zrem(`${P}deep:${m}`, `${path} ${lease.id}`);
  }
}

describe('moving an earlier version\'s index to layout 2', () => {
  test('leases on deep and long paths written before are found, scored and listed as today\'s after the move, once', async () => {
    const P = keyPrefix(t.config);
    const keys = storeKeys(P);
    assert.equal(await t.redis.get(keys.indexFormat), INDEX_FORMAT, 'the app marked its new store when it started');

    const deepPath = 'm/i-1/volumes/v-7/snapshots/s-1/b-2'; // 7 segments: a deep member, short nodes
    const longPath = `m/${long('i-2')}/${long('volumes')}`; // 3 segments, two nodes named by SHA-1
    const deepLongPath = `m/${long('i-3')}/v/s/t/u`; // 6 segments, long from the second
    const delayedPath = 'm/i-4/volumes/v-7/snapshots/s-2'; // 6 segments, left in its lock delay
    const withAction = await hold('conductor', [deepPath], { action: { kind: 'resize' } });
    const shared = await hold('reader', [{ path: longPath, mode: 'shared' }]);
    const both = await hold('both', [deepLongPath, { path: 'm/i-5', mode: 'shared' }]);
    const delayed = await hold('delayed', [delayedPath], { ttlMs: 1000, lockDelayMs: 60000 });
    await waitFor(async () => (await t.get(`/v1/leases/${delayed.id}`)).json().state === 'expired', { what: 'the delayed lease expired' });
    const before = await Promise.all(['m/i-1/volumes/v-7', longPath, `m/${long('i-3')}/v/s`, 'm/i-4/volumes/v-7'].map(conflictsOf));
    assert.deepEqual(await checkInvariants(t.redis, t.config.KEY_PREFIX), []);

    for (const lease of [withAction, shared, both, delayed]) await toEarlierLayout(lease);
    await t.redis.del(keys.indexFormat);
    // The checker knows only today's layout: the rewritten state breaks it, long keys and all.
    const broken = await checkInvariants(t.redis, t.config.KEY_PREFIX);
    assert.ok(broken.some((v) => v.includes('not by its SHA-1')), broken.join('\n'));
    assert.ok(broken.some((v) => v.includes('no member in deep:x')), broken.join('\n'));

    const store = new LeaseStore(defineScripts(t.redis, loadLibrary()), { keyPrefix: P, tombstoneTtlMs: 3600000, streamCap: 1000, commandTimeoutMs: 5000 });
    assert.ok((await ensureIndexFormat(t.redis, store, keys)) >= 3, 'it walked the leases, the leases due and the tickets');
    assert.equal(await t.redis.get(keys.indexFormat), INDEX_FORMAT);
    assert.deepEqual(await checkInvariants(t.redis, t.config.KEY_PREFIX), []);
    // The same conflicts, the lock-delayed one's and the orphan-to-be's included.
    const after = await Promise.all(['m/i-1/volumes/v-7', longPath, `m/${long('i-3')}/v/s`, 'm/i-4/volumes/v-7'].map(conflictsOf));
    assert.deepEqual(after, before);
    assert.equal(after[3]![0]!.state, 'lock_delay');
    // Nothing of the earlier layout is left: no below-set deeper than three segments, no key named by a long node.
    const left = (await t.redis.keys(`${P}*`)).map((key) => key.slice(P.length));
    assert.deepEqual(
      left.filter((key) => /^b[xs]:/.test(key) && (key.split('/').length > 3 || key.length - 3 > NODE_KEY_MAX)),
      [],
    );
    assert.deepEqual(left.filter((key) => /^a[xs]:/.test(key) && key.length - 3 > NODE_KEY_MAX), []);
    // Marked: the next start costs one GET, whatever the store holds.
    assert.equal(await ensureIndexFormat(t.redis, store, keys), 0);
  });

  test('moving twice, or a move cut short and begun again, leaves the same index', async () => {
    const P = keyPrefix(t.config);
    const keys = storeKeys(P);
    const lease = await hold('twice', [`n/${long('i-1')}/v/s/t`, { path: 'n/i-2/a/b/c/d', mode: 'shared' }]);
    await toEarlierLayout(lease);
    const store = new LeaseStore(defineScripts(t.redis, loadLibrary()), { keyPrefix: P, tombstoneTtlMs: 3600000, streamCap: 1000, commandTimeoutMs: 5000 });
    await store.reindex('t:', 0);
    const once = await t.snapshotKeys();
    await store.reindex('t:', 0);
    assert.deepEqual(await t.snapshotKeys(), once);
    await t.redis.del(keys.indexFormat);
    await ensureIndexFormat(t.redis, store, keys);
    assert.deepEqual(await checkInvariants(t.redis, t.config.KEY_PREFIX), []);
    assert.deepEqual((await conflictsOf('n/i-2/a')).map((c) => [c.path, c.leaseId, c.mode]), [['n/i-2/a/b/c/d', lease.id, 'shared']]);
  });
});
