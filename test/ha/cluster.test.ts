// Redis Cluster mode, for real: three primaries and three replicas (Debian's redis-server,
// joined by redis-cli --cluster create on loopback), two service processes with
// REDIS_CLUSTER_NODES and REDIS_MIN_REPLICAS=1. Namespaces live in one slot each: the core
// lease, orphan and waiting behaviour is checked in namespaces on different primaries, the
// keys of 64 namespaces are counted per primary, and a primary is SIGKILLed under load.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { keySlot, startClusterTopology, type ClusterTopology, type RedisNode } from '../../scripts/lib/cluster-topology.js';
import { fencingInversions, interleavedWriters, lostGrants, routesOf, startConductors, type LoadRecord } from '../helpers/conductor-load.js';
import { loadLibrary } from '../../src/store/scripts.js';
import { startService, type ServiceProcess } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

const KEY_PREFIX = 'cl';

let topology: ClusterTopology;
let services: ServiceProcess[] = [];

/** The slot of a namespace's keys: every key of it carries the hash tag {KEY_PREFIX/namespace}. */
function slotOf(namespace: string): number {
  return keySlot(`{${KEY_PREFIX}/${namespace}}:token`);
}

/** One namespace per primary (the first name of the form `${stem}-N` that lands on each). */
async function namespacePerPrimary(stem: string): Promise<{ namespace: string; primary: RedisNode }[]> {
  const primaries = await topology.primaries();
  const found = new Map<RedisNode, string>();
  for (let n = 0; found.size < primaries.length && n < 1000; n++) {
    const primary = await topology.primaryOfSlot(slotOf(`${stem}-${n}`));
    if (!found.has(primary)) found.set(primary, `${stem}-${n}`);
  }
  assert.equal(found.size, primaries.length, 'a namespace on each primary');
  return [...found].map(([primary, namespace]) => ({ namespace, primary }));
}

