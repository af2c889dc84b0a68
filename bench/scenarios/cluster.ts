// What spreading namespaces over the primaries of a Redis Cluster costs and carries, measured
// side by side in the same run: a cluster of 1 primary against one of 3.
//
// Each side is a Redis Cluster on loopback of its own (scripts/lib/cluster-topology.ts), of 1
// primary and of 3, without replicas (they would only add replication CPU; nothing waits for
// them here), persisting as the private Redis does (append-only file, everysec). Each has a lease
// service in a child process, started as the bench's own is (`node --import tsx src/main.ts`,
// LOG_LEVEL=warn), in Cluster mode, with a KEY_PREFIX of its own. Both run the cycle scenario's
// workload, acquire + release pairs on new paths, spread evenly over 64 namespaces (bench-ns-0
// ... bench-ns-63; a namespace's keys share the hash tag {KEY_PREFIX/namespace}, so each is one
// slot on one primary), from the run's connections. Every namespace is registered (its first
// acquire) and each side warmed up before it is measured, alternately in rounds of A B B A
// (replica-acks' plan: two rounds, a quarter of --duration per phase; smoke: one round), each
// phase right after an AOF rewrite of every primary of its side.
//
// This machine's cores (two, here) are shared by the load generator, the service and every
// Redis, and the first two saturate long before three primaries do: the 3-primary side is not
// expected to be 3x faster here, and its pairs/s says little about a cluster. What carries over
// is the Redis CPU per pair on each shard (INFO cpu: used_cpu_user + used_cpu_sys of a primary
// over a phase, divided by the pairs of the namespaces it serves, found with keySlot and CLUSTER
// SLOTS) and how evenly the namespaces spread (each primary's share of the script calls, INFO
// commandstats). To tell what that CPU went to, two more readings: each side's idle CPU
// (serverCron, the cluster bus, the reaper's sweep of every namespace each interval), read on
// its shards while the other side is measured and subtracted in a second figure; and the
// scripts' run time (commandstats usec: wall clock, so a busy machine inflates it).
//
// From those, a capacity model: a primary runs scripts on one thread, so one core carries 1e6 /
// (Redis µs per pair, 3-primary side) pairs a second, and N primaries carry N times that times
// their balance: the busiest primary saturates first, so the balance is the mean share over the
// largest (measured for 3; for 6, predicted from where redis-cli would put these namespaces'
// slots). The evenness target is the smallest share x N instead, which can read higher than the
// balance (19 / 20 / 25 namespaces: evenness 0.89, balance 0.85), so the model does not use it.
//
// Then the reaper, which sweeps every namespace: on the 3-primary side, leases with an action and
// ttlMs 1000 in every namespace (a few each, in waves) expire unrenewed, and each one's delay from
// its expiresAt (as its 201 said) to its entry on its namespace's orphans stream (the entry id's
// ms, Redis' clock, read on the slot's primary: bench/lib/orphans.ts) is measured, against the
// orphans scenario's budget: REAPER_INTERVAL_MS (the service's default, 1000, unless this
// environment sets it) + 100 ms.
//
// The targets are ratios (COMPARISONS in index.ts), never timed assertions: Redis CPU per pair
// on 3 primaries within 1.3x of 1 primary (sharding should not make a pair dearer), evenness at
// least 0.8 of perfectly even, publication p99 within its budget. An answer but 201/200, a
// topology or service that would not start, or an orphan published twice fails the scenario
// (keeping what it measured). Both topologies and services are this scenario's alone, started
// and stopped here whatever happens; the private Redis and the shared service child are left
// alone.
import { availableParallelism } from 'node:os';
import { Redis } from 'ioredis';
import { SLOTS, startClusterTopology, type ClusterTopology } from '../../scripts/lib/cluster-topology.js';
import { namespaceKeyPrefix } from '../../src/namespaces/names.js';
import { onCleanup, trackChild } from '../lib/cleanup.js';
import {
  namespacedLeaseApi,
  namespaceSlot,
  namespacesPerPrimary,
  pairsAcross,
  readShard,
  slotOwners,
  type ShardReading,
  type SpreadPairs,
} from '../lib/cluster-load.js';
import type { Context } from '../lib/context.js';
import { checkLoad, pooledLatency, runLoad, type LoadResult, type LoadSpec } from '../lib/http-load.js';
import { JsonClient } from '../lib/json-client.js';
import { acquireExpiringLeases, collectPublications, type ExpiringPlan, type Publication } from '../lib/orphans.js';
import { runPool } from '../lib/pool.js';
import { compactAof } from '../lib/redis-info.js';
import { ScenarioFailure } from '../lib/scenario-failure.js';
import { startChildServer, type ChildServer } from '../lib/service-process.js';
import { roundsOf, warmUpSides } from '../lib/side-by-side.js';
import { formatMs, formatNumber, summarize } from '../lib/stats.js';
import { figure, type Figure, type Scenario, type ScenarioResult } from './types.js';

