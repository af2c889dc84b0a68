// What REDIS_MIN_REPLICAS=1 costs against 0, measured side by side in the same run.
//
// One Redis Sentinel topology on loopback (scripts/lib/sentinel-topology.ts: one primary,
// one replica, one sentinel; Debian's redis-server and redis-sentinel, append-only file with
// everysec, as the private Redis of the other scenarios) and two lease services in child processes,
// started the same way as the bench's own (`node --import tsx src/main.ts`, LOG_LEVEL=warn),
// both in Sentinel mode against that topology, each with a KEY_PREFIX of its own: one with
// REDIS_MIN_REPLICAS=0, one with REDIS_MIN_REPLICAS=1 (every state-changing script then goes
// out with WAIT 1 on the service's acknowledged connections, and is answered once the
// replica has it). Both run the cycle scenario's workload, acquire + release pairs on new
// paths from the run's connections, warmed up each, then measured alternately in rounds of
// A B B A (two rounds, a quarter of --duration per phase; smoke: one round, same), so a
// machine that gets busier or quieter meanwhile weighs on both sides alike. The ratio of
// each round is printed too: how far apart they are tells how noisy the machine was. Each
// measured phase starts right after an AOF rewrite of the primary and the replica (as
// Context.phase does for the private Redis).
//
// The table gives pairs/s, acquire p50/p99 and release p50 of each side, and the ratios
// MIN_REPLICAS=1 / MIN_REPLICAS=0 (COMPARISONS in index.ts); the target on pairs/s is a
// ratio, never an assertion. A side that answers anything but 201/200 (a 503 when the
// replica did not confirm in REDIS_REPLICA_ACK_TIMEOUT_MS) fails the scenario, and so does
// a MIN_REPLICAS=1 side that sent no WAIT per request (or a MIN_REPLICAS=0 side that did):
// the figures would not mean what they say.
//
// The topology is this scenario's alone (started and stopped here, whatever happens); the
// private Redis and the shared service child are left alone. The service children run
// without --profile's CPU profiler.
import { Redis } from 'ioredis';
import { startSentinelTopology, type SentinelTopology } from '../../scripts/lib/sentinel-topology.js';
import { onCleanup, trackChild } from '../lib/cleanup.js';
import type { Context, Phase } from '../lib/context.js';
import { checkLoad, pooledLatency, rateOf, runLoad, type LoadSpec } from '../lib/http-load.js';
import { compactAof } from '../lib/redis-info.js';
import { startChildServer, type ChildServer } from '../lib/service-process.js';
import { roundsOf, warmUpSides } from '../lib/side-by-side.js';
import { formatMs, formatNumber } from '../lib/stats.js';
import { describeUsage, takeUsage, usageBetween, type Usage } from '../lib/usage.js';
import { acquireThenRelease } from './cycle.js';
import { figure, type Figure, type Scenario } from './types.js';

/** Replicas of the topology: the one REDIS_MIN_REPLICAS=1 waits for. */
const REPLICAS = 1;
/** The service only asks the sentinels where the primary is; one is enough when nothing fails over. */
const SENTINELS = 1;
/** A B B A rounds of a full run (smoke: one); each side is measured --duration seconds in all (smoke: half). */
const ROUNDS = 2;

interface Side {
  /** "MIN_REPLICAS=0" */
  label: string;
  minReplicas: number;
  service: ChildServer;
  spec: LoadSpec;
  phases: Phase[];
}

/** Starts a lease service in Sentinel mode against `topology`, with its own key prefix. */
function startSentinelService(ctx: Context, topology: SentinelTopology, minReplicas: number): Promise<ChildServer> {
  return startChildServer({
    name: `lease service (REDIS_MIN_REPLICAS=${minReplicas})`,
    script: 'src/main.ts',
    env: {
      ...ctx.serverEnv,
      ...topology.env,
      // Sentinel mode: no REDIS_URL even if this environment sets one (empty counts as unset).
      REDIS_URL: '',
      KEY_PREFIX: `bench-replica-acks-${minReplicas}`,
      REDIS_MIN_REPLICAS: String(minReplicas),
      LOG_LEVEL: 'warn',
    },
    readyPath: '/readyz',
  });
}

