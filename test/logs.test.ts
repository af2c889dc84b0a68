// The service's pino logs, as an operator reads them: JSON lines, each line of a request
// carries its request id, lease events name the lease and its holder, and nothing a client
// put in a payload, a progress checkpoint or a malformed body ever reaches the log.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { acquireBody, startTestApp, type TestApp } from './helpers/app.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';

const SECRET = 'hunter2-do-not-log';

let redis: TestRedis;
let t: TestApp;
const lines: string[] = [];

before(async () => {
  redis = await startTestRedis();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
      done();
    },
  });
  t = await startTestApp(redis.url, {}, { logger: { level: 'trace', stream } });
});
after(async () => {
  await t.close();
  await redis.stop();
});

type LogLine = Record<string, unknown> & { reqId?: string; msg?: string };

function parsed(): LogLine[] {
  return lines.map((line) => {
    try {
      return JSON.parse(line) as LogLine;
    } catch {
      assert.fail(`a log line is not JSON: ${line}`);
    }
  });
}

test('every log line of a request carries its request id, the one the answer names in X-Request-Id', async () => {
  const from = lines.length;
  const granted = await t.post('/v1/leases', acquireBody('logs-a', ['l/id/i-1']));
  assert.equal(granted.statusCode, 201);
  const requestId = granted.headers['x-request-id'];
  assert.match(String(requestId), /^[0-9a-f-]{36}$/, 'a request without one gets a UUID');

  const ofRequest = parsed().slice(from).filter((line) => line.reqId === requestId);
  assert.ok(ofRequest.some((line) => line.msg === 'incoming request'));
  assert.ok(ofRequest.some((line) => line.msg === 'request completed'));
  const grant = ofRequest.find((line) => line.msg === 'lease granted');
  assert.ok(grant, 'the grant is logged within the request');
  assert.equal(grant.leaseId, granted.json().id);
  assert.equal(grant.holder, 'logs-a');
  // Every line logged while serving requests belongs to one.
  const requestLines = parsed().slice(from).filter((line) => 'req' in line || 'res' in line || line.msg === 'lease granted');
  for (const line of requestLines) assert.ok(typeof line.reqId === 'string' && line.reqId.length > 0, `has a reqId: ${JSON.stringify(line)}`);
});

test('a caller\'s own X-Request-Id is kept when it is plain, and replaced when it is not', async () => {
  const kept = await t.app.inject({ method: 'GET', url: '/v1/leases', headers: { 'x-request-id': 'trace-42.abc' } });
  assert.equal(kept.headers['x-request-id'], 'trace-42.abc');
  assert.ok(parsed().some((line) => line.reqId === 'trace-42.abc' && line.msg === 'request completed'));

  const odd = `a b ${'x'.repeat(300)}`;
  const replaced = await t.app.inject({ method: 'GET', url: '/v1/leases', headers: { 'x-request-id': odd } });
  assert.match(String(replaced.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  assert.ok(!lines.some((line) => line.includes('x'.repeat(300))), 'the long id is in no log line');
});

test('releases, renewals of lost leases, revocations, claims and resolutions name the lease and its holder', async () => {
  const from = lines.length;
  const one = await t.post('/v1/leases', acquireBody('logs-b', ['l/events/i-1'], { action: { kind: 'resize' } }));
  const two = await t.post('/v1/leases', acquireBody('logs-c', ['l/events/i-2']));
  assert.equal((await t.post(`/v1/leases/${two.json().id}/release`, {})).statusCode, 200);
  assert.equal((await t.post(`/v1/leases/${two.json().id}/renew`, {})).statusCode, 410);
  assert.equal((await t.del(`/v1/leases/${one.json().id}`)).statusCode, 200);
  const claim = await t.post('/v1/orphans/claim', { holder: 'logs-d', kinds: ['resize'] });
  assert.equal(claim.statusCode, 200);

  const logged = parsed().slice(from);
  const find = (msg: string) => logged.find((line) => line.msg === msg);
  assert.deepEqual(pick(find('lease released'), 'leaseId', 'holder'), { leaseId: two.json().id, holder: 'logs-c' });
  assert.deepEqual(pick(find('renew of a lost lease'), 'leaseId', 'holder'), { leaseId: two.json().id, holder: 'logs-c' });
  assert.deepEqual(pick(find('lease revoked'), 'leaseId', 'holder'), { leaseId: one.json().id, holder: 'logs-b' });
  const claimed = logged.find((line) => line.orphanId === claim.json().orphan.id);
  assert.ok(claimed, 'the claim is logged with its orphan id');
  assert.equal(claimed.holder, 'logs-d');
  assert.equal(claimed.leaseId, claim.json().lease.id);
});

test('payloads, progress checkpoints and malformed bodies never reach the log, even at trace level', async () => {
  const granted = await t.post(
    '/v1/leases',
    acquireBody('logs-e', ['l/secret/i-1'], { action: { kind: 'resize', payload: { password: SECRET } } }),
  );
  assert.equal(granted.statusCode, 201);
  const id = granted.json().id as string;
  assert.equal((await t.post(`/v1/leases/${id}/renew`, { progress: { token: SECRET } })).statusCode, 200);
  assert.equal((await t.get(`/v1/leases/${id}`)).statusCode, 200);
  assert.equal((await t.del(`/v1/leases/${id}`)).statusCode, 200);
  assert.equal((await t.post('/v1/orphans/claim', { holder: 'logs-f', kinds: ['resize'] })).statusCode, 200);

  const malformed = await t.app.inject({
    method: 'POST',
    url: '/v1/leases',
    headers: { 'content-type': 'application/json' },
    payload: `{"holder":"logs-g","action":{"payload":"${SECRET}"`,
  });
  assert.equal(malformed.statusCode, 400);
  const unknownField = await t.post('/v1/leases', { ...acquireBody('logs-h', ['l/secret/i-2']), [SECRET]: SECRET });
  assert.equal(unknownField.statusCode, 400);
  const badProgress = await t.post('/v1/leases/no-such-lease/renew', { progress: { token: SECRET }, ttlMs: 'soon' });
  assert.equal(badProgress.statusCode, 400);

  assert.ok(lines.length > 0, 'something was logged');
  const leaks = lines.filter((line) => line.includes(SECRET));
  assert.deepEqual(leaks, [], 'no log line holds a payload');
});

function pick(line: LogLine | undefined, ...keys: string[]): Record<string, unknown> {
  assert.ok(line, `logged: ${keys.join(', ')}`);
  return Object.fromEntries(keys.map((key) => [key, line[key]]));
}