const NAMESPACES = Array.from({ length: 64 }, (_, i) => `bench-ns-${i}`);
/** A B B A rounds of a full run (smoke: one); each side is measured --duration seconds in all (smoke: half). */
const ROUNDS = 2;
/** Nothing fails over here: a node timeout well above a busy second, so no false alarm moves a slot mid-phase. */
const NODE_TIMEOUT_MS = 5_000;
/** Primary counts the capacity model is printed for. */
const MODEL_PRIMARIES = [1, 3, 6];
/** Expiring leases per namespace (one per wave), and the gap between waves: expiries spread over a few reaper intervals. */
const EXPIRING_PER_NAMESPACE = { full: 8, smoke: 2 };
const WAVE_GAP_MS = 250;
/** Slack over the budget before an orphan that has not appeared counts as never published. */
const PUBLICATION_GRACE_MS = 5_000;

interface Shard {
  port: number;
  probe: Redis;
  /** The namespaces whose slot it serves. */
  namespaces: string[];
}

interface ShardPhase {
  port: number;
  pairs: number;
  cpuS: number;
  scriptCalls: number;
  scriptUs: number;
  aofRewriteDuring: boolean;
}

interface ClusterPhase {
  load: LoadResult;
  /** Between the readings before and after the load. */
  seconds: number;
  serviceCpuS: number;
  clientCpuS: number;
  shards: ShardPhase[];
}

interface Side {
  /** "3 primaries" */
  label: string;
  /** Figure keys end with it: pairsOne, pairsThree. */
  suffix: 'One' | 'Three';
  primaries: number;
  keyPrefix: string;
  service: ChildServer;
  workload: SpreadPairs;
  spec: LoadSpec;
  /** In slot order. */
  shards: Shard[];
  phases: ClusterPhase[];
  /**
   * CPU seconds of each shard while the other side was measured: what its Redis spends
   * without a request (serverCron, the cluster bus, the reaper's sweep of every namespace).
   */
  idle: { seconds: number; cpuS: number[] }[];
}

/** A side's phases pooled: pairs/s, and per shard the share of the script calls and the Redis CPU per pair. */
interface Pooled {
  pairsPerS: number;
  pairs: number;
  /** Redis CPU µs per pair over every shard of the side (the pair-weighted mean of the shards'). */
  redisUs: number;
  /** The same less what the shards spend idle over as long. */
  redisBusyUs: number;
  /**
   * µs the scripts ran per pair (commandstats usec): wall-clock time, not CPU, so on a busy
   * machine a script preempted midway counts its wait too, and this may exceed redisUs.
   */
  scriptUs: number;
  serviceUs: number;
  clientUs: number;
  scriptCallsPerPair: number;
  shards: { port: number; namespaces: number; share: number; pairs: number; redisUs: number; scriptUs: number; idleCpuMsPerS: number }[];
  /** The smallest share of the script calls x the primaries: 1 when even. */
  evenness: number;
  /** The mean share / the largest: what the busiest primary lets the others carry (1 when even). */
  balance: number;
  aofRewriteDuring: boolean;
}

