// `npm run ha`: the service in Sentinel mode against a local topology on loopback (one
// primary, two replicas, three sentinels, from Debian's redis-server and redis-sentinel),
// with REDIS_MIN_REPLICAS=1 unless the environment says otherwise. It prints how to kill
// the primary and watch the failover, and stops every process on Ctrl-C.
import { runLocalService } from './lib/local-service.js';
import { startSentinelTopology } from './lib/sentinel-topology.js';

async function main(): Promise<void> {
  const topology = await startSentinelTopology({ replicas: 2, sentinels: 3, downAfterMs: 2000, failoverTimeoutMs: 10000 });
  const primary = await topology.primary();
  const port = process.env.PORT ?? '8080';
  const sentinel = topology.sentinels[0]!;
  process.stdout.write(
    [
      '',
      `Redis primary   127.0.0.1:${primary.port} (pid ${primary.pid()})`,
      ...topology.servers.filter((s) => s !== primary).map((s) => `Redis replica   127.0.0.1:${s.port} (pid ${s.pid()})`),
      ...topology.sentinels.map((s) => `Sentinel        127.0.0.1:${s.port} (pid ${s.pid()})`),
      '',
      'Watch the failover in another terminal:',
      `  curl -N http://127.0.0.1:${port}/v1/events &`,
      `  kill -9 ${primary.pid()}      # the primary dies; the sentinels promote a replica within a few seconds`,
      `  REDISCLI_AUTH=${topology.sentinelPassword} redis-cli -p ${sentinel.port} SENTINEL get-master-addr-by-name ${topology.master}`,
      `  curl -s http://127.0.0.1:${port}/metrics | grep -E 'lease_redis_(primary_info|failovers_total|replica_ack)'`,
      '',
    ].join('\n') + '\n',
  );

  runLocalService({ ...topology.env, PORT: port }, () => topology.stop());
}

main().catch((error: unknown) => {
  process.stderr.write(`npm run ha: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
