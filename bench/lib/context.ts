// What every scenario gets: the run's options and sizes, the private Redis, the lease
// service (one child process for the whole run, started on first use), a way to empty the
// store between scenarios, measured phases (warm-up, then measurement with CPU and Redis
// accounting), and fast fills through the HTTP API.
//
// One service process serves every scenario: starting one costs ~1.5 s, and a fresh
// process would also start with a cold JIT that the warm-up then has to heat anyway.
// Between scenarios the store is emptied with FLUSHALL instead.
//
// Redis runs as in production, with its append-only file (everysec). Under load the file
// grows by megabytes a second and Redis rewrites it whenever it doubles, forking a child
// whose copy-on-write slows Redis while it runs. Each measured phase therefore starts
// right after a rewrite (BGREWRITEAOF, waited for), and a rewrite that still happens
// inside a phase is reported with it.
import type { Redis } from 'ioredis';
import type { Config } from '../../src/config.js';
import { keyPrefix } from '../../src/app.js';
import { runClosedLoop, type ClosedLoopResult } from './closed-loop.js';
import { checkLoad, runLoad, type LoadResult, type LoadSpec } from './http-load.js';
import { liveLeaseBody, type ExpiringPlan } from './orphans.js';
import type { PrivateRedis } from './private-redis.js';
import { compactAof } from './redis-info.js';
import { startService, type ChildServer } from './service-process.js';
import { formatMs, formatNumber } from './stats.js';
import { describeUsage, takeUsage, usageBetween, type Usage } from './usage.js';

export interface RunOptions {
  smoke: boolean;
  /** Measured seconds of each load phase. */
  durationS: number;
  /** Seconds of load before each measured phase, discarded. */
  warmupS: number;
  /** Requests in flight in every phase (floors included), unless a scenario says otherwise. */
  connections: number;
  /** Run the service under V8's CPU profiler, writing .cpuprofile files here. */
  profileDir?: string;
}

export interface Sizes {
  /** Live leases of the small store, and of the big one. */
  liveLeasesSmall: number;
  liveLeases: number;
  /** Leases below the parent of the path acquired. */
  belowParent: number;
  /** Leases per memory variant. */
  memoryLeases: number;
  /** Live leases the renew phase picks from. */
  renewPool: number;
  /** Leases of the one holder renewed at once. */
  holderLeases: number;
  /** Connections racing for one path. */
  contenders: number;
  orphans: ExpiringPlan;
  /** The worst-case scenario's sizes (bench/scenarios/worst-case.ts); absent: its own defaults. */
  worstCase?: WorstCaseSizes;
}

export interface WorstCaseSizes {
  /** Measured requests per route, and per heavy route (holder renew, listings, views, waits, claims). */
  reps: number;
  heavyReps: number;
  /**
   * Leases with an action (payload, progress) of one holder on the same 64 paths: the holder
   * renewed (0: HOLDER_RENEW_MAX + 1), the listings' first page, the orphan sweep.
   */
  holderLeases: number;
  /** Seconds that pile may take to build; it stops short of its size after that. */
  holderBudgetS: number;
  /** Leases without an action of another holder (renewing one moves its every index entry). */
  plainLeases: number;
  /** Shared leases on the path the resource view reads (the parent of the fencing check's). */
  coveringLeases: number;
  /** Expired leases each measured claim finds due (it settles at most 50 before it claims). */
  claimDue: number;
  /** Leases without an action that expire together for the reaper to sweep (0: REAPER_BATCH). */
  sweepLeases: number;
  /** Seconds each sweep measurement watches the reaper at most (it settles the rest later). */
  sweepWindowS: number;
  /** waitMs of the waiting acquires. */
  waitMs: number;
  /** Leases per tombstone variant. */
  tombstones: number;
}

export interface Phase {
  load: LoadResult;
  usage: Usage;
}

export interface PhaseOptions {
  /** false: no warm-up (the server is warm from the phase just before). */
  warmup?: boolean;
  /** Measured seconds, instead of the run's --duration. */
  durationS?: number;
  afterWarmup?: () => Promise<unknown>;
  /** How the CPU line names the server (default "service"). */
  serverName?: string;
}

