// Orphan publication latency: the parts shared by `npm run bench:orphans` (the service
// in-process, requests through app.inject) and the `orphans` scenario of `npm run bench`
// (the service in a child process, requests over HTTP). Both talk to the service through a
// LeaseApi, so the measurement is the same whichever way the requests travel.
//
// Publication delay of one orphan = (ms part of its orphans-stream entry id, which is
// Redis' clock when the sweep script ran) - orphanedAt (the lease's expiresAt, also Redis'
// clock). Both times come from Redis, so there is no clock skew between processes.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { loadLibrary } from '../../src/store/scripts.js';
import { runPool } from './pool.js';
import { summarize, type Summary } from './stats.js';

/** Live leases must outlive a whole run without a renewal: half an hour (TTL_MAX_MS must allow it). */
export const LIVE_TTL_MS = 30 * 60_000;

export interface AcquiredLease {
  id: string;
  /** Redis-clock ms. */
  expiresAt: number;
}

/** The calls these benchmarks make; each throws unless the service answered success. */
export interface LeaseApi {
  acquire(body: object): Promise<AcquiredLease>;
  renew(id: string): Promise<void>;
  release(id: string): Promise<void>;
}

/**
 * Live lease number i: an instance of a tenant (tenant i/100, 100 instances each), every
 * 4th also its volume, every 5th also the tenant's network in shared mode, every 10th with
 * an action. No two conflict, so any number of them can be acquired in any order.
 */
