// `npm run cluster`: the service in Cluster mode against a local Redis Cluster on loopback
// (three primaries with one replica each, from Debian's redis-server and redis-cli), with
// REDIS_MIN_REPLICAS=1 unless the environment says otherwise. It prints which primary serves
// which namespace and how to kill one and watch its shard fail over while the other shards
// keep serving; `kill -USR2` brings the killed nodes back. It stops every process on Ctrl-C,
// as `npm run ha` does for Sentinel.
import { runLocalService } from './lib/local-service.js';
import { keySlot, startClusterTopology, type ClusterTopology, type RedisNode } from './lib/cluster-topology.js';

async function main(): Promise<void> {
  // A 2 s node timeout, as `npm run ha` waits 2 s: a failover in a few seconds, and no false
  // alarm when a laptop is busy for a second.
  const topology = await startClusterTopology({ primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 2000 });
  const port = process.env.PORT ?? '8080';
  // The service's keys of a namespace share the hash tag {KEY_PREFIX/namespace}: one slot each.
  const keyPrefix = process.env.KEY_PREFIX ?? 'lease';
  const { lines, namespaces } = await describe(topology, keyPrefix);
  const victim = [...namespaces].find(([, namespace]) => namespace === 'cell-1')?.[0] ?? topology.nodes[0]!;
  const acquire = (namespace: string) =>
    `  curl -s -X POST http://127.0.0.1:${port}/v1/namespaces/${namespace}/leases -H 'content-type: application/json' ` +
    `-d '{"holder":"me","resources":[{"path":"instances/i-1","mode":"exclusive"}],"ttlMs":30000}'`;
  print([
    '',
    ...lines,
    '',
    'Try it in another terminal (one namespace per shard):',
    ...[...namespaces.values()].map(acquire),
    `  curl -N http://127.0.0.1:${port}/v1/namespaces/cell-1/events &`,
    commented(`kill -9 ${victim.pid()}`, "cell-1's primary dies: its replica takes the shard over within a few seconds, the other shards serve on;"),
    commented('', "cell-1's writes then get 503 until the shard has a replica again to confirm them (REDIS_MIN_REPLICAS=1)"),
    commented(`kill -USR2 ${process.pid}`, 'restarts the nodes that are down and thaws frozen ones: the old primary rejoins as a replica'),
    `  REDISCLI_AUTH=${topology.password} redis-cli -p ${topology.nodes.find((node) => node !== victim)!.port} cluster nodes`,
    '',
  ]);

  let healing: Promise<void> | undefined;
  const heal = async () => {
    try {
      await topology.heal(30000);
      print(['', 'Healed:', ...(await describe(topology, keyPrefix)).lines, '']);
    } catch (error) {
      process.stderr.write(`npm run cluster: heal: ${error instanceof Error ? error.message : String(error)}\n`);
    } finally {
      healing = undefined;
    }
  };
  const service = runLocalService({ ...topology.env, PORT: port }, async () => {
    // A heal under way may be restarting a node: stopping before it ends would leave that one running.
    await healing;
    await topology.stop();
  });
  process.on('SIGUSR2', () => {
    if (!service.stopping() && !healing) healing = heal();
  });
}

/** A command line with a comment, the comments of consecutive lines in one column. */
function commented(command: string, comment: string): string {
  return `  ${command.padEnd(20)}  # ${comment}`;
}

function print(lines: string[]): void {
  process.stdout.write(lines.join('\n') + '\n');
}

/** The shards as they are now, and for each primary a namespace it serves. */
async function describe(topology: ClusterTopology, keyPrefix: string): Promise<{ lines: string[]; namespaces: Map<RedisNode, string> }> {
  const primaries = await topology.primaries();
  const namespaces = await namespacesPerPrimary(topology, keyPrefix, primaries);
  return { lines: await describeShards(topology, primaries, namespaces), namespaces };
}

/** For each primary, the first of cell-1, cell-2, ... whose slot it serves (the first 100 cover three shards). */
async function namespacesPerPrimary(topology: ClusterTopology, keyPrefix: string, primaries: RedisNode[]): Promise<Map<RedisNode, string>> {
  const found = new Map<RedisNode, string>();
  for (let n = 1; n <= 100 && found.size < primaries.length; n++) {
    const primary = await topology.primaryOfSlot(keySlot(`{${keyPrefix}/cell-${n}}`));
    if (!found.has(primary)) found.set(primary, `cell-${n}`);
  }
  return found;
}

/** One line per node: each primary with its slots and a namespace it serves, its replicas below it. */
async function describeShards(topology: ClusterTopology, primaries: RedisNode[], namespaces: Map<RedisNode, string>): Promise<string[]> {
  const lines: string[] = [];
  for (const primary of primaries) {
    const { slots, replicaPorts } = await shardOf(primary);
    const namespace = namespaces.get(primary);
    lines.push(`Redis primary   127.0.0.1:${primary.port} (pid ${primary.pid()})  slots ${slots}${namespace ? `  serves ${namespace}` : ''}`);
    for (const replica of topology.nodes.filter((node) => replicaPorts.includes(node.port))) {
      lines.push(`  replica       127.0.0.1:${replica.port} (pid ${replica.pid()})`);
    }
  }
  return lines;
}

/** A primary's slot ranges ("0-5460") from CLUSTER SLOTS, and its replicas' ports from ROLE. */
async function shardOf(primary: RedisNode): Promise<{ slots: string; replicaPorts: number[] }> {
  const client = primary.client();
  try {
    const ranges = (await client.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
    const role = (await client.call('ROLE')) as [string, number, Array<[string, string, string]>];
    return {
      slots: ranges
        .filter(([, , [, port]]) => port === primary.port)
        .map(([first, last]) => (first === last ? `${first}` : `${first}-${last}`))
        .join(','),
      replicaPorts: role[2].map(([, port]) => Number(port)),
    };
  } finally {
    client.disconnect();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`npm run cluster: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