export interface ClosedPhase {
  result: ClosedLoopResult;
  usage: Usage;
}

/** Connections that fill the store: as many as a phase uses. */
const FILL_PROGRESS_EVERY_S = 5;

export class Context {
  private serviceChild: ChildServer | undefined;
  /**
   * What the store holds beyond empty: `fillerIds` are liveLeaseBody leases (in order,
   * `fillerNext` the next index to use), `extra` says something else was left too. The
   * orphan scenario reuses the live-leases scenario's 100 000 leases this way.
   */
  readonly store = { fillerIds: [] as string[], fillerNext: 0, extra: false };
  readonly prefix: string;

  constructor(
    readonly options: RunOptions,
    readonly sizes: Sizes,
    readonly redis: PrivateRedis,
    readonly probe: Redis,
    /** Environment the service and the HTTP floor are started with (beyond this process's own). */
    readonly serverEnv: Record<string, string>,
    /** The service's configuration, as it reads that environment. */
    readonly serviceConfig: Config,
    readonly progress: (line: string) => void,
  ) {
    this.prefix = keyPrefix(serviceConfig);
  }

  /** The running lease service; started on first use, and again if it died. */
  async service(): Promise<ChildServer> {
    if (this.serviceChild?.alive()) return this.serviceChild;
    if (this.serviceChild) this.progress(`  the lease service had exited; its last output:\n${this.serviceChild.output()}\n  starting it again`);
    else this.progress('  starting the lease service (node --import tsx src/main.ts, LOG_LEVEL=warn)');
    this.serviceChild = await startService(this.redis.url, this.serverEnv, this.options.profileDir);
    return this.serviceChild;
  }

  async stopService(): Promise<void> {
    const child = this.serviceChild;
    this.serviceChild = undefined;
    await child?.stop();
  }

  /**
   * Empties Redis (FLUSHALL; the scripts stay cached). A running service keeps working: its
   * reaper notices its lock is gone when it next extends it and takes it again.
   */
  async resetStore(): Promise<void> {
    await this.probe.flushall('SYNC');
    this.store.fillerIds = [];
    this.store.fillerNext = 0;
    this.store.extra = false;
  }

  /**
   * Runs `spec` for the warm-up, then measures it for the run's duration (or `durationS`).
   * `afterWarmup` undoes what the warm-up left half-done (a lease acquired whose release
   * never went out) before the measurement starts.
   */
  async phase(name: string, spec: LoadSpec, server: ChildServer | null, how: PhaseOptions = {}): Promise<Phase> {
    const warmupS = how.warmup === false ? 0 : this.options.warmupS;
    const durationS = how.durationS ?? this.options.durationS;
    this.progress(`  ${name}: ${warmupS > 0 ? `warm-up ${warmupS} s, then ` : ''}${durationS} s at ${spec.connections} connections`);
    if (warmupS > 0) {
      const warmup = await runLoad(spec, { durationS: warmupS });
      checkLoad(`${name} (warm-up)`, spec, warmup);
    }
    await how.afterWarmup?.();
    await this.compactAof();
    const before = await takeUsage(this.probe, server);
    const load = await runLoad(spec, { durationS });
    const usage = usageBetween(before, await takeUsage(this.probe, server), load.responses);
    checkLoad(name, spec, load);
    const statuses = Object.entries(load.statuses)
      .map(([status, count]) => `${formatNumber(count)} x ${status}`)
      .join(', ');
    const main = Object.entries(load.latency).sort((a, b) => b[1].count - a[1].count)[0];
    this.progress(
      `    ${formatNumber(load.rps)} responses/s (${statuses})` +
        (main ? `, ${main[0]}: p50 ${formatMs(main[1].p50)} p99 ${formatMs(main[1].p99)}` : '') +
        `; ${describeUsage(usage, how.serverName)}`,
    );
    return { load, usage };
  }

  /** Rewrites Redis' append-only file before a measurement (see compactAof); says so when it takes a while. */
  async compactAof(): Promise<void> {
    const seconds = await compactAof(this.probe);
    if (seconds > 0.5) this.progress(`    (compacted Redis' append-only file first: ${seconds.toFixed(1)} s)`);
  }

