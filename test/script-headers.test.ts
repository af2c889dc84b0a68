// Each Lua script's header says which KEYS and ARGV it takes (BullMQ's habit, and ours);
// this holds the header to what the TypeScript store really passes. Every store call runs
// once against a real Redis through a runner that records what it sent.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedisClient, waitUntilReady } from '../src/redis/connection.js';
import { LeaseStore } from '../src/store/lease-store.js';
import { defineScripts, loadLibrary, type LuaScript } from '../src/store/scripts.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';

let server: TestRedis;
let redis: Redis;
const sent = new Map<string, { keys: number; args: number }>();
const library = loadLibrary();
const { scripts } = library;

before(async () => {
  server = await startTestRedis();
  redis = createRedisClient({ target: { mode: 'single', url: server.url }, commandTimeoutMs: 2000 });
  await waitUntilReady(redis, 10000);
});
after(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** The largest KEYS[n] and ARGV[n] a script's header (its first --[[ ... ]] comment) names. */
function declared(script: LuaScript): { keys: number; args: number } {
  const header = /--\[\[([\s\S]*?)\]\]/.exec(script.source)?.[1] ?? '';
  const highest = (name: string) => Math.max(0, ...[...header.matchAll(new RegExp(`${name}\\[(\\d+)\\]`, 'g'))].map((m) => Number(m[1])));
  return { keys: highest('KEYS'), args: highest('ARGV') };
}

test('every script\'s header names exactly the KEYS and ARGV the store passes it', async () => {
  const run = defineScripts(redis, library);
  const store = new LeaseStore(
    (name, keys, args) => {
      sent.set(name, { keys: keys.length, args: args.length });
      return run(name, keys, args);
    },
    { keyPrefix: `{h${randomBytes(3).toString('hex')}}:`, tombstoneTtlMs: 3600000, streamCap: 1000, commandTimeoutMs: 2000 },
  );
  const id = () => randomBytes(16).toString('base64url');
  const input = {
    holder: 'h',
    resources: [{ path: 'a/b', mode: 'exclusive' as const }],
    ttlMs: 60000,
    maxHoldMs: 86400000,
    lockDelayMs: 0,
    action: { kind: 'k', maxAttempts: 3, payloadJson: '{"x":1}' },
    requestId: null,
    fingerprint: '',
    conflictLimit: 10,
  };
  const lease = await store.acquire({ ...input, id: id(), wait: null });
  assert.equal(lease.kind, 'granted');
  const leaseId = lease.kind === 'granted' ? lease.lease.id : '';
  await store.cancelWait(id());
  await store.renew(leaseId, null, '{"step":1}');
  await store.renewHolder('h', null, null, 10);
  await store.get(leaseId);
  await store.list({ holder: null, prefix: 'a', state: null, afterToken: null, limit: 10, scanBudget: 100, withPayload: false });
  await store.resource('a', 10, false, 100);
  await store.checkFencing('a/b', '1', 10);
  await store.revoke(leaseId);
  const claim = await store.claim({ id: id(), holder: 'h2', ttlMs: 60000, maxHoldMs: 86400000, kinds: ['k'] });
  assert.equal(claim.kind, 'claimed');
  const orphanId = claim.kind === 'claimed' ? claim.orphan.id : '';
  await store.getOrphan(orphanId);
  await store.listOrphans({ state: null, kind: null, afterSeq: null, limit: 10, scanBudget: 100, withPayload: false });
  await store.release(claim.kind === 'claimed' ? claim.lease.id : '', 'abandoned');
  await store.resolve(orphanId, 'discard');
  await store.sweep(10, { maxAgeMs: 86400000, maxBytes: 1 << 30 });
  await store.stats();
  await store.reindex('t:', 0);

  for (const script of scripts) {
    const call = sent.get(script.name);
    assert.ok(call, `${script.name}: no store call ran it (add one to this test)`);
    assert.deepEqual(call, declared(script), `${script.name}: what the store passes (left) against what its header names (right)`);
    assert.equal(call.keys, script.numberOfKeys, `${script.name}: its file name says ${script.numberOfKeys} KEYS`);
  }
});
