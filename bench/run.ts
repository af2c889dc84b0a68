/*
 * `npm run bench`: the lease service's benchmark harness.
 *
 * Starts a private redis-server (bench/lib/private-redis.ts), then runs the scenarios one
 * after the other, never two at once: the baselines first (an HTTP floor in a child
 * process, Redis round trips and redlock from this process), then the service's scenarios
 * against the service in a child process (`node --import tsx src/main.ts`, LOG_LEVEL=warn),
 * driven by autocannon used as a library. Every load phase is warmed up before it is
 * measured, and the store is emptied between scenarios that need it empty. The run ends
 * with one table on stdout (targets as ratios against baselines measured in the same run,
 * PASS/FAIL) and a JSON record in bench/results/. Progress goes to stderr.
 *
 * Concurrency: 32 requests in flight in every phase, floors included (contended: 50, as the
 * issue asks). Enough to keep one Node process and one Redis saturated on a small machine
 * (throughput stops growing past ~8-16 here), few enough that latency still reflects the
 * work per request rather than a long queue; and the same number on both sides of each
 * ratio, since under saturation latency is about in-flight / throughput.
 *
 * Exit status: 0 when every scenario ran (missed targets included), 1 when the run itself
 * failed (a scenario errored, a server would not start), 2 on a usage error, 130 when
 * interrupted. Ctrl-C stops the service and the redis-server and removes its data folder.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ConfigSchema, loadConfig } from '../src/config.js';
import { onCleanup, runBenchmark, wasInterrupted } from './lib/cleanup.js';
import { Context, type RunOptions, type Sizes } from './lib/context.js';
import { describeMachine, finishMachine, machineLine } from './lib/machine.js';
import { LIVE_TTL_MS } from './lib/orphans.js';
import { startPrivateRedis } from './lib/private-redis.js';
import { summarizeProfiles } from './lib/profile-summary.js';
import { evaluateComparisons, renderTable, writeReport, type Report, type ScenarioRecord } from './lib/report.js';
import { REPO_ROOT } from './lib/service-process.js';
import { ScenarioFailure } from './lib/scenario-failure.js';
import { COMPARISONS as BASE_COMPARISONS, resolveSelection as resolveBaseSelection, SCENARIOS as BASE_SCENARIOS } from './scenarios/index.js';
import type { Scenario } from './scenarios/types.js';
import { WORST_CASE_COMPARISONS, WORST_CASE_SIZES, worstCase } from './scenarios/worst-case.js';

// Scenarios registered here rather than in scenarios/index.ts run after those, in this order
// (worst-case last: it builds a state of hundreds of MB and empties Redis when done).
const EXTRA_SCENARIOS: Scenario[] = [worstCase].filter((extra) => !BASE_SCENARIOS.some((s) => s.name === extra.name));
const SCENARIOS: Scenario[] = [...BASE_SCENARIOS, ...EXTRA_SCENARIOS];
const COMPARISONS = [...BASE_COMPARISONS, ...(EXTRA_SCENARIOS.includes(worstCase) ? WORST_CASE_COMPARISONS : [])];

/** resolveSelection of scenarios/index.ts, which also knows the scenarios registered here. */
function resolveSelection(names: string[]): Scenario[] {
  const extra = EXTRA_SCENARIOS.filter((s) => names.includes(s.name));
  const base = names.filter((name) => !EXTRA_SCENARIOS.some((s) => s.name === name));
  return [...(base.length > 0 ? resolveBaseSelection(base) : []), ...extra];
}

const FULL_SIZES: Sizes = {
  liveLeasesSmall: 100,
  liveLeases: 100_000,
  belowParent: 10_000,
  memoryLeases: 10_000,
  renewPool: 1_000,
  holderLeases: 100,
  contenders: 50,
  // As `npm run bench:orphans`: 1 200 expiries (a p99 over at least 1 000), 12 waves over 15 s.
  orphans: { count: 1_200, waves: 12, waveGapMs: 1_250, ttlMs: { min: 1_000, max: 3_000 }, concurrency: 16 },
  worstCase: WORST_CASE_SIZES.full,
};