async function call(service: ServiceProcess, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${service.url}${path}`, {
    signal: AbortSignal.timeout(10000),
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

function loggedErrors(): string {
  return services
    .flatMap((service, n) => service.output().split('\n').filter((line) => line.includes('"level":50') || line.includes('"level":40')).map((line) => `replica ${n}: ${line}`))
    .slice(-20)
    .join('\n');
}

before(async () => {
  topology = await startClusterTopology({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 1000 });
  services = await Promise.all(
    Array.from({ length: 2 }, () =>
      startService({
        ...topology.env,
        KEY_PREFIX,
        REDIS_MIN_REPLICAS: '1',
        REDIS_COMMAND_TIMEOUT_MS: '1000',
        REDIS_REPLICA_ACK_TIMEOUT_MS: '500',
        REAPER_INTERVAL_MS: '100',
        REAPER_LOCK_MS: '1500',
      }),
    ),
  );
});

after(async () => {
  await Promise.all(
    services.map(async (service) => {
      service.child.kill('SIGKILL');
      await service.exited;
    }),
  );
  await topology?.stop();
});

describe('Cluster mode: the lease contract in namespaces on every primary', { concurrency: false }, () => {
  test('acquire, conflict, renew and release; a path in two namespaces is two resources; tokens rise per namespace', async () => {
    const [a, b] = services;
    for (const { namespace, primary } of await namespacePerPrimary('core')) {
      const v1 = routesOf(namespace);
      const first = await call(a!, 'POST', `${v1}/leases`, { holder: 'h1', resources: [{ path: 'instances/i-1' }], ttlMs: 30000 });
      assert.equal(first.status, 201, `${JSON.stringify(first.json)}\n${loggedErrors()}`);
      // The child path conflicts, through the other service replica.
      const conflict = await call(b!, 'POST', `${v1}/leases`, { holder: 'h2', resources: [{ path: 'instances/i-1/volumes/v-1' }] });
      assert.equal(conflict.status, 409, JSON.stringify(conflict.json));
      // Its keys are on the primary of its slot, not elsewhere.
      const direct = primary.client();
      try {
        assert.equal(await direct.exists(`{${KEY_PREFIX}/${namespace}}:token`), 1, `${namespace}'s keys on its primary`);
      } finally {
        direct.disconnect();
      }
      assert.equal((await call(b!, 'POST', `${v1}/leases/${String(first.json.id)}/renew`, {})).status, 200);
      assert.equal((await call(a!, 'POST', `${v1}/leases/${String(first.json.id)}/release`, { outcome: 'completed' })).status, 200);
      const second = await call(b!, 'POST', `${v1}/leases`, { holder: 'h2', resources: [{ path: 'instances/i-1/volumes/v-1' }] });
      assert.equal(second.status, 201);
      assert.ok(Number(second.json.fencingToken) > Number(first.json.fencingToken), 'a later grant of a namespace has a larger token');
      assert.equal((await call(a!, 'POST', `${v1}/leases/${String(second.json.id)}/release`, {})).status, 200);
    }
    // The same path, held in two namespaces at once.
    const [x, y] = await namespacePerPrimary('same-path');
    const inX = await call(a!, 'POST', `${routesOf(x!.namespace)}/leases`, { holder: 'h', resources: [{ path: 'networks/n-1' }] });
    const inY = await call(a!, 'POST', `${routesOf(y!.namespace)}/leases`, { holder: 'h', resources: [{ path: 'networks/n-1' }] });
    assert.deepEqual([inX.status, inY.status], [201, 201]);
    // A lease of one namespace is not found through another's routes.
    assert.equal((await call(a!, 'GET', `${routesOf(y!.namespace)}/leases/${String(inX.json.id)}`)).status, 404);
  });

  test('an expired lease with an action is orphaned once per namespace, claimed there with a larger token', async (t) => {
    const [a, b] = services;
    const placed = await namespacePerPrimary('orphans');
    // A 503 (with Retry-After) is an answer a client retries; one clean-clone CI run saw these
    // first acquires in new namespaces answer it once, and no run since. What the replicas
    // logged then is shown, so that the cause stays in sight.
    const acquireRetrying = async (namespace: string) => {
      const body = { holder: 'dies', resources: [{ path: 'instances/i-7' }], ttlMs: 1000, action: { kind: 'resize', payload: { to: 'large' } } };
      for (let attempt = 1; ; attempt++) {
        const answer = await call(a!, 'POST', `${routesOf(namespace)}/leases`, body);
        if (answer.status !== 503 || attempt === 5) return answer;
        t.diagnostic(`${namespace}: 503 on attempt ${attempt}: ${JSON.stringify(answer.json)}\n${loggedErrors()}`);
        await sleep(200);
      }
    };
    const dying = await Promise.all(placed.map(({ namespace }) => acquireRetrying(namespace)));
    for (const lease of dying) assert.equal(lease.status, 201, `${JSON.stringify(lease.json)}\n${loggedErrors()}`);
    for (const [i, { namespace }] of placed.entries()) {
      const claimed = await call(b!, 'POST', `${routesOf(namespace)}/orphans/claim`, { holder: 'rescuer', kinds: ['resize'], waitMs: 10000 });
      assert.equal(claimed.status, 200, `${namespace}: ${JSON.stringify(claimed.json)}`);
      const { orphan, lease } = claimed.json as { orphan: { lastLeaseId: string }; lease: { fencingToken: number; id: string } };
      assert.equal(orphan.lastLeaseId, dying[i]!.json.id);
      assert.ok(lease.fencingToken > Number(dying[i]!.json.fencingToken), 'the claim fences out the dead holder');
      // Nothing more to claim there: it was published once.
      assert.equal((await call(b!, 'POST', `${routesOf(namespace)}/orphans/claim`, { holder: 'rescuer', kinds: ['resize'] })).status, 204);
      assert.equal((await call(b!, 'POST', `${routesOf(namespace)}/leases/${lease.id}/release`, { outcome: 'completed' })).status, 200);
    }
  });

  test('a waiting acquire is woken by a release through the other replica (sharded pub/sub on its shard), in each namespace', async () => {
    const [a, b] = services;
    for (const { namespace } of await namespacePerPrimary('waiting')) {
      const v1 = routesOf(namespace);
      const held = await call(a!, 'POST', `${v1}/leases`, { holder: 'first', resources: [{ path: 'instances/i-2' }], ttlMs: 60000 });
      assert.equal(held.status, 201);
      const sentAt = Date.now();
      const waiting = call(b!, 'POST', `${v1}/leases`, { holder: 'second', resources: [{ path: 'instances/i-2' }], waitMs: 15000 });
      await sleep(300);
      assert.equal((await call(a!, 'POST', `${v1}/leases/${String(held.json.id)}/release`, {})).status, 200);
      const granted = await waiting;
      assert.equal(granted.status, 201, `${namespace}: ${JSON.stringify(granted.json)}`);
      // Woken by the notice, not by the end of the wait (nor by a lease's expiry: 60 s).
      assert.ok(Date.now() - sentAt < 5000, `${namespace}: woken after ${Date.now() - sentAt} ms`);
      assert.equal((await call(b!, 'POST', `${v1}/leases/${String(granted.json.id)}/release`, {})).status, 200);
    }
  });

  test("a waiting acquire whose shard's subscriber connection is cut, and whose notice is lost with it, is still granted at once", async () => {
    const [a, b] = services;
    const { namespace, primary } = (await namespacePerPrimary('resubscribe'))[0]!;
    const v1 = routesOf(namespace);
    const held = await call(a!, 'POST', `${v1}/leases`, { holder: 'first', resources: [{ path: 'instances/i-3' }], ttlMs: 60000 });
    assert.equal(held.status, 201);
    const sentAt = Date.now();
    const waiting = call(b!, 'POST', `${v1}/leases`, { holder: 'second', resources: [{ path: 'instances/i-3' }], waitMs: 20000 });
    await sleep(300);
    // Every subscriber connection on that primary is cut, and the release follows at once:
    // its notice is published while nobody is subscribed there.
    const direct = primary.client();
    try {
      assert.ok(Number(await direct.call('CLIENT', 'KILL', 'TYPE', 'pubsub')) >= 1, 'subscriber connections on the primary');
    } finally {
      direct.disconnect();
    }
    assert.equal((await call(a!, 'POST', `${v1}/leases/${String(held.json.id)}/release`, {})).status, 200);
    const granted = await waiting;
    assert.equal(granted.status, 201, `${JSON.stringify(granted.json)}\n${loggedErrors()}`);
    // Subscribed again, the waiter looked again: long before its 20 s were up.
    assert.ok(Date.now() - sentAt < 8000, `granted after ${Date.now() - sentAt} ms`);
    assert.equal((await call(b!, 'POST', `${v1}/leases/${String(granted.json.id)}/release`, {})).status, 200);
  });

  test('/readyz is 200 and /metrics names the three primaries', async () => {
    const primaries = await topology.primaries();
    for (const service of services) {
      assert.equal((await call(service, 'GET', '/readyz')).status, 200);
      const text = await (await fetch(`${service.url}/metrics`)).text();
      for (const primary of primaries) assert.match(text, new RegExp(`lease_redis_primary_info\\{address="127\\.0\\.0\\.1:${primary.port}"\\} 1`));
    }
  });
});