export function liveLeaseBody(i: number): object {
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

// ---------------------------------------------------------------------------------------
// A light background load that never touches the expiring leases

export interface BackgroundLoad {
  stop(): Promise<{ requests: number; failures: number }>;
}

/**
 * Every 100 ms one request: a renew of a random live lease, or an acquire of a short
 * lease without an action on its own path (every other one released at once, the rest
 * left to expire, so the reaper also has leases without an action to settle).
 */
export function startBackgroundLoad(api: LeaseApi, liveIds: readonly string[]): BackgroundLoad {
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
    if (tick % 2 === 0 && liveIds.length > 0) {
      track(api.renew(liveIds[Math.floor(Math.random() * liveIds.length)]!));
    } else {
      const release = tick % 4 === 1;
      track(
        api.acquire({ holder: 'background', resources: [{ path: `churn/c-${tick}` }], ttlMs: 1_000 }).then(async (lease) => {
          if (release) await api.release(lease.id);
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
// Leases that expire and become orphans, published by the reaper alone

export interface ExpiringPlan {
  count: number;
  waves: number;
  waveGapMs: number;
  ttlMs: { min: number; max: number };
  /** Acquires in flight within a wave. */
  concurrency: number;
}

/** A span of wall-clock time (Date.now() ms, the same host clock Redis reads). */
export interface Span {
  from: number;
  to: number;
}

function randomTtl({ min, max }: ExpiringPlan['ttlMs']): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/**
 * Acquires the expiring leases (action 'resize', never renewed) in waves; returns lease id
 * -> expiresAt (Redis-clock ms), and when each wave was being acquired (the client is
 * busiest then).
 */
export async function acquireExpiringLeases(api: LeaseApi, plan: ExpiringPlan): Promise<{ expiring: Map<string, number>; waves: Span[] }> {
  const expiring = new Map<string, number>();
  const waves: Span[] = [];
  const perWave = Math.ceil(plan.count / plan.waves);
  const started = performance.now();
  for (let wave = 0; wave < plan.waves; wave++) {
    const from = wave * perWave;
    const count = Math.min(perWave, plan.count - from);
    if (count <= 0) break;
    const waitMs = started + wave * plan.waveGapMs - performance.now();
    if (waitMs > 0) await sleep(waitMs);
    const span = { from: Date.now(), to: 0 };
    await runPool(count, plan.concurrency, async (k) => {
      const n = from + k;
      const lease = await api.acquire({
        holder: 'resizer',
        resources: [{ path: `jobs/resize/r-${n}` }],
        ttlMs: randomTtl(plan.ttlMs),
        action: { kind: 'resize', payload: { job: n, flavor: 'm1.large' }, maxAttempts: 3 },
      });
      expiring.set(lease.id, lease.expiresAt);
    });
    span.to = Date.now();
    waves.push(span);
  }
  return { expiring, waves };
}

export interface Publication {
  leaseId: string;
  orphanedAt: number;
  publishedAt: number;
  reason: string;
}

/** The ms part of a stream entry id ("1700000000123-4" -> 1700000000123). */
export function streamIdMs(id: string): number {
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
export async function collectPublications(
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
// What Redis ran while we measured: SLOWLOG with threshold 0 logs every command with its
// run time (µs), nested script commands included. A small overhead on Redis, so only for
// the light-load window of this benchmark.

export async function startCommandLog(probe: Redis): Promise<void> {
  await probe.config('SET', 'slowlog-max-len', '1000000');
  await probe.config('SET', 'slowlog-log-slower-than', '0');
  await probe.slowlog('RESET');
}

export interface CommandLog {
  /** Run times (µs) of each script called by a client, by script name. */
  scripts: Map<string, number[]>;
  /** Commands that ran longer than `slowUs`, slowest first, described. */
  slow: string[];
}

/** Reads and stops the command log; script names replace the library's function names. */
export async function readCommandLog(probe: Redis, slowUs: number): Promise<CommandLog> {
  const names = new Map(loadLibrary().scripts.map((s) => [s.functionName, s.name]));
  const entries = (await probe.slowlog('GET', -1)) as [number, number, number, string[], string][];
  await probe.config('SET', 'slowlog-log-slower-than', '-1');
  const scripts = new Map<string, number[]>();
  const slow: { micros: number; what: string }[] = [];
  for (const [, , micros, args, client] of entries) {
    const command = String(args[0] ?? '').toLowerCase();
    // Commands a script runs are logged too, from a client without an address.
    const nested = client === '?:0' || client === '';
    const what =
      command === 'fcall' ? `script ${names.get(String(args[1])) ?? String(args[1])}` : `${nested ? 'in a script: ' : ''}${command} ${args[1] ?? ''}`;
    if (command === 'fcall' && !nested) {
      const name = what.slice('script '.length);
      scripts.set(name, [...(scripts.get(name) ?? []), micros]);
    }
    if (micros > slowUs) slow.push({ micros, what });
  }
  slow.sort((a, b) => b.micros - a.micros);
  return { scripts, slow: slow.map((e) => `${e.what} ${(e.micros / 1000).toFixed(1)} ms`) };
}

export function describeScriptTimes(scripts: Map<string, number[]>, name: string): string {
  const s = summarize(scripts.get(name) ?? []);
  if (s.count === 0) return `${name}: none`;
  return `${name} x${s.count}: median ${s.median} µs, p99 ${s.p99} µs, max ${s.max} µs`;
}

// ---------------------------------------------------------------------------------------
// The delays

export function delayOf(p: Publication): number {
  return p.publishedAt - p.orphanedAt;
}

/** The delay summary, and lines that explain its tail (worst ones, overlap with busy spans). */
export function describeDelays(publications: Publication[], busy: Span[]): { summary: Summary; lines: string[] } {
  const s = summarize(publications.map(delayOf));
  const lines = [
    `orphan publication delay (stream entry time - orphanedAt), ${s.count} expiries:`,
    `  min ${s.min} ms, median ${s.median} ms, mean ${s.mean.toFixed(1)} ms, p90 ${s.p90} ms, p99 ${s.p99} ms, max ${s.max} ms`,
  ];
  if (publications.length === 0) return { summary: s, lines };

  // The worst few, with how many orphans the same sweep published (same entry ms).
  const perMs = new Map<number, number>();
  for (const p of publications) perMs.set(p.publishedAt, (perMs.get(p.publishedAt) ?? 0) + 1);
  const worst = [...publications].sort((a, b) => delayOf(b) - delayOf(a)).slice(0, 5);
  lines.push(`  worst: ${worst.map((p) => `${delayOf(p)} ms (published with ${perMs.get(p.publishedAt)} in the same ms)`).join(', ')}`);

  // Do the slow ones coincide with the client being busy acquiring a wave?
  const inBusy = (p: Publication) => busy.some((span) => p.publishedAt >= span.from && p.orphanedAt <= span.to);
  const slow = publications.filter((p) => delayOf(p) > s.p90);
  const window = Math.max(...publications.map((p) => p.publishedAt)) - Math.min(...publications.map((p) => p.orphanedAt));
  const busyMs = busy.reduce((total, span) => total + span.to - span.from, 0);
  lines.push(
    `  of the ${slow.length} over p90, ${slow.filter(inBusy).length} were pending while a wave was being acquired ` +
      `(waves took ${Math.round((100 * busyMs) / Math.max(1, window))}% of the time; of all expiries ${publications.filter(inBusy).length} were)`,
  );
  const reasons = new Set(publications.map((p) => p.reason));
  if (reasons.size !== 1 || !reasons.has('expired')) lines.push(`  note: unexpected reasons ${[...reasons].join(', ')}`);
  return { summary: s, lines };
}
