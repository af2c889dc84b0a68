// Fencing tokens never go backwards, also when Redis restarts from an append-only file
// that lost its last writes (here: an older copy of its data folder), which a plain INCR
// counter would not survive.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { acquireBody, useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t, redis } = useTestApp({ redisArgs: ['--appendfsync', 'always'] });

async function grant(holder: string, path: string) {
  const res = await t.post('/v1/leases', acquireBody(holder, [path]));
  assert.equal(res.statusCode, 201, res.body);
  return res.json();
}

test('after Redis restarts from an older copy of its data, new tokens are above every token issued before', async () => {
  const path = 'instances/i-42';
  const early = await grant('a', path);
  await t.post(`/v1/leases/${early.id}/release`);
  const older = redis.snapshot();

  let lost = early;
  for (let i = 0; i < 200; i++) {
    lost = await grant(`b-${i}`, path);
    await t.post(`/v1/leases/${lost.id}/release`);
  }

  await redis.kill();
  redis.restore(older);
  await redis.start();

  // The restored store really lost the later grants: the last one is unknown.
  const lookup = await waitFor(async () => {
    const res = await t.get(`/v1/leases/${lost.id}`);
    return res.statusCode === 503 ? undefined : res;
  }, { what: 'the app to reconnect' });
  assert.equal(lookup.statusCode, 404);
  assert.equal((await t.get(`/v1/leases/${early.id}`)).statusCode, 410);

  const after = await grant('c', path);
  assert.ok(after.fencingToken > lost.fencingToken, `token ${after.fencingToken} must exceed the lost ${lost.fencingToken}`);
});

test('tokens within one millisecond stay strictly increasing', async () => {
  const tokens = await Promise.all(Array.from({ length: 100 }, (_, i) => grant(`p-${i}`, `instances/burst-${i}`).then((l) => l.fencingToken)));
  assert.equal(new Set(tokens).size, tokens.length);
  const sorted = [...tokens].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i]! > sorted[i - 1]!);
});
