/*
 * Orphan publication latency under a large live set.
 *
 * What it measures: when a lease that carries an action expires and nobody asks about it,
 * only the reaper notices, and only the reaper publishes its orphan (XADD to the
 * `${prefix}orphans` stream, inside the sweep script). The service promises that this
 * happens within one reaper interval of the expiry. This benchmark checks the promise
 * where it is hardest to keep in practice: with 100 000 live leases in Redis (big indexes,
 * a big `exp` schedule, a big memory footprint) and a light background load.
 *
 * For each orphan, publication delay = (ms part of its orphans-stream entry id, which is
 * Redis' clock when the sweep script ran) - orphanedAt (the lease's expiresAt, also Redis'
 * clock). Both times come from Redis, so there is no clock skew between processes.
 *
 * How: start a private redis-server (the service's own manager, src/redis/embedded.ts, in a
 * temporary data folder), build the app in-process as main.ts builds it and ready() it,
 * which starts the reaper (no listen(): requests go through app.inject). Fill it with 100 000 long-lived leases through the HTTP API
 * (app.inject, 64 in flight). Then acquire 1 200 leases with a 'resize' action and a ttl of
 * 1-3 s, in waves over ~15 s, and never touch them again, so the reaper alone expires them.
 * Wait until every one of them is on the orphans stream, and report median, p90, p99 and
 * max delay against the budget REAPER_INTERVAL_MS + 100 ms. Exit status 1 when the p99 is
 * over budget or an orphan was never published (2 when the run itself failed).
 *
 * To explain a bad tail it also prints, for the measuring window: CPU of Redis and of this
 * process, event-loop lag, AOF rewrites, the machine's load average, the run time inside
 * Redis of each sweep/acquire/renew script (from SLOWLOG with threshold 0, which logs every
 * command: a small overhead on Redis), and whether the slowest publications coincided with
 * this process acquiring a wave. Timings are only as good as the machine is quiet: on a
 * busy 2-core box, descheduling alone adds tens of ms.
 *
 * The measuring parts are shared with the `orphans` scenario of `npm run bench` (bench/lib/
 * orphans.ts), which runs the service in a child process instead.
 *
 * Knobs (environment): BENCH_LIVE_LEASES (default 100000), BENCH_EXPIRING (default 1200),
 * and the service's own REAPER_INTERVAL_MS, REAPER_BATCH, ... (read by loadConfig).
 */
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp, keyPrefix } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { createRedisClient, waitUntilReady } from '../src/redis/connection.js';
import { ensureLibraryLoaded, loadLibrary } from '../src/store/scripts.js';
import { onCleanup, runBenchmark } from './lib/cleanup.js';
import {
  acquireExpiringLeases,
  collectPublications,
  describeDelays,
  describeScriptTimes,
  liveLeaseBody,
  LIVE_TTL_MS,
  readCommandLog,
  startBackgroundLoad,
  startCommandLog,
  type AcquiredLease,
  type LeaseApi,
} from './lib/orphans.js';
import { runPool } from './lib/pool.js';
import { startPrivateRedis, type PrivateRedis } from './lib/private-redis.js';
import { info, usedMemory } from './lib/redis-info.js';
import { formatBytes, formatSeconds } from './lib/stats.js';

const LIVE_LEASES = intFromEnv('BENCH_LIVE_LEASES', 100_000);
const EXPIRING_LEASES = intFromEnv('BENCH_EXPIRING', 1_200);
/** The issue asks for a p99 over at least this many expiries. */
const MIN_EXPIRIES = 1_000;
const FILL_CONCURRENCY = 64;
const PROGRESS_EVERY = 10_000;
/** Expiring leases: acquired in 12 waves 1.25 s apart, ttl uniform in 1-3 s. */
const EXPIRING_PLAN = { count: EXPIRING_LEASES, waves: 12, waveGapMs: 1_250, ttlMs: { min: 1_000, max: 3_000 }, concurrency: 16 };
/** Slack over the budget before an orphan that has not appeared counts as never published. */
const PUBLICATION_GRACE_MS = 5_000;
/** Commands that run longer than this (µs) are listed one by one. */
const SLOW_COMMAND_US = 5_000;
/** Sampling period of the event-loop lag monitor (ms); its readings include this period. */
const LOOP_SAMPLE_MS = 5;

// ---------------------------------------------------------------------------------------
// Setup (torn down by the cleanup steps, newest first)

interface Bench {
  redisServer: PrivateRedis;
  config: Config;
  /** A separate connection for the benchmark's own reads (stream, INFO, SLOWLOG). */
  probe: Redis;
  app: FastifyInstance;
  prefix: string;
}