function pool(side: Side, phases = side.phases): Pooled {
  const sum = (of: (p: ClusterPhase) => number) => phases.reduce((total, p) => total + of(p), 0);
  // The releases answered 200 in each shard's namespaces (autocannon counts the same 200s).
  const pairs = sum((p) => p.shards.reduce((total, s) => total + s.pairs, 0));
  const scriptCalls = sum((p) => p.shards.reduce((total, s) => total + s.scriptCalls, 0));
  const idleSeconds = side.idle.reduce((total, span) => total + span.seconds, 0);
  const shards = side.shards.map((shard, i) => {
    const shardPairs = sum((p) => p.shards[i]!.pairs);
    return {
      port: shard.port,
      namespaces: shard.namespaces.length,
      share: sum((p) => p.shards[i]!.scriptCalls) / scriptCalls,
      pairs: shardPairs,
      redisUs: (sum((p) => p.shards[i]!.cpuS) * 1e6) / shardPairs,
      scriptUs: sum((p) => p.shards[i]!.scriptUs) / shardPairs,
      idleCpuMsPerS: (side.idle.reduce((total, span) => total + span.cpuS[i]!, 0) * 1e3) / idleSeconds,
    };
  });
  const shares = shards.map((s) => s.share);
  const redisCpuS = sum((p) => p.shards.reduce((total, s) => total + s.cpuS, 0));
  const idleCpuS = (shards.reduce((total, s) => total + s.idleCpuMsPerS, 0) / 1e3) * sum((p) => p.seconds);
  return {
    pairsPerS: sum((p) => p.load.statuses['200'] ?? 0) / sum((p) => p.load.durationS),
    pairs,
    redisUs: (redisCpuS * 1e6) / pairs,
    redisBusyUs: ((redisCpuS - idleCpuS) * 1e6) / pairs,
    scriptUs: sum((p) => p.shards.reduce((total, s) => total + s.scriptUs, 0)) / pairs,
    serviceUs: (sum((p) => p.serviceCpuS) * 1e6) / pairs,
    clientUs: (sum((p) => p.clientCpuS) * 1e6) / pairs,
    scriptCallsPerPair: scriptCalls / pairs,
    shards,
    evenness: Math.min(...shares) * shares.length,
    balance: 1 / (Math.max(...shares) * shares.length),
    aofRewriteDuring: phases.some((p) => p.shards.some((s) => s.aofRewriteDuring)),
  };
}

const percent = (share: number) => `${(100 * share).toFixed(0)}%`;

/** "31% / 35% / 34% of the script calls (21 / 22 / 21 namespaces); Redis 184 / 190 / 186 µs CPU per pair" */
function describeShards(pooled: Pooled): string {
  const each = (of: (s: Pooled['shards'][number]) => string) => pooled.shards.map(of).join(' / ');
  return (
    `${each((s) => percent(s.share))} of the script calls (${each((s) => String(s.namespaces))} namespaces); ` +
    `Redis ${each((s) => s.redisUs.toFixed(0))} µs CPU per pair`
  );
}

function startClusterService(ctx: Context, side: { label: string; keyPrefix: string }, topology: ClusterTopology): Promise<ChildServer> {
  return startChildServer({
    name: `lease service (cluster of ${side.label})`,
    script: 'src/main.ts',
    env: {
      ...ctx.serverEnv,
      ...topology.env,
      // Cluster mode: neither of the other modes even if this environment names one (empty counts as unset).
      REDIS_URL: '',
      REDIS_SENTINELS: '',
      // No replicas to wait for.
      REDIS_MIN_REPLICAS: '0',
      KEY_PREFIX: side.keyPrefix,
      LOG_LEVEL: 'warn',
    },
    readyPath: '/readyz',
  });
}