/** WAIT calls per response in a phase (Redis' commandstats on the primary). */
function waitsPerOp(usage: Usage): number {
  return usage.commands.wait?.callsPerOp ?? 0;
}

function pairsPerS(side: Side): number {
  const seconds = side.phases.reduce((total, p) => total + p.load.durationS, 0);
  return side.phases.reduce((total, p) => total + rateOf(p.load, 200) * p.load.durationS, 0) / seconds;
}

function sideFigures(side: Side, suffix: string): Record<string, Figure> {
  const loads = side.phases.map((p) => p.load);
  const acquire = pooledLatency(loads, 201);
  const release = pooledLatency(loads, 200);
  return {
    [`pairs${suffix}`]: figure(`acquire+release pairs/s, ${side.label}`, pairsPerS(side), 'pairs/s'),
    [`p50${suffix}`]: figure(`acquire p50, ${side.label}`, acquire.p50, 'ms'),
    [`p99${suffix}`]: figure(`acquire p99, ${side.label}`, acquire.p99, 'ms'),
    [`releaseP50${suffix}`]: figure(`release p50, ${side.label}`, release.p50, 'ms'),
    [`cpu${suffix}`]: figure(`CPU per request, ${side.label}`, Number.NaN, 'text', describePooledUsage(side)),
  };
}

/** CPU µs and Redis calls per response over a side's phases: "service 210, redis 160, client 90 µs CPU/op; fcall 1.01/op, wait 1.01/op". */
function describePooledUsage(side: Side): string {
  const responses = side.phases.reduce((total, p) => total + p.load.responses, 0);
  const perOp = (of: (p: Phase) => number) => side.phases.reduce((total, p) => total + of(p) * p.load.responses, 0) / responses;
  const us = (of: (p: Phase) => number) => perOp(of).toFixed(0);
  const calls = (command: string) => perOp((p) => p.usage.commands[command]?.callsPerOp ?? 0).toFixed(2);
  return (
    `service ${us((p) => p.usage.perOpUs.server)}, redis ${us((p) => p.usage.perOpUs.redis)}, client ${us((p) => p.usage.perOpUs.client)} µs CPU/op ` +
    `(primary's Redis); fcall ${calls('fcall')}/op, wait ${calls('wait')}/op`
  );
}

