// The seed's questions under fire: eight conductors hammer overlapping resources of two
// instances while the service is killed with SIGKILL and restarted, and then Redis is.
// Whatever fails in between, two conflicting leases are never held at once, and a lease
// granted after a conflicting one ended always carries a greater fencing token.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { covers } from '../src/http/paths.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { startService, waitUntilServing, type ServiceProcess } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const PATHS = [
  'instances/i-1',
  'instances/i-1/volumes/v-1',
  'instances/i-1/volumes/v-2',
  'instances/i-2',
  'instances/i-2/networks/n-1',
];
const WORKERS = 8;
const RUN_MS = 8000;
const TTL_MS = 1500;

interface Hold {
  worker: number;
  path: string;
  token: number;
  /** The contract: a holder treats its lease as lost ttlMs after it sent the request that granted or renewed it. */
  validUntil: number;
}

let redis: TestRedis;
let service: ServiceProcess;
const env: Record<string, string> = {};

before(async () => {
  redis = await startTestRedis(['--appendfsync', 'always']);
  // Below the ephemeral port range, so the restarted service gets its port back.
  env.PORT = String(10000 + Math.floor(Math.random() * 10000));
  Object.assign(env, { REDIS_URL: redis.url, KEY_PREFIX: 'chaos', REDIS_COMMAND_TIMEOUT_MS: '1000' });
  service = await startService(env);
});
after(async () => {
  service?.child.kill('SIGKILL');
  await redis?.stop();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(`${service.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(3000),
    });
    return { status: res.status, body: await res.json() };
  } catch {
    return undefined; // the service is down or restarting: a conductor would retry later
  }
}

test('under SIGKILLs of the service and of Redis, conflicting leases never overlap and tokens only grow', async () => {
  const held = new Map<number, Hold>();
  const ended: Hold[] = [];
  const violations: string[] = [];
  const statuses = new Map<number, number>();
  let grants = 0;
  const stopAt = Date.now() + RUN_MS;
  const conflicting = (a: string, b: string) => covers(a, b) || covers(b, a);

  async function conductor(worker: number) {
    while (Date.now() < stopAt) {
      const path = PATHS[Math.floor(Math.random() * PATHS.length)]!;
      // A short ttl: leases whose release was lost in a crash free their path again within the run.
      const sentAt = Date.now();
      const granted = await call('POST', '/v1/leases', { holder: `conductor-${worker}`, resources: [{ path }], ttlMs: TTL_MS });
      if (granted) statuses.set(granted.status, (statuses.get(granted.status) ?? 0) + 1);
      if (granted?.status !== 201) {
        await sleep(granted ? 2 : 50);
        continue;
      }
      grants++;
      const hold: Hold = { worker, path, token: granted.body.fencingToken, validUntil: sentAt + TTL_MS };
      for (const other of held.values()) {
        if (Date.now() < other.validUntil && conflicting(other.path, path)) violations.push(`conductor-${worker} got ${path} while conductor-${other.worker} held ${other.path}`);
      }
      for (const before of ended) {
        if (conflicting(before.path, path) && before.token >= hold.token) {
          violations.push(`token ${hold.token} on ${path} is not above ${before.token} of an earlier lease on ${before.path}`);
        }
      }
      held.set(worker, hold);
      await sleep(3);
      const renewSentAt = Date.now();
      if ((await call('POST', `/v1/leases/${granted.body.id}/renew`, {}))?.status === 200) hold.validUntil = renewSentAt + TTL_MS;
      // From the moment the release is sent, another conductor may be granted the path.
      held.delete(worker);
      ended.push(hold);
      await call('POST', `/v1/leases/${granted.body.id}/release`, { outcome: 'completed' });
    }
  }

  async function chaos() {
    await sleep(RUN_MS * 0.2);
    service.child.kill('SIGKILL');
    await service.exited;
    service = await startService(env, { waitReady: false });
    await waitUntilServing(service);

    await sleep(RUN_MS * 0.2);
    await redis.kill();
    await sleep(200);
    await redis.start();
  }

  await Promise.all([...Array.from({ length: WORKERS }, (_, i) => conductor(i)), chaos()]);

  assert.deepEqual(violations, []);
  console.log(`chaos: ${grants} grants, statuses ${JSON.stringify([...statuses])}`);
  assert.ok(grants >= 50, `only ${grants} grants (statuses ${JSON.stringify([...statuses])}): the run did not exercise much`);
  const unexpected = [...statuses.keys()].filter((status) => ![201, 409, 503].includes(status));
  assert.deepEqual(unexpected, [], `statuses seen: ${JSON.stringify([...statuses])}`);
  // The service serves again after both crashes.
  await waitFor(async () => (await call('GET', '/readyz'))?.status === 200, { what: 'the service to be ready' });
});