/** The side's primaries in slot order, each with a probe and the namespaces it serves (keySlot + CLUSTER SLOTS). */
async function shardsOf(topology: ClusterTopology, keyPrefix: string, probes: Redis[]): Promise<Shard[]> {
  const probeOf = (port: number) => {
    const probe = new Redis({ host: '127.0.0.1', port, password: topology.password, maxRetriesPerRequest: 1 });
    probe.on('error', () => {});
    probes.push(probe);
    return probe;
  };
  const first = probeOf(topology.nodes[0]!.port);
  const ownerOf = await slotOwners(first);
  const ports = [...new Set(Array.from({ length: SLOTS }, (_, slot) => ownerOf(slot)))];
  return ports.map((port) => ({
    port,
    probe: port === topology.nodes[0]!.port ? first : probeOf(port),
    namespaces: NAMESPACES.filter((namespace) => ownerOf(namespaceSlot(keyPrefix, namespace)) === port),
  }));
}

/** The first acquire in a namespace registers it: one pair in each, so the measurement never pays for one. */
async function registerNamespaces(side: Side): Promise<void> {
  const client = new JsonClient(side.service.url, 8);
  try {
    await runPool(NAMESPACES.length, 8, async (i) => {
      const base = `/v1/namespaces/${NAMESPACES[i]}/leases`;
      const lease = await client.expect<{ id: string }>(201, 'POST', base, { holder: 'registrar', resources: [{ path: 'registration' }], ttlMs: 60_000 });
      await client.expect(200, 'POST', `${base}/${lease.id}/release`, {});
    });
  } finally {
    client.close();
  }
}

/** One measured phase of `side`; `other` sits idle meanwhile, and its shards' CPU is read as their idle cost. */
async function measure(ctx: Context, side: Side, other: Side, name: string, phaseS: number): Promise<void> {
  ctx.progress(`  ${name} ${side.label}: ${phaseS} s at ${side.spec.connections} connections`);
  const compacting = Math.max(...(await Promise.all(side.shards.map((shard) => compactAof(shard.probe)))));
  if (compacting > 0.5) ctx.progress(`    (compacted the append-only files first: ${compacting.toFixed(1)} s)`);
  side.workload.reset();
  const read = (of: Side) => Promise.all(of.shards.map((shard) => readShard(shard.probe)));
  const [before, idleBefore] = await Promise.all([read(side), read(other)]);
  const startedAt = performance.now();
  const serviceBefore = side.service.cpuSeconds();
  const clientBefore = process.cpuUsage();
  const load = await runLoad(side.spec, { durationS: phaseS });
  const client = process.cpuUsage(clientBefore);
  const serviceCpuS = side.service.cpuSeconds() - serviceBefore;
  const [after, idleAfter] = await Promise.all([read(side), read(other)]);
  const seconds = (performance.now() - startedAt) / 1000;
  checkLoad(`${name} ${side.label}`, side.spec, load);
  other.idle.push({ seconds, cpuS: idleAfter.map((reading, i) => reading.cpuS - idleBefore[i]!.cpuS) });
  const delta = (i: number, of: (r: ShardReading) => number) => of(after[i]!) - of(before[i]!);
  const phase: ClusterPhase = {
    load,
    seconds,
    serviceCpuS,
    clientCpuS: (client.user + client.system) / 1e6,
    shards: side.shards.map((shard, i) => ({
      port: shard.port,
      pairs: shard.namespaces.reduce((total, namespace) => total + (side.workload.released.get(namespace) ?? 0), 0),
      cpuS: delta(i, (r) => r.cpuS),
      scriptCalls: delta(i, (r) => r.scriptCalls),
      scriptUs: delta(i, (r) => r.scriptUs),
      aofRewriteDuring: delta(i, (r) => r.aofRewrites) > 0 || before[i]!.aofBusy || after[i]!.aofBusy,
    })),
  };
  side.phases.push(phase);
  const pooled = pool(side, [phase]);
  const acquire = pooledLatency([load], 201);
  ctx.progress(
    `    ${formatNumber(pooled.pairsPerS)} pairs/s, acquire p50 ${formatMs(acquire.p50)} p99 ${formatMs(acquire.p99)}; ${describeShards(pooled)}; ` +
      `service ${pooled.serviceUs.toFixed(0)} µs CPU per pair${pooled.aofRewriteDuring ? '; an AOF rewrite ran meanwhile' : ''}`,
  );
}

