// High availability on Redis Sentinel, for real: one primary, two replicas and three
// sentinels (Debian's redis-server and redis-sentinel on loopback), three service processes
// in Sentinel mode, and conductors under load through all three while the primary is killed
// (SIGKILL) or frozen (SIGSTOP) until the sentinels promote a replica.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSentinelTopology, type RedisNode, type SentinelTopology } from '../../scripts/lib/sentinel-topology.js';
import { fencingInversions, interleavedWriters, lostGrants as lostGrantsOf, startConductors, type LoadRecord } from '../helpers/conductor-load.js';
import { startService, type ServiceProcess } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

const PATHS = ['instances/i-1', 'instances/i-2', 'instances/i-3', 'instances/i-4'];

let topology: SentinelTopology;
let services: ServiceProcess[] = [];

async function startServices(count: number, env: Record<string, string>): Promise<ServiceProcess[]> {
  const started = await Promise.all(
    Array.from({ length: count }, () =>
      startService({
        ...topology.env,
        KEY_PREFIX: 'failover',
        REAPER_INTERVAL_MS: '100',
        REAPER_LOCK_MS: '1500',
        REDIS_COMMAND_TIMEOUT_MS: '1000',
        REDIS_REPLICA_ACK_TIMEOUT_MS: '500',
        ...env,
      }),
    ),
  );
  services.push(...started);
  return started;
}

async function stopServices(): Promise<void> {
  await Promise.all(
    services.map(async (service) => {
      service.child.kill('SIGKILL');
      await service.exited;
    }),
  );
  services = [];
}

async function metric(service: ServiceProcess, name: string): Promise<number> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

/** Every lease id answered 201 must still be known (200 or a 410 tombstone), never 404. */
async function lostGrants(service: ServiceProcess, record: LoadRecord): Promise<string[]> {
  const lost = await lostGrantsOf(record.grants, (grant) => `${service.url}/v1/leases/${grant.leaseId}`, loggedErrors);
  return lost.map((grant) => grant.leaseId);
}

/** The services' logged errors, to explain a failed assertion. */
function loggedErrors(): string {
  return services
    .flatMap((service, n) => service.output().split('\n').filter((line) => line.includes('"level":50') || line.includes('reaper')).map((line) => `replica ${n}: ${line}`))
    .slice(-30)
    .join('\n');
}

/** Replicas that lead the reaper now, by their metrics. */
async function reaperLeaders(): Promise<number> {
  return (await Promise.all(services.map((s) => metric(s, 'lease_reaper_leader')))).reduce((a, b) => a + b, 0);
}

/** Fail fast: every request got an HTTP answer within 10 s, and every 503 said when to retry. */
function assertFailedFast(record: LoadRecord): void {
  assert.equal(record.networkErrors, 0, 'requests without an answer (refused, broken or hung 10 s)');
  assert.equal(record.unavailableWithoutRetryAfter, 0, '503 answers without Retry-After');
}

function statusesAbove499(record: LoadRecord): Map<number, number> {
  return new Map([...record.statuses].filter(([status]) => status >= 500 && status !== 503));
}

/** The first 2xx each service gave after `since` (ms after it), or Infinity. */
function recoveryTimes(record: LoadRecord, since: number): number[] {
  return services.map((service) => {
    const first = record.okAt.find((ok) => ok.url === service.url && ok.at >= since);
    return first ? first.at - since : Infinity;
  });
}

async function runFailover(fault: (primary: RedisNode) => Promise<void> | void, { abandonEvery = 0 } = {}) {
  // A node a previous test killed is back, as a replica: the topology is whole again (a
  // restarted primary serves as one until the sentinels turn it into a replica, then syncs
  // in full: on a slow machine, more than 20 s once).
  await topology.heal(45000);
  const load = startConductors({ urls: services.map((s) => s.url), conductors: 6, paths: PATHS, ttlMs: 2000, abandonEvery });
  await waitFor(() => load.record.grants.length >= 20, { timeoutMs: 15000, what: 'grants before the fault' });
  const oldPrimary = await topology.primary();
  const readyzBefore = await Promise.all(services.map(async (s) => (await fetch(`${s.url}/readyz`)).status));
  assert.deepEqual(readyzBefore, services.map(() => 200));
  const grantsBefore = load.record.grants.length;
  await waitFor(async () => (await reaperLeaders()) === 1, { timeoutMs: 10000, what: 'one reaper leader before the fault' });
  try {
    await fault(oldPrimary);
    const newPrimary = await topology.waitForNewPrimary(oldPrimary, 20000);
    const promotedAt = Date.now();
    // Load goes on until every replica answered 2xx again, and a little longer.
    await waitFor(() => recoveryTimes(load.record, promotedAt).every(Number.isFinite), { timeoutMs: 15000 }).catch(() => {
      const tails = services.map((service) => `${service.url}:\n${service.output().split('\n').slice(-8).join('\n')}`).join('\n');
      throw new Error(`not every replica answered 2xx within 15 s of the promotion (${recoveryTimes(load.record, promotedAt).join(', ')}):\n${tails}`);
    });
    await sleep(1000);
    return { record: await load.stop(), oldPrimary, newPrimary, promotedAt, grantsBefore };
  } finally {
    await load.stop();
  }
}