describe('Cluster mode: namespaces spread over the primaries', { concurrency: false }, () => {
  test('the keys of 64 namespaces are on all three primaries, each holding between 20% and 50% of them', async () => {
    const namespaces = Array.from({ length: 64 }, (_, n) => `tenant-${n}`);
    const [a] = services;
    for (const namespace of namespaces) {
      const granted = await call(a!, 'POST', `${routesOf(namespace)}/leases`, { holder: 'spread', resources: [{ path: 'instances/i-1' }], ttlMs: 60000 });
      assert.equal(granted.status, 201, `${namespace}: ${JSON.stringify(granted.json)}`);
    }
    const primaries = await topology.primaries();
    assert.equal(primaries.length, 3);
    // Counted on each primary itself: the keys of each namespace's prefix there.
    const keysPer = await Promise.all(
      primaries.map(async (primary) => {
        const client = primary.client();
        try {
          let keys = 0;
          for (const namespace of namespaces) {
            const [, found] = await client.scan('0', 'MATCH', `{${KEY_PREFIX}/${namespace}}:*`, 'COUNT', 100000);
            keys += found.length;
          }
          return keys;
        } finally {
          client.disconnect();
        }
      }),
    );
    const total = keysPer.reduce((x, y) => x + y, 0);
    const shares = keysPer.map((keys) => keys / total);
    console.log(`keys of 64 namespaces per primary: ${keysPer.join(', ')} (${shares.map((s) => `${(s * 100).toFixed(0)}%`).join(', ')})`);
    for (const share of shares) assert.ok(share >= 0.2 && share <= 0.5, `shares ${shares.map((s) => s.toFixed(2)).join(', ')}`);
  });
});