/** For CI: every scenario once, in seconds; the numbers mean little. */
const SMOKE_SIZES: Sizes = {
  liveLeasesSmall: 100,
  liveLeases: 1_000,
  belowParent: 300,
  memoryLeases: 500,
  renewPool: 64,
  holderLeases: 100,
  contenders: 50,
  orphans: { count: 60, waves: 3, waveGapMs: 400, ttlMs: { min: 1_000, max: 1_500 }, concurrency: 16 },
  worstCase: WORST_CASE_SIZES.smoke,
};

const DEFAULT_DURATION_S = { full: 5, smoke: 1 };
const CONNECTIONS = 32;

const USAGE = `usage: npm run bench -- [--scenario <name>[,<name>...]]... [--duration <seconds>] [--smoke] [--connections <n>] [--out <file>] [--profile] [--list]

  --scenario    run only these (repeatable or comma-separated); the baselines their targets need run too
  --duration    measured seconds per load phase (default ${DEFAULT_DURATION_S.full}; ${DEFAULT_DURATION_S.smoke} with --smoke); each phase is warmed up first
  --smoke       every scenario once with tiny sizes, for CI (< 60 s); never fails on a target
  --connections requests in flight per phase (default ${CONNECTIONS})
  --out         where to write the JSON record (default bench/results/latest.json; smoke.json for --smoke, partial.json with --scenario)
  --profile     run the service under V8's CPU profiler; prints its top functions by self time at the end
                (the profiler slows the service: figures of such a run are not comparable)
  --list        list the scenarios and exit`;

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Cli {
  names: string[];
  options: RunOptions;
  out: string | undefined;
  list: boolean;
  help: boolean;
}

function parseCli(argv: string[]): Cli {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', short: 's', multiple: true },
      duration: { type: 'string', short: 'd' },
      smoke: { type: 'boolean', default: false },
      connections: { type: 'string', short: 'c' },
      out: { type: 'string', short: 'o' },
      profile: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const smoke = values.smoke ?? false;
  const durationS = positiveNumber('--duration', values.duration, smoke ? DEFAULT_DURATION_S.smoke : DEFAULT_DURATION_S.full, 600);
  const connections = Math.round(positiveNumber('--connections', values.connections, CONNECTIONS, 1_000));
  // Long enough for V8 to optimise the hot paths and for connections to open; short enough
  // to leave the time budget to measuring.
  const warmupS = Math.min(2, Math.max(0.5, durationS * 0.4));
  return {
    names: (values.scenario ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean),
    options: {
      smoke,
      durationS,
      warmupS,
      connections,
      ...(values.profile ? { profileDir: mkdtempSync(join(tmpdir(), 'lease-bench-profile-')) } : {}),
    },
    out: values.out,
    list: values.list ?? false,
    help: values.help ?? false,
  };
}

function positiveNumber(flag: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > max) throw new UsageError(`${flag} must be a number in (0, ${max}], got "${text}"`);
  return value;
}

class UsageError extends Error {}

/** The service's configuration variables set in this environment (they reach the service child too). */
function serviceVariablesSet(): Record<string, string> {
  const set: Record<string, string> = {};
  for (const name of Object.keys(ConfigSchema.properties)) {
    const value = process.env[name];
    if (value !== undefined && value !== '' && !['REDIS_URL', 'PORT', 'HOST'].includes(name)) set[name] = value;
  }
  return set;
}