export const replicaAcks: Scenario = {
  name: 'replica-acks',
  summary:
    'acquire + release pairs (instances/ra-N, new paths) through two services in Sentinel mode on one topology (1 primary, 1 replica): ' +
    'REDIS_MIN_REPLICAS=0 vs 1, alternated in rounds of A B B A',
  async run(ctx: Context) {
    ctx.progress(`  starting a Sentinel topology (1 primary, ${REPLICAS} replica, ${SENTINELS} sentinel)`);
    const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    let t0 = performance.now();
    const topology = await startSentinelTopology({ replicas: REPLICAS, sentinels: SENTINELS, master: 'bench-replica-acks' });
    ctx.progress(`    up in ${since(t0)}`);
    // Also on Ctrl-C (the run's cleanup steps; stop() twice is harmless), and a last-resort
    // SIGKILL if this process exits before either could run.
    onCleanup(() => topology.stop());
    const tracked = [...topology.servers, ...topology.sentinels].map((node) => trackChild(node.pid()));
    const probes: Redis[] = [];
    const services: ChildServer[] = [];
    try {
      const primary = await topology.primary();
      const probeOf = (port: number) => {
        const probe = new Redis({ host: '127.0.0.1', port, password: topology.password, maxRetriesPerRequest: 1 });
        probe.on('error', () => {});
        probes.push(probe);
        return probe;
      };
      const primaryProbe = probeOf(primary.port);
      const replicaProbes = topology.servers.filter((s) => s !== primary).map((s) => probeOf(s.port));

      ctx.progress('  starting two lease services in Sentinel mode (REDIS_MIN_REPLICAS=0 and 1)');
      t0 = performance.now();
      const started = await Promise.allSettled([0, 1].map((n) => startSentinelService(ctx, topology, n)));
      for (const result of started) if (result.status === 'fulfilled') services.push(result.value);
      const failed = started.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      const sides: Side[] = services.map((service, minReplicas) => ({
        label: `MIN_REPLICAS=${minReplicas}`,
        minReplicas,
        service,
        spec: { url: service.url, connections: ctx.options.connections, requests: acquireThenRelease((n) => `instances/ra-${n}`), expect: [201, 200] },
        phases: [],
      }));
      const [none, one] = sides as [Side, Side];
      ctx.progress(`    ready in ${since(t0)}`);

      await warmUpSides(ctx, sides);
      const { rounds, phaseS } = roundsOf(ctx, ROUNDS);
      const measure = async (side: Side, name: string) => {
        ctx.progress(`  ${name} ${side.label}: ${phaseS} s at ${side.spec.connections} connections`);
        const seconds = (await Promise.all([primaryProbe, ...replicaProbes].map((probe) => compactAof(probe)))).reduce((a, b) => Math.max(a, b), 0);
        if (seconds > 0.5) ctx.progress(`    (compacted the append-only files first: ${seconds.toFixed(1)} s)`);
        const before = await takeUsage(primaryProbe, side.service);
        const load = await runLoad(side.spec, { durationS: phaseS });
        const usage = usageBetween(before, await takeUsage(primaryProbe, side.service), load.responses);
        checkLoad(`${name} ${side.label}`, side.spec, load);
        const waits = waitsPerOp(usage);
        // ~1 per request with WAIT, ~0 without (the other service's reaper sweeps, with WAIT, meanwhile).
        if (side.minReplicas > 0 ? waits < 0.9 : waits > 0.1) {
          throw new Error(`${side.label}: ${waits.toFixed(2)} WAIT calls per request on the primary; the service is not configured as this scenario says`);
        }
        const acquire = pooledLatency([load], 201);
        ctx.progress(
          `    ${formatNumber(rateOf(load, 200))} pairs/s, acquire p50 ${formatMs(acquire.p50)} p99 ${formatMs(acquire.p99)}; ` +
            `${describeUsage(usage)}; wait ${waits.toFixed(2)}/op`,
        );
        side.phases.push({ load, usage });
      };
      /** pairs/s of MIN_REPLICAS=1 / 0 in each round: how much the ratio moved with the machine's noise. */
      const roundRatios: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        await measure(none, `A${tag}`);
        await measure(one, `B${tag}`);
        await measure(one, `B again${tag}`);
        await measure(none, `A again${tag}`);
        const last = (side: Side) => pairsPerS({ ...side, phases: side.phases.slice(-2) });
        roundRatios.push(last(one) / last(none));
      }

      const figures: Record<string, Figure> = {
        ...sideFigures(none, 'None'),
        ...sideFigures(one, 'One'),
        rounds: figure('pairs/s ratio 1/0 per A B B A round', Number.NaN, 'text', roundRatios.map((r) => r.toFixed(2)).join(', ')),
      };
      ctx.progress(
        `  MIN_REPLICAS=1 / 0: pairs/s ${(figures.pairsOne!.value / figures.pairsNone!.value).toFixed(2)}, ` +
          `acquire p50 ${(figures.p50One!.value / figures.p50None!.value).toFixed(2)}, p99 ${(figures.p99One!.value / figures.p99None!.value).toFixed(2)}`,
      );
      return {
        figures,
        details: {
          topology: { primary: 1, replicas: REPLICAS, sentinels: SENTINELS, appendfsync: 'everysec' },
          roundRatios,
          none: { minReplicas: 0, phases: none.phases },
          one: { minReplicas: 1, phases: one.phases },
        },
      };
    } finally {
      t0 = performance.now();
      await Promise.all(services.map((service) => service.stop()));
      for (const probe of probes) probe.disconnect();
      await topology.stop();
      for (const t of tracked) t.forget();
      ctx.progress(`  stopped the services and the topology in ${since(t0)}`);
    }
  },
};