function sideFigures(side: Side, pooled: Pooled): Record<string, Figure> {
  const acquire = pooledLatency(
    side.phases.map((p) => p.load),
    201,
  );
  const { suffix, label } = side;
  return {
    [`pairs${suffix}`]: figure(`acquire+release pairs/s, ${label}`, pooled.pairsPerS, 'pairs/s'),
    [`p50${suffix}`]: figure(`acquire p50, ${label}`, acquire.p50, 'ms'),
    [`p99${suffix}`]: figure(`acquire p99, ${label}`, acquire.p99, 'ms'),
    // No µs unit in the table: a count, named in the label.
    [`redisUs${suffix}`]: figure(`Redis CPU µs per pair, ${label} (all shards)`, pooled.redisUs, 'count'),
    [`shards${suffix}`]: figure(`per shard, ${label}`, Number.NaN, 'text', describeShards(pooled)),
    [`cpu${suffix}`]: figure(
      `CPU per pair, ${label}`,
      Number.NaN,
      'text',
      `Redis ${pooled.redisUs.toFixed(0)} (${pooled.redisBusyUs.toFixed(0)} less its idle ` +
        `${pooled.shards.map((s) => s.idleCpuMsPerS.toFixed(1)).join(' / ')} ms CPU/s), service ${pooled.serviceUs.toFixed(0)}, ` +
        `client ${pooled.clientUs.toFixed(0)} µs; scripts ${pooled.scriptCallsPerPair.toFixed(2)} calls, ${pooled.scriptUs.toFixed(0)} µs run time per pair` +
        (pooled.aofRewriteDuring ? '; an AOF rewrite ran during a phase' : ''),
    ),
  };
}

/**
 * The capacity model. A primary runs scripts on one thread: one core, at 1e6 / µs-per-pair
 * pairs a second. N primaries saturate when the busiest does, at that rate / its share of
 * the work: N x per core x balance (mean share / largest share). For 3 the balance is the
 * one measured; for 6 it is predicted from where redis-cli would put these 64 namespaces'
 * slots (equal traffic per namespace, as here).
 */
function capacityModel(three: Pooled, keyPrefix: string): { perCore: number; rows: { primaries: number; balance: number; source: string; pairsPerS: number }[] } {
  const perCore = 1e6 / three.redisUs;
  const rows = MODEL_PRIMARIES.map((primaries) => {
    const counts = namespacesPerPrimary(keyPrefix, NAMESPACES, primaries);
    const [balance, source] =
      primaries === 1 ? [1, 'one shard'] : primaries === 3 ? [three.balance, 'measured'] : [NAMESPACES.length / primaries / Math.max(...counts), `predicted: ${counts.join('/')} namespaces`];
    return { primaries, balance, source, pairsPerS: primaries * perCore * balance };
  });
  return { perCore, rows };
}

interface OrphanDelays {
  figures: Record<string, Figure>;
  details: Record<string, unknown>;
  duplicates: number;
}

