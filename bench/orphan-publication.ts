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
 * Knobs (environment): BENCH_LIVE_LEASES (default 100000), BENCH_EXPIRING (default 1200),
 * and the service's own REAPER_INTERVAL_MS, REAPER_BATCH, ... (read by loadConfig).
 */
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp, keyPrefix } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { createRedisClient, waitUntilReady } from '../src/redis/connection.js';
import { ensureScriptsLoaded, loadScripts } from '../src/store/scripts.js';
import { runPool } from './lib/pool.js';
import { startPrivateRedis, type PrivateRedis } from './lib/private-redis.js';
import { formatBytes, formatSeconds, summarize } from './lib/stats.js';

const LIVE_LEASES = intFromEnv('BENCH_LIVE_LEASES', 100_000);
const EXPIRING_LEASES = intFromEnv('BENCH_EXPIRING', 1_200);
/** The issue asks for a p99 over at least this many expiries. */
const MIN_EXPIRIES = 1_000;
const FILL_CONCURRENCY = 64;
const PROGRESS_EVERY = 10_000;
/** Live leases must outlive the whole run without a renewal: half an hour. */
const LIVE_TTL_MS = 30 * 60_000;
/** Expiring leases: acquired in WAVES waves WAVE_GAP_MS apart, ttl uniform in this range. */
const WAVES = 12;
const WAVE_GAP_MS = 1_250;
const EXPIRING_TTL_MS = { min: 1_000, max: 3_000 };
/** Slack over the budget before an orphan that has not appeared counts as never published. */
const PUBLICATION_GRACE_MS = 5_000;
/** Commands that run longer than this (µs) are listed one by one. */
const SLOW_COMMAND_US = 5_000;
/** Sampling period of the event-loop lag monitor (ms); its readings include this period. */
const LOOP_SAMPLE_MS = 5;

// ---------------------------------------------------------------------------------------
// Setup and teardown

interface Bench {
  redisServer: PrivateRedis;
  config: Config;
  /** The app's own client (fail-fast options, like production). */
  client: Redis;
  /** A separate connection for the benchmark's own reads (stream, INFO, SLOWLOG). */
  probe: Redis;
  app: FastifyInstance;
  prefix: string;
}

const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Undoes what setup did, newest first; every caller waits for the same single run. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const step = cleanups.pop()!;
      await step().catch((error: unknown) => log(`cleanup step failed: ${(error as Error).message}`));
    }
  })();
  return cleaning;
}