async function startBench(): Promise<Bench> {
  const redisServer = await startPrivateRedis('lease-bench-redis');
  onCleanup(() => redisServer.stop());
  const config = loadConfig({
    ...process.env,
    REDIS_URL: redisServer.url,
    DATA_DIR: redisServer.dataDir,
    LOG_LEVEL: 'silent',
    // Only the accepted range changes, so live leases need no renewal during the run.
    TTL_MAX_MS: String(LIVE_TTL_MS),
  });
  // The app's own client (fail-fast options, like production).
  const client = createRedisClient({ target: { mode: 'single', url: redisServer.url }, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  client.on('error', () => {});
  onCleanup(async () => client.quit().catch(() => client.disconnect()));
  await waitUntilReady(client, 10_000);
  await ensureLibraryLoaded(client, loadLibrary());

  const probe = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  probe.on('error', () => {});
  onCleanup(async () => probe.quit().catch(() => probe.disconnect()));

  const app = await buildApp({ config, redis: client, logger: false });
  onCleanup(() => app.close());
  await app.ready(); // starts the reaper
  return { redisServer, config, probe, app, prefix: keyPrefix(config) };
}

/** The HTTP calls, in-process through app.inject: the same path as a real request. */
function injectApi(app: FastifyInstance): LeaseApi {
  const call = async (url: string, payload: object, expected: number) => {
    const response = await app.inject({ method: 'POST', url, payload });
    if (response.statusCode !== expected) throw new Error(`POST ${url} answered ${response.statusCode}: ${response.body}`);
    return response;
  };
  return {
    async acquire(body: object): Promise<AcquiredLease> {
      const lease = (await call('/v1/leases', body, 201)).json<{ id: string; expiresAt: string }>();
      return { id: lease.id, expiresAt: Date.parse(lease.expiresAt) };
    },
    async renew(id) {
      await call(`/v1/leases/${id}/renew`, {}, 200);
    },
    async release(id) {
      await call(`/v1/leases/${id}/release`, {}, 200);
    },
  };
}

async function fillLiveLeases(api: LeaseApi): Promise<string[]> {
  const ids: string[] = new Array<string>(LIVE_LEASES);
  const started = performance.now();
  let done = 0;
  await runPool(LIVE_LEASES, FILL_CONCURRENCY, async (i) => {
    ids[i] = (await api.acquire(liveLeaseBody(i))).id;
    done++;
    if (done % PROGRESS_EVERY === 0 || done === LIVE_LEASES) {
      const elapsed = performance.now() - started;
      log(`  fill: ${done}/${LIVE_LEASES} live leases, ${formatSeconds(elapsed)}, ${Math.round((done / elapsed) * 1000)} acquires/s`);
    }
  });
  return ids;
}

// ---------------------------------------------------------------------------------------
// Diagnostics: what Redis and the event loop were doing while we measured

interface Snapshot {
  at: number;
  redisCpuSec: number;
  aofRewrites: number;
  nodeCpu: NodeJS.CpuUsage;
}

async function snapshot(probe: Redis): Promise<Snapshot> {
  const cpu = await info(probe, 'cpu');
  const persistence = await info(probe, 'persistence');
  return {
    at: performance.now(),
    redisCpuSec: Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys),
    aofRewrites: Number(persistence.aof_rewrites ?? 0),
    nodeCpu: process.cpuUsage(),
  };
}

/** CPU use of Redis and of this process between two snapshots, as % of one core. */
function cpuShare(before: Snapshot, after: Snapshot): string {
  const seconds = (after.at - before.at) / 1000;
  const redis = (after.redisCpuSec - before.redisCpuSec) / seconds;
  const node = (after.nodeCpu.user - before.nodeCpu.user + after.nodeCpu.system - before.nodeCpu.system) / 1e6 / seconds;
  return `redis CPU ${(100 * redis).toFixed(0)}% of a core, node CPU ${(100 * node).toFixed(0)}%`;
}

/** The machine's 1-minute load average against its cores: other work skews every timing here. */
function machineLoad(): string {
  const load = loadavg()[0]!;
  const cores = availableParallelism();
  return `load average ${load.toFixed(2)} on ${cores} cores${load > cores ? ' (BUSY: other processes compete for the CPU)' : ''}`;
}

/** A reading of monitorEventLoopDelay (ns, sampling period included) as lag in ms. */
function loopLagMs(nanoseconds: number): string {
  return Math.max(0, nanoseconds / 1e6 - LOOP_SAMPLE_MS).toFixed(1);
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function intFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got "${text}"`);
  return value;
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const runStarted = performance.now();
  log(`orphan publication benchmark: ${LIVE_LEASES} live leases, ${EXPIRING_LEASES} expiring leases with an action`);
  if (EXPIRING_LEASES < MIN_EXPIRIES) log(`warning: fewer than ${MIN_EXPIRIES} expiries; the p99 says little`);

  const bench = await startBench();
  const { app, probe, config, prefix } = bench;
  const api = injectApi(app);
  const budgetMs = config.REAPER_INTERVAL_MS + 100;
  log(`redis-server pid ${bench.redisServer.pid} at ${bench.redisServer.url}, data in ${bench.redisServer.dataDir}`);
  log(`reaper: interval ${config.REAPER_INTERVAL_MS} ms, batch ${config.REAPER_BATCH}; budget = interval + 100 ms = ${budgetMs} ms`);

  // Phase 1: the live set
  const memoryBefore = await usedMemory(probe);
  const fillStarted = performance.now();
  const fillBefore = await snapshot(probe);
  log(`setup: acquiring ${LIVE_LEASES} live leases (${FILL_CONCURRENCY} in flight, ttl ${LIVE_TTL_MS / 60_000} min)...`);
  const liveIds = await fillLiveLeases(api);
  const fillMs = performance.now() - fillStarted;
  const fillAfter = await snapshot(probe);
  const memoryAfter = await usedMemory(probe);
  log(
    `setup: ${LIVE_LEASES} live leases in ${formatSeconds(fillMs)} (${Math.round((LIVE_LEASES / fillMs) * 1000)}/s); ` +
      `total setup ${formatSeconds(performance.now() - runStarted)}`,
  );
  log(`  during the fill: ${cpuShare(fillBefore, fillAfter)}, AOF rewrites ${fillAfter.aofRewrites - fillBefore.aofRewrites}; ${machineLoad()}`);
  log(
    `memory: used_memory ${formatBytes(memoryBefore)} -> ${formatBytes(memoryAfter)}, ` +
      `${Math.round((memoryAfter - memoryBefore) / LIVE_LEASES)} bytes per live lease (all indexes and the events stream included)`,
  );

  // Phase 2 (background load) and 3 (leases that expire unrenewed)
  const background = startBackgroundLoad(api, liveIds);
  onCleanup(() => background.stop());
  await startCommandLog(probe);
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  loopDelay.enable();
  const before = await snapshot(probe);

  const { ttlMs, waves: waveCount, waveGapMs } = EXPIRING_PLAN;
  log(`measure: acquiring ${EXPIRING_LEASES} leases with action 'resize', ttl ${ttlMs.min}-${ttlMs.max} ms, in ${waveCount} waves ${waveGapMs} ms apart; never renewed`);
  const { expiring, waves } = await acquireExpiringLeases(api, EXPIRING_PLAN);
  const lastExpiry = Math.max(...expiring.values());
  log(`measure: last one expires in ${Math.max(0, lastExpiry - Date.now())} ms; waiting for the reaper to publish all of them...`);
  const { published, duplicates } = await collectPublications(probe, `${prefix}orphans`, expiring, lastExpiry + budgetMs + PUBLICATION_GRACE_MS);

  const after = await snapshot(probe);
  loopDelay.disable();
  const load = await background.stop();
  const commands = await readCommandLog(probe, SLOW_COMMAND_US);

  // Results
  log(`measure: ${formatSeconds(after.at - before.at)} window; background load ${load.requests} requests (${load.failures} failed)`);
  log(
    `  ${cpuShare(before, after)}, event loop lag p99 ${loopLagMs(loopDelay.percentile(99))} ms max ${loopLagMs(loopDelay.max)} ms, ` +
      `AOF rewrites ${after.aofRewrites - before.aofRewrites}; ${machineLoad()}`,
  );
  log(`  run time in Redis: ${['sweep', 'acquire', 'renew'].map((name) => describeScriptTimes(commands.scripts, name)).join('; ')}`);
  log(`  commands over ${SLOW_COMMAND_US / 1000} ms: ${commands.slow.length}${commands.slow.length ? ` (worst: ${commands.slow.slice(0, 5).join(', ')})` : ''}`);

  const missing = expiring.size - published.size;
  const { summary, lines } = describeDelays([...published.values()], waves);
  log('');
  for (const line of lines) log(line);
  const p99 = summary.p99;
  log('');
  log(`p99 ${p99} ms / budget ${budgetMs} ms = ${(p99 / budgetMs).toFixed(2)}`);
  log(`run time ${formatSeconds(performance.now() - runStarted)}`);

  let failed = false;
  if (missing > 0) {
    log(`FAIL: ${missing} of ${expiring.size} orphans were not published within ${budgetMs + PUBLICATION_GRACE_MS} ms of the last expiry`);
    failed = true;
  }
  if (duplicates > 0) {
    log(`FAIL: ${duplicates} orphans were published more than once`);
    failed = true;
  }
  if (!(p99 <= budgetMs)) {
    log(`FAIL: p99 ${p99} ms is over the budget of ${budgetMs} ms`);
    failed = true;
  }
  if (!failed) log('OK: p99 within budget');
  return failed ? 1 : 0;
}

// Ctrl-C stops the redis-server and removes its folder too; a second Ctrl-C exits at once.
// A run that fails (not one over budget) exits 2.
runBenchmark(main, log, 2);