/** Leases with an action expire unrenewed in every namespace; the delay of each until the reaper published it. */
async function orphanDelays(ctx: Context, side: Side): Promise<OrphanDelays> {
  const perNamespace = ctx.options.smoke ? EXPIRING_PER_NAMESPACE.smoke : EXPIRING_PER_NAMESPACE.full;
  // One lease per namespace per wave (the api takes namespaces in turn), all with ttlMs 1000.
  const plan: ExpiringPlan = { count: perNamespace * NAMESPACES.length, waves: perNamespace, waveGapMs: WAVE_GAP_MS, ttlMs: { min: 1_000, max: 1_000 }, concurrency: 16 };
  const intervalMs = ctx.serviceConfig.REAPER_INTERVAL_MS;
  const budgetMs = intervalMs + 100;
  ctx.progress(
    `  orphans on ${side.label}: ${plan.count} leases with an action, ttlMs 1000, ${perNamespace} per namespace in ${plan.waves} waves ${WAVE_GAP_MS} ms apart; ` +
      `REAPER_INTERVAL_MS ${intervalMs}${process.env.REAPER_INTERVAL_MS ? ' (from this environment)' : ' (the default)'}, budget ${budgetMs} ms`,
  );
  const client = new JsonClient(side.service.url, plan.concurrency);
  const api = namespacedLeaseApi(client, NAMESPACES);
  let expiring: Map<string, number>;
  try {
    ({ expiring } = await acquireExpiringLeases(api, plan));
  } finally {
    client.close();
  }
  const lastExpiry = Math.max(...expiring.values());
  const deadline = lastExpiry + budgetMs + PUBLICATION_GRACE_MS;
  // Each namespace's stream, on the primary that serves its slot, read side by side.
  const collected = await Promise.all(
    side.shards.flatMap((shard) =>
      shard.namespaces.map((namespace) => {
        const mine = new Map([...expiring].filter(([id]) => api.namespaceOf.get(id) === namespace));
        return collectPublications(shard.probe, `${namespaceKeyPrefix(side.keyPrefix, namespace)}orphans`, mine, deadline);
      }),
    ),
  );
  const published: Publication[] = collected.flatMap((c) => [...c.published.values()]);
  const duplicates = collected.reduce((total, c) => total + c.duplicates, 0);
  // From the 201's expiresAt; the stream's orphanedAt should say the same (an expiry's orphanedAt is its expiresAt).
  const delays = published.map((p) => p.publishedAt - expiring.get(p.leaseId)!);
  const notAtExpiry = published.filter((p) => p.orphanedAt !== expiring.get(p.leaseId)).length;
  const missing = expiring.size - published.length;
  const s = summarize(delays);
  ctx.progress(
    `    publication delay (orphans-stream entry - expiresAt), ${s.count} expiries in ${NAMESPACES.length} namespaces: ` +
      `median ${s.median} ms, p99 ${s.p99} ms, max ${s.max} ms; ${missing} never published, ${duplicates} published twice` +
      (notAtExpiry > 0 ? `; ${notAtExpiry} with an orphanedAt other than their expiresAt` : ''),
  );
  return {
    duplicates,
    figures: {
      orphanP50: figure(`orphan publication delay median, ${NAMESPACES.length} namespaces`, s.median, 'ms'),
      // An orphan never published is an infinite delay: the target then fails.
      orphanP99: figure(`orphan publication delay p99, ${NAMESPACES.length} namespaces`, missing > 0 ? Number.POSITIVE_INFINITY : s.p99, 'ms'),
      orphanMax: figure('orphan publication delay max', s.max, 'ms'),
      orphanBudget: figure(`budget: REAPER_INTERVAL_MS (${intervalMs}) + 100 ms`, budgetMs, 'ms'),
      orphanCount: figure('expiries measured', published.length, 'count'),
    },
    details: { plan, reaperIntervalMs: intervalMs, summary: s, missing, duplicates, notAtExpiry },
  };
}