  /** A closed loop of `op` (not HTTP): warm-up, then the measured duration. */
  async closedPhase(name: string, op: () => Promise<unknown>): Promise<ClosedPhase> {
    const { warmupS, durationS, connections } = this.options;
    this.progress(`  ${name}: warm-up ${warmupS} s, then ${durationS} s with ${connections} callers`);
    await runClosedLoop({ concurrency: connections, warmupS, durationS: 0, op });
    await this.compactAof();
    const before = await takeUsage(this.probe, null);
    const result = await runClosedLoop({ concurrency: connections, warmupS: 0, durationS, op });
    const usage = usageBetween(before, await takeUsage(this.probe, null), result.ops);
    if (result.errors > 0) throw new Error(`${name}: ${result.errors} operations failed, the first with: ${result.firstError}`);
    this.progress(
      `    ${formatNumber(result.opsPerS)} ops/s, p50 ${formatMs(result.latency.p50)} p99 ${formatMs(result.latency.p99)}; ${describeUsage(usage)}`,
    );
    return { result, usage };
  }

  /**
   * Acquires `count` leases through the HTTP API as fast as the phases' connections allow
   * (autocannon with a fixed number of requests); each must answer 201. `bodyOf(i)` gets a
   * fresh index per request. Returns the lease ids, in the order they were granted.
   */
  async fill(label: string, count: number, bodyOf: (i: number) => object, firstIndex = 0): Promise<{ ids: string[]; nextIndex: number }> {
    const service = await this.service();
    const ids: string[] = [];
    if (count <= 0) return { ids, nextIndex: firstIndex };
    let next = firstIndex;
    const spec: LoadSpec = {
      url: service.url,
      connections: Math.min(this.options.connections, count),
      expect: [201],
      requests: [
        {
          method: 'POST',
          path: '/v1/leases',
          setupRequest: (request) => ({ ...request, body: JSON.stringify(bodyOf(next++)) }),
          onResponse: (status, body) => {
            if (status === 201) ids.push((JSON.parse(body) as { id: string }).id);
          },
        },
      ],
    };
    const started = performance.now();
    let seconds = 0;
    const load = await runLoad(spec, { amount: count }, () => {
      if (++seconds % FILL_PROGRESS_EVERY_S === 0) this.progress(`    ${label}: ${formatNumber(ids.length)}/${formatNumber(count)} leases`);
    });
    checkLoad(`${label} (fill)`, spec, load);
    if (ids.length !== count) throw new Error(`${label}: ${ids.length} of ${count} acquires answered 201`);
    const elapsed = (performance.now() - started) / 1000;
    this.progress(`    ${label}: ${formatNumber(count)} leases in ${elapsed.toFixed(1)} s (${formatNumber(count / elapsed)}/s)`);
    return { ids, nextIndex: next };
  }

  /** Acquires leases of anything but the filler; the store is then no longer filler only. */
  async fillOther(label: string, count: number, bodyOf: (i: number) => object): Promise<string[]> {
    this.store.extra = true;
    return (await this.fill(label, count, bodyOf)).ids;
  }

  /** Tops the filler (liveLeaseBody leases, 30 min ttl) up to `count` live leases. */
  async ensureFiller(count: number): Promise<void> {
    const missing = count - this.store.fillerIds.length;
    if (missing <= 0) return;
    const { ids, nextIndex } = await this.fill(`live leases`, missing, liveLeaseBody, this.store.fillerNext);
    this.store.fillerIds.push(...ids);
    this.store.fillerNext = nextIndex;
  }

  /** Active leases as the service counts them (the lease_leases gauge of GET /metrics). */
  async activeLeases(): Promise<number> {
    const service = await this.service();
    const response = await fetch(`${service.url}/metrics`);
    const text = await response.text();
    const match = /^lease_leases\{state="active"\} (\d+)/m.exec(text);
    if (!match) throw new Error('GET /metrics has no lease_leases{state="active"}');
    return Number(match[1]);
  }
}