describe('Cluster mode: SIGKILL of a primary under load, REDIS_MIN_REPLICAS=1', { concurrency: false }, () => {
  // With one replica per primary, the promoted replica has none of its own: with
  // REDIS_MIN_REPLICAS=1 its namespaces can be read at once but take writes (durably) again
  // only once a replica is back. The killed node is restarted as soon as its replica is
  // promoted, as a supervisor would, and rejoins as that one's replica.
  test('its replica takes over; its namespaces answer again within 5 s, the others never stop; no acknowledged lease lost; tokens in order', async () => {
    await topology.heal(20000);
    // Two namespaces per primary, conductors spread over them and over both service replicas.
    const placed = [...(await namespacePerPrimary('load-a')), ...(await namespacePerPrimary('load-b'))];
    const namespaces = placed.map((p) => p.namespace);
    const load = startConductors({ urls: services.map((s) => s.url), conductors: 12, paths: ['instances/i-1', 'instances/i-2'], ttlMs: 2000, abandonEvery: 6, namespaces });
    let record: LoadRecord;
    let killedAt: number;
    let promotedAt: number;
    const victim = placed[0]!.primary;
    const hit = placed.filter((p) => p.primary === victim).map((p) => p.namespace);
    const spared = placed.filter((p) => p.primary !== victim).map((p) => p.namespace);
    try {
      await waitFor(() => namespaces.every((ns) => load.record.grants.some((g) => g.namespace === ns)), { timeoutMs: 15000, what: 'grants in every namespace before the kill' });
      killedAt = Date.now();
      await victim.kill();
      const promoted = await topology.waitForPromotion(victim, 20000);
      promotedAt = Date.now();
      // The killed primary's namespaces are served by the node promoted in its place.
      assert.equal((await topology.primaryOfSlot(slotOf(hit[0]!))).port, promoted.port);
      const restarted = victim.restart();
      // Reads of the killed primary's namespaces are served by the promoted replica at once.
      const before = load.record.grants.find((g) => g.namespace === hit[0] && g.answeredAt < killedAt);
      assert.ok(before, `a grant in ${hit[0]} before the kill`);
      const read = await waitFor(
        async () => {
          const res = await call(services[0]!, 'GET', `${routesOf(before.namespace)}/leases/${before.leaseId}`);
          return res.status === 200 || res.status === 410 ? Date.now() : false;
        },
        { timeoutMs: 5000, what: `a read in ${hit[0]} after the promotion` },
      );
      console.log(`a read in ${hit[0]} answered ${read - promotedAt} ms after the promotion`);
      await restarted;
      await waitFor(() => hit.every((ns) => firstOkAfter(load.record, ns, promotedAt) < Infinity), { timeoutMs: 15000, what: "the killed primary's namespaces to answer 2xx again" }).catch(
        () => {
          throw new Error(`no 2xx in ${hit.join(', ')} within 15 s of the promotion:\n${loggedErrors()}`);
        },
      );
      await sleep(1000);
    } finally {
      record = await load.stop();
    }
    const backAfter = hit.map((ns) => firstOkAfter(record, ns, promotedAt!) - promotedAt!);
    console.log(`promotion ${promotedAt! - killedAt!} ms after the kill; first 2xx after the promotion in ${hit.join(', ')}: ${backAfter.join(', ')} ms`);
    assert.ok(backAfter.every((ms) => ms <= 5000), `first 2xx after the promotion (ms): ${backAfter.join(', ')}`);
    // The other shards' namespaces were served while the victim was down.
    for (const ns of spared) {
      const during = record.okAt.filter((ok) => ok.route.startsWith(`${routesOf(ns)}/`) && ok.at > killedAt! + 200 && ok.at < promotedAt!);
      assert.ok(during.length > 0 || promotedAt! - killedAt! < 500, `${ns} answered nothing while another shard was down`);
    }
    // No status 500 or above but 503; every request answered.
    assert.deepEqual(new Map([...record.statuses].filter(([status]) => status >= 500 && status !== 503)), new Map(), loggedErrors());
    assert.equal(record.networkErrors, 0);
    assert.equal(record.unavailableWithoutRetryAfter, 0);

    // Every lease answered 201 is still known (200, or 410 once ended): none lost with the primary.
    const lost = await lostGrants(record.grants, (grant) => `${services[0]!.url}${routesOf(grant.namespace)}/leases/${grant.leaseId}`, loggedErrors);
    assert.deepEqual(lost.map((grant) => `${grant.namespace}/${grant.leaseId}`), [], 'acknowledged grants lost');
    assert.deepEqual(fencingInversions(record.grants), []);
    assert.deepEqual(interleavedWriters(record.writes), []);

    // Each abandoned lease is orphaned once, in its own namespace, the killed shard's included.
    const abandoned = record.grants.filter((g) => g.abandoned);
    assert.ok(abandoned.some((g) => hit.includes(g.namespace)), "the load abandoned leases on the killed primary's shard");
    await waitFor(
      async () => {
        for (const grant of abandoned) {
          const res = await call(services[1]!, 'GET', `${routesOf(grant.namespace)}/leases/${grant.leaseId}`);
          if (res.status !== 200 || res.json.state !== 'orphaned') return false;
        }
        return true;
      },
      { timeoutMs: 20000, what: 'every abandoned lease to be orphaned' },
    );
    const published = new Map<string, number>();
    for (const ns of namespaces) {
      const primary = (await topology.primaryOfSlot(slotOf(ns))).client();
      try {
        for (const [, fields] of await primary.xrange(`{${KEY_PREFIX}/${ns}}:orphans`, '-', '+')) {
          const leaseId = fields[fields.indexOf('leaseId') + 1]!;
          published.set(leaseId, (published.get(leaseId) ?? 0) + 1);
        }
      } finally {
        primary.disconnect();
      }
    }
    for (const grant of abandoned) assert.equal(published.get(grant.leaseId), 1, `lease ${grant.leaseId} in ${grant.namespace} orphaned ${published.get(grant.leaseId) ?? 0} times`);

    // The killed primary came back as a replica of the promoted one.
    assert.equal(await victim.role(), 'slave');
    // The promoted primary holds the functions library, as every other does.
    assert.equal((await call(services[0]!, 'GET', '/readyz')).status, 200);
    const library = loadLibrary().name;
    for (const primary of await topology.primaries()) {
      const client = primary.client();
      try {
        assert.equal(((await client.call('FUNCTION', 'LIST', 'LIBRARYNAME', library)) as unknown[]).length, 1, `the library on the primary at ${primary.port}`);
      } finally {
        client.disconnect();
      }
    }
  });
});

/** When the first 2xx in `namespace` came at or after `since`, or Infinity. */
function firstOkAfter(record: LoadRecord, namespace: string, since: number): number {
  return record.okAt.find((ok) => ok.route.startsWith(`${routesOf(namespace)}/`) && ok.at >= since)?.at ?? Infinity;
}
