// The Redis Cluster topology the cluster tests and `npm run cluster` stand on
// (scripts/lib/cluster-topology.ts), held to what they rely on: three primaries serving every
// slot, keySlot computing the slots Redis computes, a plain ioredis Cluster client working
// against it, a killed primary's replica taking its slots over, and stop() leaving nothing behind.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Cluster } from 'ioredis';
import { keySlot, SLOTS, startClusterTopology, type ClusterTopology, type RedisNode } from '../scripts/lib/cluster-topology.js';
import { running } from './helpers/processes.js';

let topology: ClusterTopology;

before(async () => {
  topology = await startClusterTopology({ primaries: 3, replicasPerPrimary: 1 });
});
after(async () => {
  await topology?.stop();
});

/** A Cluster client as the service makes one: every node a seed, the password for each. */
function clusterClient(): Cluster {
  const seeds = topology.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
  const client = new Cluster(seeds, { redisOptions: { password: topology.password, connectTimeout: 1000 } });
  client.on('error', () => {});
  return client;
}

async function withClusterClient<T>(use: (client: Cluster) => Promise<T>): Promise<T> {
  const client = clusterClient();
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

test('three primaries serve all 16384 slots between them', async () => {
  const primaries = await topology.primaries();
  assert.equal(primaries.length, 3);
  const roles = await Promise.all(topology.nodes.map((node) => node.role()));
  assert.deepEqual(roles.sort(), ['master', 'master', 'master', 'slave', 'slave', 'slave']);
  const client = primaries[0]!.client();
  try {
    const ranges = (await client.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
    assert.equal(ranges.reduce((sum, [first, last]) => sum + last - first + 1, 0), SLOTS);
    assert.deepEqual(new Set(ranges.map(([, , [, port]]) => port)), new Set(primaries.map((node) => node.port)));
  } finally {
    client.disconnect();
  }
});

test('keySlot agrees with CLUSTER KEYSLOT, {hash tags} included', async () => {
  const keys = ['foo', '123456789', '{lease}:leases', '{lease/cell-1}:leases', '{lease/cell-2}:x', 'a{}b', '{}', 'x{{y}}z', 'a{b}{c}', 'no}tag{', 'ключ', '{ключ}:x'];
  const client = topology.nodes[0]!.client();
  try {
    for (const key of keys) assert.equal(keySlot(key), await client.call('CLUSTER', 'KEYSLOT', key), key);
  } finally {
    client.disconnect();
  }
});

test('a key written through a Cluster client is read back through another', async () => {
  const key = '{lease/cell-1}:probe';
  await withClusterClient(async (client) => {
    // WAIT on the writing connection: the replica has the key before anything is killed.
    const replies = await client.pipeline().set(key, 'written').wait(1, 2000).exec();
    assert.deepEqual(replies, [[null, 'OK'], [null, 1]]);
  });
  assert.equal(await withClusterClient((client) => client.get(key)), 'written');
});

test("a killed primary's replica takes its slots over within 10 s, and the key is still there", async () => {
  const key = '{lease/cell-1}:probe';
  const old = await topology.primaryOfSlot(keySlot(key));
  const client = old.client();
  const role = (await client.call('ROLE')) as [string, number, Array<[string, string, string]>];
  client.disconnect();
  const replicaPorts = role[2].map(([, port]) => Number(port));
  assert.equal(replicaPorts.length, 1);

  const killedAt = Date.now();
  await old.kill();
  const promoted = await topology.waitForPromotion(old, 10000);
  const elapsed = Date.now() - killedAt;
  assert.deepEqual([promoted.port], replicaPorts);
  assert.ok(elapsed < 10000, `${elapsed} ms`);
  assert.equal((await topology.primaryOfSlot(keySlot(key))).port, promoted.port);
  assert.equal(await withClusterClient((cluster) => cluster.get(key)), 'written');
  assert.equal((await topology.primaries()).length, 3);
});

/** ROLE of a node: ["master", ...] or ["slave", host, port, state, offset]. */
async function roleOf(node: RedisNode): Promise<unknown[]> {
  const client = node.client();
  try {
    return (await client.call('ROLE')) as unknown[];
  } finally {
    client.disconnect();
  }
}

test('heal() restarts the killed primary, which rejoins as a replica of the node that took its slots', async () => {
  const [former] = topology.nodes.filter((node) => !node.running());
  assert.ok(former);
  await topology.heal(10000);
  const promoted = await topology.primaryOfSlot(keySlot('{lease/cell-1}:probe'));
  assert.deepEqual((await roleOf(former)).slice(0, 4), ['slave', '127.0.0.1', promoted.port, 'connected']);
});

test('a frozen primary is replaced as a killed one is, and rejoins as a replica once heal() thaws it', async () => {
  const frozen = await topology.primaryOfSlot(keySlot('{lease/cell-2}:x'));
  frozen.freeze();
  const promoted = await topology.waitForPromotion(frozen, 10000);
  assert.equal((await topology.primaryOfSlot(keySlot('{lease/cell-2}:x'))).port, promoted.port);
  await topology.heal(10000);
  assert.deepEqual((await roleOf(frozen)).slice(0, 4), ['slave', '127.0.0.1', promoted.port, 'connected']);
  assert.equal(await withClusterClient((client) => client.get('{lease/cell-1}:probe')), 'written');
});

test('stop() ends every redis-server of the topology, a killed and a frozen one included', async () => {
  await topology.nodes[0]!.kill();
  topology.nodes[1]!.freeze();
  const pids = topology.nodes.map((node) => node.pid());
  assert.equal(pids.filter(running).length, pids.length - 1);
  await topology.stop();
  assert.deepEqual(pids.filter(running), []);
});