async function startBench(): Promise<Bench> {
  const redisServer = await startPrivateRedis('lease-bench-redis');
  cleanups.push(() => redisServer.stop());
  const config = loadConfig({
    ...process.env,
    REDIS_URL: redisServer.url,
    DATA_DIR: redisServer.dataDir,
    LOG_LEVEL: 'silent',
    // Only the accepted range changes, so live leases need no renewal during the run.
    TTL_MAX_MS: String(LIVE_TTL_MS),
  });
  const client = createRedisClient({ url: redisServer.url, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  client.on('error', () => {});
  cleanups.push(async () => client.quit().catch(() => client.disconnect()));
  await waitUntilReady(client, 10_000);
  await ensureScriptsLoaded(client, loadScripts());

  const probe = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  probe.on('error', () => {});
  cleanups.push(async () => probe.quit().catch(() => probe.disconnect()));

  const app = await buildApp({ config, redis: client, logger: false });
  cleanups.push(() => app.close());
  await app.ready(); // starts the reaper
  return { redisServer, config, client, probe, app, prefix: keyPrefix(config) };
}

// ---------------------------------------------------------------------------------------
// The HTTP calls (in-process, through app.inject: the same path as a real request)

interface AcquiredLease {
  id: string;
  expiresAt: number;
}

async function acquire(app: FastifyInstance, body: object): Promise<AcquiredLease> {
  const response = await app.inject({ method: 'POST', url: '/v1/leases', payload: body });
  if (response.statusCode !== 201) throw new Error(`acquire answered ${response.statusCode}: ${response.body}`);
  const lease = response.json() as { id: string; expiresAt: string };
  return { id: lease.id, expiresAt: Date.parse(lease.expiresAt) };
}

// ---------------------------------------------------------------------------------------
// Phase 1: 100 000 live leases

/**
 * Lease number i: an instance of a tenant (1 000 tenants x 100 instances), every 4th also
 * its volume, every 5th also the tenant's network in shared mode, every 10th with an
 * action. No two conflict.
 */
function liveLeaseBody(i: number): object {
  const tenant = Math.floor(i / 100);
  const instance = i % 100;
  const base = `tenants/t-${tenant}`;
  const resources: { path: string; mode?: string }[] = [{ path: `${base}/instances/i-${instance}` }];
  if (i % 4 === 0) resources.push({ path: `${base}/volumes/v-${instance}` });
  if (i % 5 === 1) resources.push({ path: `${base}/networks/default`, mode: 'shared' });
  return {
    holder: `conductor-${i % 500}`,
    resources,
    ttlMs: LIVE_TTL_MS,
    ...(i % 10 === 0 ? { action: { kind: 'snapshot', payload: { tenant, instance } } } : {}),
  };
}

async function fillLiveLeases(app: FastifyInstance): Promise<string[]> {
  const ids: string[] = new Array<string>(LIVE_LEASES);
  const started = performance.now();
  let done = 0;
  await runPool(LIVE_LEASES, FILL_CONCURRENCY, async (i) => {
    ids[i] = (await acquire(app, liveLeaseBody(i))).id;
    done++;
    if (done % PROGRESS_EVERY === 0 || done === LIVE_LEASES) {
      const elapsed = performance.now() - started;
      log(`  fill: ${done}/${LIVE_LEASES} live leases, ${formatSeconds(elapsed)}, ${Math.round((done / elapsed) * 1000)} acquires/s`);
    }
  });
  return ids;
}

// ---------------------------------------------------------------------------------------
// Phase 2: a light background load that never touches the expiring leases

interface BackgroundLoad {
  stop(): Promise<{ requests: number; failures: number }>;
}

/**
 * Every 100 ms one request: a renew of a random live lease, or an acquire of a short
 * lease without an action on its own path (every other one released at once, the rest
 * left to expire, so the reaper also has leases without an action to settle).
 */
function startBackgroundLoad(app: FastifyInstance, liveIds: string[]): BackgroundLoad {
  const inFlight = new Set<Promise<void>>();
  let tick = 0;
  let requests = 0;
  let failures = 0;
  const track = (work: Promise<unknown>) => {
    requests++;
    const p = work.then(
      () => undefined,
      () => void failures++,
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const timer = setInterval(() => {
    tick++;
    if (tick % 2 === 0) {
      const id = liveIds[Math.floor(Math.random() * liveIds.length)]!;
      track(
        app.inject({ method: 'POST', url: `/v1/leases/${id}/renew`, payload: {} }).then((r) => {
          if (r.statusCode !== 200) throw new Error(`renew answered ${r.statusCode}`);
        }),
      );
    } else {
      const release = tick % 4 === 1;
      track(
        acquire(app, { holder: 'background', resources: [{ path: `churn/c-${tick}` }], ttlMs: 1_000 }).then(async (lease) => {
          if (release) await app.inject({ method: 'POST', url: `/v1/leases/${lease.id}/release`, payload: {} });
        }),
      );
    }
  }, 100);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      return { requests, failures };
    },
  };
}

// ---------------------------------------------------------------------------------------
// Phase 3: leases that expire and become orphans, published by the reaper alone

function randomTtl(): number {
  return EXPIRING_TTL_MS.min + Math.floor(Math.random() * (EXPIRING_TTL_MS.max - EXPIRING_TTL_MS.min + 1));
}

/** A span of wall-clock time (Date.now() ms, the same host clock Redis reads). */
interface Span {
  from: number;
  to: number;
}

/**
 * Acquires the expiring leases in waves; returns lease id -> expiresAt (Redis-clock ms),
 * and when each wave was being acquired (the process is busiest then).
 */
async function acquireExpiringLeases(app: FastifyInstance): Promise<{ expiring: Map<string, number>; waves: Span[] }> {
  const expiring = new Map<string, number>();
  const waves: Span[] = [];
  const perWave = Math.ceil(EXPIRING_LEASES / WAVES);
  const started = performance.now();
  for (let wave = 0; wave < WAVES; wave++) {
    const from = wave * perWave;
    const count = Math.min(perWave, EXPIRING_LEASES - from);
    if (count <= 0) break;
    const waitMs = started + wave * WAVE_GAP_MS - performance.now();
    if (waitMs > 0) await sleep(waitMs);
    const span = { from: Date.now(), to: 0 };
    await runPool(count, 16, async (k) => {
      const n = from + k;
      const lease = await acquire(app, {
        holder: 'resizer',
        resources: [{ path: `jobs/resize/r-${n}` }],
        ttlMs: randomTtl(),
        action: { kind: 'resize', payload: { job: n, flavor: 'm1.large' }, maxAttempts: 3 },
      });
      expiring.set(lease.id, lease.expiresAt);
    });
    span.to = Date.now();
    waves.push(span);
  }
  return { expiring, waves };
}

interface Publication {
  leaseId: string;
  orphanedAt: number;
  publishedAt: number;
  reason: string;
}

/** The ms part of a stream entry id ("1700000000123-4" -> 1700000000123). */
function streamIdMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

function fieldsOf(flat: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
  return fields;
}

/**
 * Reads the orphans stream until every expiring lease has appeared on it, or the deadline
 * (Date.now() ms) passes. Returns one publication per lease, and how many entries named a
 * lease that was already published (must be 0: each orphaning is published once).
 */
async function collectPublications(
  probe: Redis,
  streamKey: string,
  expiring: Map<string, number>,
  deadline: number,
): Promise<{ published: Map<string, Publication>; duplicates: number }> {
  const published = new Map<string, Publication>();
  let duplicates = 0;
  let after: string | null = null;
  while (published.size < expiring.size && Date.now() < deadline) {
    const entries = (await probe.xrange(streamKey, after === null ? '-' : `(${after}`, '+', 'COUNT', 1000)) as [string, string[]][];
    for (const [id, flat] of entries) {
      after = id;
      const fields = fieldsOf(flat);
      const leaseId = fields.leaseId ?? '';
      if (!expiring.has(leaseId)) continue;
      if (published.has(leaseId)) duplicates++;
      else published.set(leaseId, { leaseId, orphanedAt: Number(fields.orphanedAt), publishedAt: streamIdMs(id), reason: fields.reason ?? '' });
    }
    if (entries.length < 1000) await sleep(200);
  }
  return { published, duplicates };
}

// ---------------------------------------------------------------------------------------
// Diagnostics: what Redis and the event loop were doing while we measured

async function info(probe: Redis, section: string): Promise<Record<string, string>> {
  const text = await probe.info(section);
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

async function usedMemory(probe: Redis): Promise<number> {
  return Number((await info(probe, 'memory')).used_memory);
}

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

/** Makes Redis log every command with its run time (µs), nested script commands included. */
async function startCommandLog(probe: Redis): Promise<void> {
  await probe.config('SET', 'slowlog-max-len', '1000000');
  await probe.config('SET', 'slowlog-log-slower-than', '0');
  await probe.slowlog('RESET');
}

interface CommandLog {
  /** Run times (µs) of each script called by a client, by script name. */
  scripts: Map<string, number[]>;
  /** Commands that ran longer than SLOW_COMMAND_US, slowest first, described. */
  slow: string[];
}

/** Reads and stops the command log; script names replace EVALSHA hashes. */
async function readCommandLog(probe: Redis): Promise<CommandLog> {
  const names = new Map(loadScripts().map((s) => [s.sha, s.name]));
  const entries = (await probe.slowlog('GET', -1)) as [number, number, number, string[], string][];
  await probe.config('SET', 'slowlog-log-slower-than', '-1');
  const scripts = new Map<string, number[]>();
  const slow: { micros: number; what: string }[] = [];
  for (const [, , micros, args, client] of entries) {
    const command = String(args[0] ?? '').toLowerCase();
    // Commands a script runs are logged too, from a client without an address.
    const nested = client === '?:0' || client === '';
    const what =
      command === 'evalsha' ? `script ${names.get(String(args[1])) ?? String(args[1]).slice(0, 8)}` : `${nested ? 'in a script: ' : ''}${command} ${args[1] ?? ''}`;
    if (command === 'evalsha' && !nested) {
      const name = what.slice('script '.length);
      scripts.set(name, [...(scripts.get(name) ?? []), micros]);
    }
    if (micros > SLOW_COMMAND_US) slow.push({ micros, what });
  }
  slow.sort((a, b) => b.micros - a.micros);
  return { scripts, slow: slow.map((e) => `${e.what} ${(e.micros / 1000).toFixed(1)} ms`) };
}

function describeScriptTimes(scripts: Map<string, number[]>, name: string): string {
  const s = summarize(scripts.get(name) ?? []);
  if (s.count === 0) return `${name}: none`;
  return `${name} x${s.count}: median ${s.median} µs, p99 ${s.p99} µs, max ${s.max} µs`;
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

// ---------------------------------------------------------------------------------------
// Report

function delayOf(p: Publication): number {
  return p.publishedAt - p.orphanedAt;
}

function reportDelays(publications: Publication[], busy: Span[]): { p99: number } {
  const s = summarize(publications.map(delayOf));
  log('');
  log(`orphan publication delay (stream entry time - orphanedAt), ${s.count} expiries:`);
  log(`  min ${s.min} ms, median ${s.median} ms, mean ${s.mean.toFixed(1)} ms, p90 ${s.p90} ms, p99 ${s.p99} ms, max ${s.max} ms`);

  // The worst few, with how many orphans the same sweep published (same entry ms).
  const perMs = new Map<number, number>();
  for (const p of publications) perMs.set(p.publishedAt, (perMs.get(p.publishedAt) ?? 0) + 1);
  const worst = [...publications].sort((a, b) => delayOf(b) - delayOf(a)).slice(0, 5);
  log(`  worst: ${worst.map((p) => `${delayOf(p)} ms (published with ${perMs.get(p.publishedAt)} in the same ms)`).join(', ')}`);

  // Do the slow ones coincide with this process being busy acquiring a wave?
  const inBusy = (p: Publication) => busy.some((span) => p.publishedAt >= span.from && p.orphanedAt <= span.to);
  const slow = publications.filter((p) => delayOf(p) > s.p90);
  const window = Math.max(...publications.map((p) => p.publishedAt)) - Math.min(...publications.map((p) => p.orphanedAt));
  const busyMs = busy.reduce((total, span) => total + span.to - span.from, 0);
  log(
    `  of the ${slow.length} over p90, ${slow.filter(inBusy).length} were pending while a wave was being acquired ` +
      `(waves took ${Math.round((100 * busyMs) / window)}% of the time; of all expiries ${publications.filter(inBusy).length} were)`,
  );
  const reasons = new Set(publications.map((p) => p.reason));
  if (reasons.size !== 1 || !reasons.has('expired')) log(`  note: unexpected reasons ${[...reasons].join(', ')}`);
  return { p99: s.p99 };
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
  const budgetMs = config.REAPER_INTERVAL_MS + 100;
  log(`redis-server pid ${bench.redisServer.pid} at ${bench.redisServer.url}, data in ${bench.redisServer.dataDir}`);
  log(`reaper: interval ${config.REAPER_INTERVAL_MS} ms, batch ${config.REAPER_BATCH}; budget = interval + 100 ms = ${budgetMs} ms`);

  // Phase 1
  const memoryBefore = await usedMemory(probe);
  const fillStarted = performance.now();
  const fillBefore = await snapshot(probe);
  log(`setup: acquiring ${LIVE_LEASES} live leases (${FILL_CONCURRENCY} in flight, ttl ${LIVE_TTL_MS / 60_000} min)...`);
  const liveIds = await fillLiveLeases(app);
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

  // Phase 2 and 3
  const background = startBackgroundLoad(app, liveIds);
  cleanups.push(() => background.stop());
  await startCommandLog(probe);
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  loopDelay.enable();
  const before = await snapshot(probe);

  log(`measure: acquiring ${EXPIRING_LEASES} leases with action 'resize', ttl ${EXPIRING_TTL_MS.min}-${EXPIRING_TTL_MS.max} ms, in ${WAVES} waves ${WAVE_GAP_MS} ms apart; never renewed`);
  const { expiring, waves } = await acquireExpiringLeases(app);
  const lastExpiry = Math.max(...expiring.values());
  log(`measure: last one expires in ${Math.max(0, lastExpiry - Date.now())} ms; waiting for the reaper to publish all of them...`);
  const { published, duplicates } = await collectPublications(probe, `${prefix}orphans`, expiring, lastExpiry + budgetMs + PUBLICATION_GRACE_MS);

  const after = await snapshot(probe);
  loopDelay.disable();
  const load = await background.stop();
  const commands = await readCommandLog(probe);

  // Results
  log(`measure: ${formatSeconds(after.at - before.at)} window; background load ${load.requests} requests (${load.failures} failed)`);
  log(
    `  ${cpuShare(before, after)}, event loop lag p99 ${loopLagMs(loopDelay.percentile(99))} ms max ${loopLagMs(loopDelay.max)} ms, ` +
      `AOF rewrites ${after.aofRewrites - before.aofRewrites}; ${machineLoad()}`,
  );
  log(`  run time in Redis: ${['sweep', 'acquire', 'renew'].map((name) => describeScriptTimes(commands.scripts, name)).join('; ')}`);
  log(`  commands over ${SLOW_COMMAND_US / 1000} ms: ${commands.slow.length}${commands.slow.length ? ` (worst: ${commands.slow.slice(0, 5).join(', ')})` : ''}`);

  const missing = expiring.size - published.size;
  const { p99 } = reportDelays([...published.values()], waves);
  const ratio = p99 / budgetMs;
  log('');
  log(`p99 ${p99} ms / budget ${budgetMs} ms = ${ratio.toFixed(2)}`);
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

// Ctrl-C stops the redis-server and removes its folder too; a second Ctrl-C kills at once.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

main()
  .then(
    (code) => code,
    (error: unknown) => {
      if (interrupted) return 130;
      process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      return 2;
    },
  )
  .then(async (code) => {
    await cleanUp();
    process.exit(code);
  });