before(async () => {
  topology = await startSentinelTopology({ replicas: 2, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 5000 });
});

after(async () => {
  await stopServices();
  await topology?.stop();
});

describe('Sentinel mode with REDIS_MIN_REPLICAS=1, three service replicas', { concurrency: false }, () => {
  before(async () => {
    await startServices(3, { REDIS_MIN_REPLICAS: '1' });
  });
  after(stopServices);

  test('a state change that no replica confirms in time is 503 with Retry-After; retried with its requestId it returns the same lease', async () => {
    const [service] = services;
    const replicas = topology.servers.filter((s) => s !== undefined);
    const primary = await topology.primary();
    const frozen = replicas.filter((s) => s !== primary);
    for (const replica of frozen) replica.freeze();
    const body = { holder: 'shortfall', resources: [{ path: 'volumes/v-shortfall' }], ttlMs: 30000, requestId: 'shortfall-1' };
    let first: Response;
    try {
      first = await fetch(`${service!.url}/v1/leases`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    } finally {
      for (const replica of frozen) replica.thaw();
    }
    assert.equal(first.status, 503);
    assert.equal(first.headers.get('retry-after'), '1');
    const problem = (await first.json()) as { code: string; detail: string };
    assert.equal(problem.code, 'backend_unavailable');
    assert.match(problem.detail, /replicas required/);
    assert.ok((await metric(service!, 'lease_redis_replica_ack_shortfalls_total')) >= 1);

    // The grant was applied on the primary: the retry finds it by requestId.
    const retried = await waitFor(
      async () => {
        const res = await fetch(`${service!.url}/v1/leases`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return res.status === 503 ? false : res;
      },
      { timeoutMs: 10000, what: 'the replicas to confirm again' },
    );
    assert.ok(retried.status === 200 || retried.status === 201, `retry answered ${retried.status}`);
    const lease = (await retried.json()) as { id: string; holder: string };
    assert.equal(lease.holder, 'shortfall');
    const release = await fetch(`${service!.url}/v1/leases/${lease.id}/release`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(release.status, 200);
  });

  test('SIGKILL of a primary whose replicas lag: answers resume within 5 s of the promotion, no 5xx but 503, no acknowledged grant lost, tokens in order', async () => {
    const readyzDuring: number[] = [];
    const { record, oldPrimary, newPrimary, promotedAt } = await runFailover(async (primary) => {
      await killWithLaggingReplicas(primary);
      // /readyz says so while the primary is gone.
      for (const service of services) readyzDuring.push((await fetch(`${service.url}/readyz`)).status);
    }, { abandonEvery: 5 });
    assert.notEqual(newPrimary, oldPrimary);
    assert.ok(readyzDuring.includes(503), `readyz during the failover: ${readyzDuring.join(',')}`);

    const recovery = recoveryTimes(record, promotedAt);
    console.log(`first 2xx after the promotion, per replica: ${recovery.join(', ')} ms`);
    assert.ok(recovery.every((ms) => ms <= 5000), `first 2xx after the promotion, per replica (ms): ${recovery.join(', ')}`);
    assert.deepEqual(statusesAbove499(record), new Map(), `no status 500 or above other than 503; logged: ${loggedErrors()}`);
    assertFailedFast(record);
    assert.ok(record.grants.length > 20);

    assert.deepEqual(await lostGrants(services[0]!, record), [], 'every grant answered 201 is on the new primary');
    assert.deepEqual(fencingInversions(record.grants), []);
    assert.deepEqual(interleavedWriters(record.writes), []);

    // Each replica saw the primary move, and names the one the sentinels name now. (Now and
    // then the sentinels fail over a second time, from the replica they promoted first to the
    // other, while it resyncs: the service follows, and the primary to expect is the current one.)
    const currentPrimary = await topology.primary();
    for (const service of services) {
      assert.ok((await metric(service, 'lease_redis_failovers_total')) >= 1, 'failovers seen');
      await waitFor(
        async () => new RegExp(`lease_redis_primary_info\\{address="127\\.0\\.0\\.1:${currentPrimary.port}"\\} 1`).test(await (await fetch(`${service.url}/metrics`)).text()),
        { timeoutMs: 10000, what: `${service.url} to name the primary at ${currentPrimary.port} (first promoted: ${newPrimary.port})` },
      );
    }

    // The killed primary comes back as a replica of the new one, and the topology is whole
    // again: with REDIS_MIN_REPLICAS=1 the reaper's sweeps (acknowledged writes) wait for a
    // replica in sync, which a second failover can leave the primary without for a while.
    await oldPrimary.restart();
    await waitFor(async () => (await oldPrimary.role()) === 'slave', { timeoutMs: 20000, what: 'the old primary to rejoin as a replica' });
    await topology.heal(45000);

    // One reaper leader again, and each abandoned lease orphaned once.
    await waitFor(async () => (await reaperLeaders()) === 1, {
      timeoutMs: 10000,
      what: 'one reaper leader after the failover',
    });
    await assertEachOrphanPublishedOnce(record);
  });

  test('SIGSTOP of the primary until the sentinels fail over, then SIGCONT: it rejoins as a replica and nothing it took meanwhile was acknowledged', async () => {
    let frozen: RedisNode | undefined;
    const { record, oldPrimary } = await runFailover((primary) => {
      frozen = primary;
      primary.freeze();
    });
    frozen!.thaw();
    await waitFor(async () => (await oldPrimary.role()) === 'slave', { timeoutMs: 20000, what: 'the thawed primary to rejoin as a replica' });
    assert.deepEqual(statusesAbove499(record), new Map(), `no status 500 or above other than 503; logged: ${loggedErrors()}`);
    assertFailedFast(record);
    // Writes it took in before or after the freeze and that no replica had were never
    // confirmed (WAIT), so no client holds an answer for them: every 201 is still there.
    await sleep(500);
    assert.deepEqual(await lostGrants(services[0]!, record), [], 'every grant answered 201 is on the new primary');
    assert.deepEqual(fencingInversions(record.grants), []);
    assert.deepEqual(interleavedWriters(record.writes), []);
  });
});

describe('Sentinel mode: what a service replica keeps across failovers, without a restart', { concurrency: false }, () => {
  const events: { type: string; leaseId?: string }[] = [];
  let closeStream: () => void = () => {};
  before(async () => {
    await startServices(3, { REDIS_MIN_REPLICAS: '1' });
    // Opened before the failover, read after it.
    const controller = new AbortController();
    const res = await fetch(`${services[1]!.url}/v1/events`, { signal: controller.signal });
    assert.equal(res.status, 200);
    closeStream = () => controller.abort();
    void (async () => {
      let buffer = '';
      const decoder = new TextDecoder();
      for await (const chunk of res.body!) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end; (end = buffer.indexOf('\n\n')) >= 0; buffer = buffer.slice(end + 2)) {
          const data = buffer.slice(0, end).split('\n').find((line) => line.startsWith('data: '));
          if (data) events.push(JSON.parse(data.slice(6)) as { type: string; leaseId?: string });
        }
      }
    })().catch(() => {});
    await runFailover((primary) => primary.kill());
    // The killed primary back as a replica, and every replica in sync again: with
    // REDIS_MIN_REPLICAS=1 a write right after a promotion may find its replicas resyncing
    // (503, not durable yet), which is not what these tests are about.
    await topology.heal(20000);
  });
  after(async () => {
    closeStream();
    await stopServices();
  });

  test('an event stream opened before the failover carries the events after it', async () => {
    const [a, b] = services;
    const lease = await post(a!, '/v1/leases', { holder: 'after-failover', resources: [{ path: 'networks/n-events' }] });
    assert.equal(lease.status, 201, await lease.clone().text());
    const { id } = (await lease.json()) as { id: string };
    await waitFor(() => events.some((e) => e.type === 'granted' && e.leaseId === id), { timeoutMs: 10000, what: `the grant of ${id} on the stream of ${b!.url}` });
  });

  test('a waiting acquire is woken by a release on another replica (the subscription moved to the new primary)', async () => {
    const [a, b, c] = services;
    const first = await post(a!, '/v1/leases', { holder: 'first', resources: [{ path: 'networks/n-wait' }], ttlMs: 60000 });
    assert.equal(first.status, 201, await first.clone().text());
    const { id } = (await first.json()) as { id: string };
    const sentAt = Date.now();
    const waiting = post(b!, '/v1/leases', { holder: 'second', resources: [{ path: 'networks/n-wait' }], waitMs: 20000 });
    await sleep(300);
    assert.equal((await post(c!, `/v1/leases/${id}/release`, {})).status, 200);
    const granted = await waiting;
    assert.equal(granted.status, 201);
    // Woken by the notice, not by the end of its wait.
    assert.ok(Date.now() - sentAt < 10000, `woken after ${Date.now() - sentAt} ms`);
  });

  test('a waiting claim gets the orphan that another replica publishes', async () => {
    const [a, b] = services;
    const sentAt = Date.now();
    const claim = post(b!, '/v1/orphans/claim', { holder: 'claimer', kinds: ['after-failover'], waitMs: 20000 });
    const dying = await post(a!, '/v1/leases', { holder: 'dies', resources: [{ path: 'networks/n-orphan' }], ttlMs: 1000, action: { kind: 'after-failover' } });
    assert.equal(dying.status, 201, await dying.clone().text());
    const { id } = (await dying.json()) as { id: string };
    const claimed = await claim;
    assert.equal(claimed.status, 200);
    const body = (await claimed.json()) as { orphan: { lastLeaseId: string } };
    assert.equal(body.orphan.lastLeaseId, id);
    assert.ok(Date.now() - sentAt < 10000, `claimed after ${Date.now() - sentAt} ms`);
  });
});

function post(service: ServiceProcess, path: string, body: unknown): Promise<Response> {
  return fetch(`${service.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('Sentinel mode with REDIS_MIN_REPLICAS=0', { concurrency: false }, () => {
  before(async () => {
    await startServices(1, { REDIS_MIN_REPLICAS: '0' });
  });
  after(stopServices);

  test('SIGKILL of a primary whose replicas lag: no 5xx but 503, tokens still in order over the lost grants; the lost are counted', async () => {
    const { record, oldPrimary } = await runFailover(killWithLaggingReplicas);
    assert.deepEqual(statusesAbove499(record), new Map(), `no status 500 or above other than 503; logged: ${loggedErrors()}`);
    assertFailedFast(record);
    const lost = await lostGrants(services[0]!, record);
    console.log(`REDIS_MIN_REPLICAS=0: ${lost.length} of ${record.grants.length} grants answered 201 were lost in the failover`);
    assert.deepEqual(fencingInversions(record.grants), []);
    assert.deepEqual(interleavedWriters(record.writes), []);
    await oldPrimary.restart();
  });
});

/**
 * The replicas lose the primary for a moment (frozen, and their links cut, so what the
 * primary writes meanwhile never reaches them), then the primary dies: whichever replica is
 * promoted misses the primary's last writes.
 */
async function killWithLaggingReplicas(primary: RedisNode): Promise<void> {
  const replicas = topology.servers.filter((server) => server !== primary);
  for (const replica of replicas) replica.freeze();
  try {
    const client = primary.client();
    await client.client('KILL', 'TYPE', 'replica').finally(() => client.disconnect());
    await sleep(600);
    await primary.kill();
  } finally {
    for (const replica of replicas) replica.thaw();
  }
}

/**
 * Every lease left to expire with an action is orphaned, once: one entry in the orphans
 * stream on the current primary, however many reapers led across the failover.
 */
async function assertEachOrphanPublishedOnce(record: LoadRecord): Promise<void> {
  const abandoned = record.grants.filter((g) => g.abandoned).map((g) => g.leaseId);
  assert.ok(abandoned.length > 0, 'the load abandoned some leases');
  const primary = (await topology.primary()).client();
  let byLease = new Map<string, string[]>();
  try {
    const published = await waitFor(
      async () => {
        const entries = await primary.xrange('{failover}:orphans', '-', '+');
        byLease = new Map<string, string[]>();
        for (const [, fields] of entries) {
          const field = (name: string) => fields[fields.indexOf(name) + 1]!;
          const orphanIds = byLease.get(field('leaseId')) ?? [];
          byLease.set(field('leaseId'), [...orphanIds, field('orphanId')]);
        }
        return abandoned.every((id) => byLease.has(id)) && byLease;
      },
      { timeoutMs: 20000 },
    ).catch(async () => {
      // Say what became of the ones missing, and what the replicas logged.
      const missing = abandoned.filter((id) => !byLease.has(id));
      const states = await Promise.all(missing.map(async (id) => `${id}: ${await (await fetch(`${services[0]!.url}/v1/leases/${id}`)).text()}`));
      throw new Error(`no orphan within 20 s for ${missing.length} of ${abandoned.length} abandoned leases:\n${states.join('\n')}\n${loggedErrors()}`);
    });
    for (const [leaseId, orphanIds] of published) assert.equal(orphanIds.length, 1, `lease ${leaseId} was orphaned ${orphanIds.length} times`);
  } finally {
    primary.disconnect();
  }
}