/** The command line, or the exit code when there is nothing to run (--help, --list, a usage error). */
function readCommandLine(): { cli: Cli; selection: Scenario[] } | number {
  try {
    const cli = parseCli(process.argv.slice(2));
    if (cli.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (cli.list) {
      for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(15)} ${s.summary}\n`);
      return 0;
    }
    return { cli, selection: resolveSelection(cli.names.length > 0 ? cli.names : SCENARIOS.map((s) => s.name)) };
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
}

async function main(): Promise<number> {
  const command = readCommandLine();
  if (typeof command === 'number') return command;
  const { cli, selection } = command;
  const { options } = cli;
  const mode: Report['mode'] = options.smoke ? 'smoke' : cli.names.length > 0 ? 'partial' : 'full';
  const sizes = options.smoke ? SMOKE_SIZES : FULL_SIZES;
  const out = cli.out ?? join(REPO_ROOT, 'bench', 'results', { full: 'latest.json', smoke: 'smoke.json', partial: 'partial.json' }[mode]);
  const startedAt = new Date();
  const started = performance.now();

  progress(`lease service benchmark (${mode}): ${selection.map((s) => s.name).join(', ')}`);
  const redis = await startPrivateRedis('lease-bench');
  onCleanup(() => redis.stop());
  progress(`redis-server pid ${redis.pid} at ${redis.url}, data in ${redis.dataDir}`);
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  probe.on('error', () => {});
  onCleanup(async () => probe.quit().catch(() => probe.disconnect()));
  const machine = await describeMachine(probe);
  progress(`machine: ${machineLine(machine)}`);

  // Beyond the defaults: leases of the load phases live 30 min, longer than TTL_MAX_MS's
  // default allows; and a stop need not wait 10 s for keep-alive clients.
  const serverEnv = { TTL_MAX_MS: String(LIVE_TTL_MS), SHUTDOWN_GRACE_MS: '2000' };
  const serviceConfig = loadConfig({ ...process.env, ...serverEnv, REDIS_URL: redis.url, LOG_LEVEL: 'warn' });
  const ctx = new Context(options, sizes, redis, probe, serverEnv, serviceConfig, progress);
  onCleanup(() => ctx.stopService());

  const records: ScenarioRecord[] = [];
  for (const [index, scenario] of selection.entries()) {
    progress(`[${index + 1}/${selection.length}] ${scenario.name}: ${scenario.summary}`);
    const t0 = performance.now();
    try {
      const result = await scenario.run(ctx);
      records.push({ name: scenario.name, summary: scenario.summary, status: 'ok', seconds: (performance.now() - t0) / 1000, ...result });
    } catch (error) {
      if (wasInterrupted()) throw error;
      const message = error instanceof Error ? error.message : String(error);
      progress(`  ERROR in ${scenario.name}: ${error instanceof Error ? (error.stack ?? message) : message}`);
      // A scenario that failed after measuring (ScenarioFailure) keeps what it measured.
      const kept = error instanceof ScenarioFailure ? error.result : { figures: {}, details: {} };
      records.push({ name: scenario.name, summary: scenario.summary, status: 'error', seconds: (performance.now() - t0) / 1000, error: message, ...kept });
    }
    progress(`  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  await ctx.stopService();
  finishMachine(machine);

  const report: Report = {
    mode,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    seconds: (performance.now() - started) / 1000,
    options,
    sizes,
    machine,
    service: {
      // What a tuning run set: the service's variables found in this environment, then ours.
      env: { ...serviceVariablesSet(), ...serverEnv, LOG_LEVEL: 'warn' },
      config: {
        REAPER_INTERVAL_MS: serviceConfig.REAPER_INTERVAL_MS,
        REAPER_BATCH: serviceConfig.REAPER_BATCH,
        STREAM_MAX_ENTRIES: serviceConfig.STREAM_MAX_ENTRIES,
        TTL_MAX_MS: serviceConfig.TTL_MAX_MS,
        redis: 'private redis-server as src/redis/embedded.ts starts it: appendonly yes, appendfsync everysec',
      },
    },
    scenarios: records,
    comparisons: evaluateComparisons(COMPARISONS, records),
    failed: records.some((r) => r.status === 'error'),
  };
  writeReport(out, report);
  if (options.profileDir) {
    progress(`service CPU profile (${options.profileDir}), top functions by self time:`);
    for (const line of summarizeProfiles(options.profileDir)) progress(`  ${line}`);
  }
  process.stdout.write(`${renderTable(report, out)}\n`);
  return report.failed ? 1 : 0;
}

runBenchmark(main, progress, 1);