export const cluster: Scenario = {
  name: 'cluster',
  summary:
    'acquire + release pairs (new paths) over 64 namespaces through two services in Cluster mode, 1 primary vs 3, alternated A B B A: ' +
    'Redis CPU per pair per shard, spread, capacity model; then orphan publication delay over the 64 namespaces',
  async run(ctx: Context) {
    const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    const topologies: ClusterTopology[] = [];
    const tracked: { forget(): void }[] = [];
    const probes: Redis[] = [];
    const services: ChildServer[] = [];
    const result: ScenarioResult = { figures: {}, details: {} };
    let t0 = performance.now();
    try {
      ctx.progress('  starting two Redis Clusters without replicas: 1 primary, and 3 primaries');
      const started = await Promise.allSettled([1, 3].map((primaries) => startClusterTopology({ primaries, replicasPerPrimary: 0, nodeTimeoutMs: NODE_TIMEOUT_MS })));
      // Whichever started is stopped whatever happens next: also on Ctrl-C (the run's cleanup
      // steps; stop() twice is harmless), and by a last-resort SIGKILL if this process exits
      // before either could run.
      for (const outcome of started) {
        if (outcome.status !== 'fulfilled') continue;
        const topology = outcome.value;
        topologies.push(topology);
        onCleanup(() => topology.stop());
        tracked.push(...topology.nodes.map((node) => trackChild(node.pid())));
      }
      const [one, three] = started.map((outcome) => {
        if (outcome.status === 'rejected') throw outcome.reason;
        return outcome.value;
      }) as [ClusterTopology, ClusterTopology];
      ctx.progress(`    up in ${since(t0)}`);

      const configs = [
        { label: '1 primary', suffix: 'One' as const, primaries: 1, keyPrefix: 'bench-cluster-1', topology: one },
        { label: '3 primaries', suffix: 'Three' as const, primaries: 3, keyPrefix: 'bench-cluster-3', topology: three },
      ];
      ctx.progress('  starting a lease service in Cluster mode on each');
      t0 = performance.now();
      const starting = await Promise.allSettled(configs.map((config) => startClusterService(ctx, config, config.topology)));
      for (const outcome of starting) if (outcome.status === 'fulfilled') services.push(outcome.value);
      const failed = starting.find((outcome) => outcome.status === 'rejected');
      if (failed) throw failed.reason;
      const sides: Side[] = await Promise.all(
        configs.map(async (config, i) => {
          const workload = pairsAcross(NAMESPACES, (n) => `instances/cl-${n}`);
          const service = services[i]!;
          const shards = await shardsOf(config.topology, config.keyPrefix, probes);
          if (shards.length !== config.primaries) throw new Error(`${config.label}: CLUSTER SLOTS names ${shards.length} primaries`);
          const spec = { url: service.url, connections: ctx.options.connections, requests: workload.requests, expect: [201, 200] };
          return { ...config, service, workload, spec, shards, phases: [], idle: [] };
        }),
      );
      const [single, sharded] = sides as [Side, Side];
      ctx.progress(`    ready in ${since(t0)}; the 3 primaries serve ${sharded.shards.map((s) => s.namespaces.length).join(' / ')} of the ${NAMESPACES.length} namespaces`);

      for (const side of sides) await registerNamespaces(side);
      await warmUpSides(ctx, sides);
      const { rounds, phaseS } = roundsOf(ctx, ROUNDS);
      /** 3 / 1 in each round, of pairs/s and of Redis µs per pair: how far apart the rounds are tells how noisy the machine was. */
      const roundRatios: { pairs: number; redisUs: number }[] = [];
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        await measure(ctx, single, sharded, `A${tag}`, phaseS);
        await measure(ctx, sharded, single, `B${tag}`, phaseS);
        await measure(ctx, sharded, single, `B again${tag}`, phaseS);
        await measure(ctx, single, sharded, `A again${tag}`, phaseS);
        const last = (side: Side) => pool(side, side.phases.slice(-2));
        roundRatios.push({ pairs: last(sharded).pairsPerS / last(single).pairsPerS, redisUs: last(sharded).redisUs / last(single).redisUs });
      }

      const [pooledOne, pooledThree] = [pool(single), pool(sharded)];
      const model = capacityModel(pooledThree, sharded.keyPrefix);
      Object.assign(result.figures, {
        ...sideFigures(single, pooledOne),
        ...sideFigures(sharded, pooledThree),
        rounds: figure(
          '3 / 1 per A B B A round: pairs/s, Redis µs per pair',
          Number.NaN,
          'text',
          roundRatios.map((r) => `${r.pairs.toFixed(2)}, ${r.redisUs.toFixed(2)}`).join('; '),
        ),
        evenness: figure('evenness, 3 primaries: smallest share of the script calls x 3', 100 * pooledThree.evenness, '%'),
        evenIdeal: figure('perfectly even (each primary a third)', 100, '%'),
        perCore: figure('model: pairs/s per primary core (1e6 / Redis µs per pair, 3 primaries)', model.perCore, 'pairs/s'),
        ...Object.fromEntries(
          model.rows.map((row) => [
            `capacity${row.primaries}`,
            figure(`model: ${row.primaries === 1 ? '1 primary carries' : `${row.primaries} primaries carry`} (balance ${row.balance.toFixed(2)}, ${row.source})`, row.pairsPerS, 'pairs/s'),
          ]),
        ),
      });
      const cores = availableParallelism();
      ctx.progress(
        `  3 primaries / 1: pairs/s ${(pooledThree.pairsPerS / pooledOne.pairsPerS).toFixed(2)}, Redis µs per pair ${(pooledThree.redisUs / pooledOne.redisUs).toFixed(2)} ` +
          `(less idle ${(pooledThree.redisBusyUs / pooledOne.redisBusyUs).toFixed(2)}; script run time ${(pooledThree.scriptUs / pooledOne.scriptUs).toFixed(2)}); ` +
          `evenness ${pooledThree.evenness.toFixed(2)} (smallest share x 3), balance ${pooledThree.balance.toFixed(2)} (mean share / largest)`,
      );
      ctx.progress(
        `  model: ${formatNumber(model.perCore)} pairs/s per primary core; ` +
          model.rows.map((row) => `${row.primaries} primar${row.primaries === 1 ? 'y' : 'ies'} ${formatNumber(row.pairsPerS)}`).join(', ') +
          ` pairs/s. This machine's ${cores} cores run the load generator, the service and every Redis: ` +
          `they, not the primaries, cap the pairs/s measured here, so the model is the figure, not the raw throughput`,
      );
      result.details = {
        namespaces: NAMESPACES.length,
        cores,
        topologies: { one: { primaries: 1, replicas: 0 }, three: { primaries: 3, replicas: 0 }, nodeTimeoutMs: NODE_TIMEOUT_MS, appendfsync: 'everysec' },
        roundRatios,
        model,
        one: { keyPrefix: single.keyPrefix, pooled: pooledOne, phases: single.phases },
        three: { keyPrefix: sharded.keyPrefix, pooled: pooledThree, phases: sharded.phases },
      };

      const orphans = await orphanDelays(ctx, sharded);
      Object.assign(result.figures, orphans.figures);
      result.details.orphans = orphans.details;
      if (orphans.duplicates > 0) throw new Error(`${orphans.duplicates} orphans were published twice (each orphaning is published once)`);
      return result;
    } catch (error) {
      // A 5xx is logged by the service that answered it: its last lines say why.
      for (const service of services) if (service.output()) ctx.progress(`  ${service.name}, last output:\n${service.output()}`);
      // What was measured before the failure still reaches the table and the record.
      if (Object.keys(result.figures).length === 0) throw error;
      throw new ScenarioFailure(error instanceof Error ? error.message : String(error), result);
    } finally {
      t0 = performance.now();
      await Promise.all(services.map((service) => service.stop()));
      for (const probe of probes) probe.disconnect();
      await Promise.all(topologies.map((topology) => topology.stop()));
      for (const t of tracked) t.forget();
      ctx.progress(`  stopped the services and the topologies in ${since(t0)}`);
    }
  },
};
