// The Redis time of the worst legal request of each route, and the bytes an ended lease
// leaves behind for an hour (issue 14).
//
// Part 1, Redis time per route. For every route that touches Redis the scenario builds the
// worst state the contract and the configuration allow for it (the limits of
// ../shared/spec/lease-api-v1.md, and the service's configuration for the rest): 64
// resources of 16 segments and 512 characters each, parting at their first segment so that
// every one of the 64 x 15 ancestors is an index entry of its own; action payloads of
// PAYLOAD_LIMIT_BYTES and progress checkpoints of PROGRESS_LIMIT_BYTES (on the single leases
// of the rows shaped as the costliest JSON to decode, {"a":[[],[],...]}, a table every
// three bytes; on the piles, strings of the same size); 128-character holders, kinds and
// requestIds, 32 kinds in a claim; one holder with more leases than HOLDER_RENEW_MAX and
// than a listing page (LIST_LIMIT_MAX), all on the same 64 paths; shared leases covering
// the path the resource view reads; expired leases due for a claim to settle, and a pile
// expiring together for the reaper's sweeps. Then it sends ONE request at a time and reads
// Redis' own accounting for it: CONFIG RESETSTAT before, INFO commandstats after (the
// microseconds of every EVALSHA/EVAL/FCALL, which include the commands the script ran),
// several times; the table gives the median and the max per route and whether the max is
// under the 5 ms budget. A missed budget is printed, never asserted. A request answered 5xx
// fails the scenario, once everything else was measured (the row stops repeating at its
// first 5xx); a load-shedding 503 that reached no script is sent again after Retry-After.
// A waiting acquire looks again each time something it waits on changes (a blocker freed, a
// blocker's expiry, an earlier ticket gone), so its calls are as many as those changes, 2 at
// the least (the first look, and the one that grants or refuses): its rows are judged by
// its largest look, and give the sum of all its looks beside it.
//
// Redis' accounting counts every script call, not only the request's. So that it sees the
// request alone, the service's reaper is paused while single requests are measured: this
// process holds the reaper's redlock key, as another replica leading would (the service then
// tries to take it once a second, a SET NX of a few µs, which stays in the figures).
// SLOWLOG (threshold 50 µs) names the calls that make up a request and those to leave out.
// The reaper's absence is also how the due leases pile up (as in a leader's failover):
// leases acquired with ttlMs = TTL_MIN_MS, and the holder's pile renewed to TTL_MIN_MS, all
// expire unsettled; the claims settle some, and once this process lets go of the key the
// service's reaper takes it and sweeps the rest, oldest first, each call at most
// REAPER_BATCH; SLOWLOG gives every sweep call's time, and each one that did work is a sample.
//
// Part 2, bytes per tombstone: leases with a 1 KiB payload and a 16 KiB progress checkpoint
// (and a requestId, as the SDK sends) are released, revoked (their orphan then resolved) or
// left to expire (likewise); every key whose name holds the lease's id, its requestId or its
// orphan's id is then weighed with MEMORY USAGE (SAMPLES 0) and its TTL read.
//
// Sizes: bench/run.ts (sizes.worstCase). The holder's pile stops short when it has taken
// holderBudgetS to build (a busy machine); the table says how many it holds. Smoke mode
// builds piles of 20 and repeats twice.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Config } from '../../src/config.js';
import { loadLibrary } from '../../src/store/scripts.js';
import { LONG_TTL_MS, payloadOfSize } from '../lib/bodies.js';
import type { Context, WorstCaseSizes } from '../lib/context.js';
import { JsonClient, type JsonResponse } from '../lib/json-client.js';
import { runPool } from '../lib/pool.js';
import { commandStats, SCRIPT_COMMANDS } from '../lib/redis-info.js';
import { ScenarioFailure } from '../lib/scenario-failure.js';
import { formatBytes, formatNumber, summarize } from '../lib/stats.js';
import type { Comparison } from './index.js';
import { figure, type Figure, type Scenario, type ScenarioResult } from './types.js';

/** The budget of issue 14: each route's worst legal request costs Redis less than this. */
export const ROUTE_BUDGET_MS = 5;

/** Due leases one claim settles before it looks at the queue (CLAIM_SETTLE_BATCH in claim-1.lua). */
const CLAIM_SETTLES = 50;

export const WORST_CASE_SIZES: { full: WorstCaseSizes; smoke: WorstCaseSizes } = {
  // 0: as the configuration makes worst (HOLDER_RENEW_MAX + 1, REAPER_BATCH).
  full: {
    reps: 5,
    heavyReps: 3,
    holderLeases: 0,
    holderBudgetS: 20,
    plainLeases: 100,
    coveringLeases: 200,
    claimDue: CLAIM_SETTLES,
    sweepLeases: 200,
    sweepWindowS: 4,
    waitMs: 1_000,
    tombstones: 20,
  },
  smoke: {
    reps: 2,
    heavyReps: 2,
    holderLeases: 20,
    holderBudgetS: 5,
    plainLeases: 10,
    coveringLeases: 20,
    claimDue: 5,
    sweepLeases: 20,
    sweepWindowS: 3,
    waitMs: 200,
    tombstones: 4,
  },
};

// ---------------------------------------------------------------------------------------
// The contract's limits (../shared/spec/lease-api-v1.md): fixed ones here, configurable
// ones from the service's configuration.

const RESOURCES_MAX = 64;
const SEGMENTS_MAX = 16;
const SEGMENT_MAX = 128;
const PATH_MAX = 512;
const NAME_MAX = 128; // holder, requestId, kind
const KINDS_MAX = 32; // kinds of one claim

interface Limits {
  payloadBytes: number;
  progressBytes: number;
  listMax: number;
  holderRenewMax: number;
  reaperBatch: number;
  ttlMinMs: number;
}

/** A setting that another change may add or rename: read without depending on its type. */
function setting(config: Config, name: string, fallback: number): number {
  const value = (config as unknown as Record<string, unknown>)[name];
  return typeof value === 'number' ? value : fallback;
}

function limitsOf(config: Config): Limits {
  return {
    payloadBytes: config.PAYLOAD_LIMIT_BYTES,
    progressBytes: config.PROGRESS_LIMIT_BYTES,
    listMax: config.LIST_LIMIT_MAX,
    holderRenewMax: setting(config, 'HOLDER_RENEW_MAX', 1000),
    reaperBatch: config.REAPER_BATCH,
    ttlMinMs: config.TTL_MIN_MS,
  };
}

// ---------------------------------------------------------------------------------------
// Worst-case shapes

/**
 * A path of `segments` segments and exactly `length` characters, the first segment
 * starting with `head`. The early segments are as long as allowed (128), so that every
 * ancestor's index key is as long as it can be.
 */
function longPath(head: string, segments: number, length: number): string {
  let left = length - (segments - 1);
  const parts: string[] = [];
  for (let i = 0; i < segments; i++) {
    const size = Math.min(SEGMENT_MAX, left - (segments - 1 - i));
    const start = i === 0 ? head : `s${i}`;
    parts.push((start + 'x'.repeat(size)).slice(0, size));
    left -= size;
  }
  return parts.join('/');
}

/**
 * 64 paths of 16 segments and 512 characters that part at their first segment: a lease on
 * them has 64 x 15 ancestors, each an index entry of its own (the most index work per lease).
 */
function distinctPaths(tag: string): string[] {
  return Array.from({ length: RESOURCES_MAX }, (_, k) => longPath(`${tag}-${k}-`, SEGMENTS_MAX, PATH_MAX));
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/** A name of 128 characters (holder, requestId, kind) starting with `tag`. */
function longName(tag: string): string {
  return `${tag}-${'n'.repeat(NAME_MAX)}`.slice(0, NAME_MAX);
}

/**
 * JSON of exactly `bytes` bytes that is as costly as JSON can be to decode: {"a":[[],[],...]}
 * makes a table every three bytes (a Lua cjson.decode of 64 KiB of it takes ~5 ms, ten times a
 * string's), three levels deep, well within the service's nesting limit.
 */
function wideJson(bytes: number): Record<string, unknown[]> {
  const count = Math.max(0, Math.floor((bytes - 7) / 3));
  const key = 'a'.repeat(1 + (bytes - (3 * count + 7)));
  return { [key]: Array.from({ length: count }, () => []) };
}

function resources(paths: string[], mode: 'exclusive' | 'shared'): { path: string; mode: string }[] {
  return paths.map((path) => ({ path, mode }));
}

const kib = (n: number) => `${formatNumber(n / 1024)} KiB`;

// ---------------------------------------------------------------------------------------
// Redis' accounting

/** SLOWLOG threshold: names every script call above it; the commands inside scripts rarely reach it. */
const SLOWLOG_US = 50;
const SLOWLOG_LEN = 4096;

type SlowlogEntry = [number, number, number, string[], string, string];

interface ScriptCall {
  /** SLOWLOG's entry id: calls in the order they ran. */
  id: number;
  name: string;
  us: number;
}

interface Accounting {
  /** Microseconds of the script calls of the request (background calls SLOWLOG named left out). */
  us: number;
  calls: number;
  /** Script calls of the request that SLOWLOG names (those over 50 µs), slowest first. */
  named: ScriptCall[];
  /** Calls left out as background (redlock, the reaper's sweeps). */
  background: ScriptCall[];
}

/** Runs a probe command, again while Redis answers BUSY (a script has run past lua-time-limit). */
async function patiently<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!/^BUSY/.test((error as Error).message) || attempt > 1200) throw error;
      await sleep(100);
    }
  }
}

/** CONFIG RESETSTAT + INFO commandstats for the totals, SLOWLOG for which script each call was. */
class Meter {
  private readonly byFunction: Map<string, string>;
  private readonly saved: [string, string][] = [];

  constructor(
    private readonly probe: Redis,
    private readonly lockKey: string,
  ) {
    this.byFunction = new Map(loadLibrary().scripts.map((s) => [s.functionName, s.name]));
  }

  async open(): Promise<void> {
    for (const name of ['slowlog-log-slower-than', 'slowlog-max-len']) {
      const [, value] = (await this.probe.config('GET', name)) as string[];
      if (value !== undefined) this.saved.push([name, value]);
    }
    await this.probe.config('SET', 'slowlog-log-slower-than', String(SLOWLOG_US));
    await this.probe.config('SET', 'slowlog-max-len', String(SLOWLOG_LEN));
  }

  async close(): Promise<void> {
    for (const [name, value] of this.saved) await patiently(() => this.probe.config('SET', name, value));
  }

  async start(): Promise<void> {
    await patiently(() => this.probe.config('RESETSTAT'));
    await patiently(() => this.probe.slowlog('RESET'));
  }

  /** What ran since start(); calls `background(name)` says are not the request's are left out. */
  async read(background: (name: string) => boolean): Promise<Accounting> {
    // A script that outlived its caller's timeout still runs: INFO waits for it (or gets BUSY).
    const stats = await patiently(() => commandStats(this.probe));
    let us = 0;
    let calls = 0;
    for (const [command, stat] of stats) {
      if (SCRIPT_COMMANDS.has(command)) {
        us += stat.usec;
        calls += stat.calls;
      }
    }
    const named: ScriptCall[] = [];
    const left: ScriptCall[] = [];
    for (const call of await this.scriptCalls()) (background(call.name) ? left : named).push(call);
    for (const call of left) {
      us -= call.us;
      calls -= 1;
    }
    named.sort((a, b) => b.us - a.us);
    return { us, calls, named, background: left };
  }

  /** The top-level script calls SLOWLOG holds, oldest first (commands run inside scripts have no client address). */
  async scriptCalls(): Promise<ScriptCall[]> {
    const entries = (await patiently(() => this.probe.slowlog('GET', SLOWLOG_LEN))) as SlowlogEntry[];
    const calls: ScriptCall[] = [];
    for (const [id, , micros, args, client] of entries) {
      const command = String(args[0] ?? '').toLowerCase();
      if (!SCRIPT_COMMANDS.has(command) || client === '?:0' || client === '') continue;
      calls.push({ id: Number(id), name: this.nameOf(command, args), us: Number(micros) });
    }
    return calls.sort((a, b) => a.id - b.id);
  }

  private nameOf(command: string, args: string[]): string {
    if (String(args[3] ?? '') === this.lockKey) return 'redlock';
    const script = String(args[1] ?? '');
    if (command.startsWith('fcall')) return this.byFunction.get(script) ?? `function ${script}`;
    return `script ${script.slice(0, 8)}`;
  }
}

/** Not part of any request: the reaper's leadership lock and its sweeps, the /metrics script. */
const isBackground = (name: string) => name === 'redlock' || name === 'sweep' || name === 'stats';

/**
 * Pauses the service's reaper by holding its redlock key (as another replica leading would),
 * and lets it go again.
 */
class ReaperHold {
  private readonly token = `bench-worst-case-${process.pid}`;

  constructor(
    private readonly ctx: Context,
    private readonly key: string,
  ) {}

  async pause(): Promise<void> {
    await this.ctx.probe.set(this.key, this.token, 'PX', 600_000);
    // The leader believes in its lock until it next extends it (after half of REAPER_LOCK_MS).
    const deadline = Date.now() + this.ctx.serviceConfig.REAPER_LOCK_MS + 2_000;
    while ((await this.leaderGauge()) !== 0) {
      if (Date.now() > deadline) throw new Error('the service still leads the reaper although its lock is held here');
      await sleep(100);
    }
  }

  async resume(): Promise<void> {
    if ((await patiently(() => this.ctx.probe.get(this.key))) === this.token) await this.ctx.probe.del(this.key);
  }

  private async leaderGauge(): Promise<number> {
    const service = await this.ctx.service();
    const text = await (await fetch(`${service.url}/metrics`)).text();
    const match = /^lease_reaper_leader (\d+)/m.exec(text);
    return match ? Number(match[1]) : 0;
  }
}

// ---------------------------------------------------------------------------------------
// Rows

interface Sample {
  status: number;
  us: number;
  calls: number;
  wallMs: number;
  /** Bytes of the answer's body. */
  bytes: number;
  /** The slowest script calls SLOWLOG named. */
  scripts: string;
  /** What the answer held (items, how many with a payload, whether a next page exists). */
  answer: string;
  /** The request's costliest script call (SLOWLOG; 0 when none took over SLOWLOG_US). */
  largestUs: number;
  /** Times the request was shed (503 with Retry-After that reached no script) and sent again. */
  shed: number;
}

interface Row {
  key: RouteKey;
  route: string;
  /** The worst case built for it. */
  built: string;
  expected: number[];
  samples: Sample[];
  /** Judged by its largest script call (a waiting request makes one per change it waits on), not by their sum. */
  perCall: boolean;
  /** Why there is no number (an answer the row did not expect), or a remark. */
  note?: string;
}

/** Every row's figure key, in table order (the comparisons are built from it). */
export const ROUTE_KEYS = [
  'acquireGranted',
  'acquireConflict',
  'acquireConflictShared',
  'acquireWaitTimeout',
  'acquireWaitGranted',
  'renewProgress',
  'renewPlain',
  'holderRenew',
  'holderRenewPlain',
  'release',
  'releaseAbandoned',
  'revoke',
  'get',
  'list',
  'listPayload',
  'listPrefix',
  'listPrefixPayload',
  'resource',
  'resourcePayload',
  'fencing',
  'claim',
  'resolve',
  'orphanList',
  'orphanListPayload',
  'orphanGet',
  'sweepExpire',
  'sweepOrphan',
] as const;

type RouteKey = (typeof ROUTE_KEYS)[number];

/** Each route's max against the 5 ms budget (the `budget` figure), judged <= 1. */
export const WORST_CASE_COMPARISONS: Comparison[] = ROUTE_KEYS.map((key) => ({
  figure: ['worst-case', key],
  baseline: ['worst-case', 'budget'],
  target: { op: '<=', bound: 1 },
}));

interface Env {
  ctx: Context;
  client: JsonClient;
  meter: Meter;
  limits: Limits;
  sizes: WorstCaseSizes;
  rows: Map<RouteKey, Row>;
}

function row(env: Env, key: RouteKey, route: string, built: string, expected: number[], perCall = false): Row {
  const r: Row = { key, route, built, expected, samples: [], perCall };
  env.rows.set(key, r);
  return r;
}

const SHED_RETRIES = 3;

/**
 * Sends `send(rep)` `reps` times, one at a time, each between a reset and a reading of Redis'
 * accounting; `prepare(rep)` runs before each, outside the measurement. Stops at the first
 * 5xx. Returns the answers.
 */
async function measure(
  env: Env,
  r: Row,
  reps: number,
  send: (rep: number) => Promise<JsonResponse>,
  options: { prepare?: (rep: number) => Promise<void>; background?: (name: string) => boolean } = {},
): Promise<JsonResponse[]> {
  const answers: JsonResponse[] = [];
  for (let rep = 0; rep < reps; rep++) {
    await options.prepare?.(rep);
    let shed = 0;
    let answer: JsonResponse;
    for (;;) {
      await env.meter.start();
      const started = performance.now();
      answer = await send(rep);
      const wallMs = performance.now() - started;
      const accounting = await env.meter.read(options.background ?? isBackground);
      const retryAfter = Number(answer.headers?.['retry-after'] ?? Number.NaN);
      if (answer.status === 503 && accounting.calls === 0 && Number.isFinite(retryAfter) && shed < SHED_RETRIES) {
        // Load shedding (the event loop lagged after the last, heavy answer): nothing was done.
        shed++;
        await sleep(retryAfter * 1000);
        continue;
      }
      r.samples.push({
        status: answer.status,
        us: accounting.us,
        calls: accounting.calls,
        wallMs,
        bytes: Buffer.byteLength(answer.text),
        scripts: accounting.named
          .slice(0, 3)
          .map((c) => `${c.name} ${formatNumber(c.us)} µs`)
          .join(', '),
        answer: describeAnswer(answer.text),
        largestUs: accounting.named[0]?.us ?? 0,
        shed,
      });
      break;
    }
    answers.push(answer);
    if (!r.expected.includes(answer.status)) {
      r.note = `answered ${answer.status} (${describeProblem(answer.text)})`;
      env.ctx.progress(`    ${r.key}: ${r.note}`);
    }
    if (answer.status >= 500) break;
  }
  const s = summarize(r.samples.map((x) => x.us));
  const last = r.samples[r.samples.length - 1];
  env.ctx.progress(
    `    ${r.key}: median ${formatNumber(s.median)} µs, max ${formatNumber(s.max)} µs of Redis time over ${s.count}` +
      (last ? ` (${last.calls} script call(s); ${formatBytes(last.bytes)} answer${last.answer ? `: ${last.answer}` : ''}; ${last.wallMs.toFixed(1)} ms wall; ${last.scripts})` : ''),
  );
  return answers;
}

interface Listed {
  action?: { payload?: unknown } | null;
}

/** What an answer held, in a few words (to tell that a row got the answer it meant to get). */
function describeAnswer(text: string): string {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return '';
  }
  if (body === null || typeof body !== 'object') return '';
  const withPayload = (items: Listed[]) => items.filter((item) => item.action?.payload !== undefined && item.action?.payload !== null).length;
  const more = body.nextCursor ? ', a next page' : '';
  if (Array.isArray(body.items)) return `${body.items.length} items (${withPayload(body.items as Listed[])} with payload)${more}`;
  if (Array.isArray(body.coveredBy)) {
    const below = (body.below ?? {}) as { count?: number; items?: Listed[] };
    const covered = body.coveredBy as Listed[];
    return `coveredBy ${covered.length} (${withPayload(covered)} with payload), below ${below.count ?? '?'} (${below.items?.length ?? 0} listed, ${withPayload(below.items ?? [])} with payload)`;
  }
  if (Array.isArray(body.current)) return `valid ${String(body.valid)}, ${body.current.length} current`;
  if (Array.isArray(body.renewed)) return `${body.renewed.length} renewed${more}`;
  return '';
}

function describeProblem(text: string): string {
  try {
    const problem = JSON.parse(text) as { code?: string; detail?: string };
    return `${problem.code ?? '?'}: ${(problem.detail ?? '').slice(0, 160)}`;
  } catch {
    return text.slice(0, 160);
  }
}

// ---------------------------------------------------------------------------------------
// Requests

interface Granted {
  id: string;
  fencingToken: number;
}

async function acquire(client: JsonClient, body: object): Promise<Granted> {
  return setUp<Granted>(client, 201, 'POST', '/v1/leases', body);
}

/**
 * Sends a set-up request, again after Retry-After when the service sheds it (503 with
 * Retry-After: its event loop lags behind large bodies); throws unless it answers `expected`.
 */
async function setUp<T>(client: JsonClient, expected: number, method: string, path: string, body?: unknown): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const answer = await client.call(method, path, body);
    const retryAfter = Number(answer.headers?.['retry-after'] ?? Number.NaN);
    if (answer.status === 503 && Number.isFinite(retryAfter) && attempt < 10) {
      await sleep(retryAfter * 1000);
      continue;
    }
    if (answer.status !== expected) throw new Error(`${method} ${path} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    return (answer.text === '' ? undefined : JSON.parse(answer.text)) as T;
  }
}

/**
 * Acquires up to `count` leases (201 each), eight at a time (fewer in flight than a load
 * phase's 32: their 100 KB bodies and 64 x 16 paths keep each one long enough that 32 would
 * queue past the service's Redis timeout); stops starting new ones after `budgetS`.
 * Returns the ids granted.
 */
async function fillPile(env: Env, label: string, count: number, bodyOf: (i: number) => object, budgetS = Infinity): Promise<string[]> {
  const ids: string[] = [];
  const started = performance.now();
  let reported = started;
  await runPool(count, 8, async (i) => {
    if ((performance.now() - started) / 1000 > budgetS) return;
    ids.push((await setUp<Granted>(env.client, 201, 'POST', '/v1/leases', bodyOf(i))).id);
    if (performance.now() - reported > 5_000) {
      reported = performance.now();
      env.ctx.progress(`    ${label}: ${formatNumber(ids.length)}/${formatNumber(count)} leases`);
    }
  });
  const seconds = (performance.now() - started) / 1000;
  env.ctx.progress(`    ${label}: ${formatNumber(ids.length)} leases in ${seconds.toFixed(1)} s` + (ids.length < count ? ` (stopped after ${budgetS} s)` : ''));
  return ids;
}

async function renewWithProgress(client: JsonClient, ids: string[], progress: unknown): Promise<void> {
  await runPool(ids.length, 6, async (i) => {
    await setUp(client, 200, 'POST', `/v1/leases/${ids[i]}/renew`, { progress });
  });
}

interface ActionSpec {
  kind: string;
  payload: unknown;
}

function acquireBody(holder: string, res: { path: string; mode: string }[], extra: { action?: ActionSpec; requestId?: string; ttlMs?: number; waitMs?: number } = {}): object {
  return {
    holder,
    resources: res,
    ttlMs: extra.ttlMs ?? LONG_TTL_MS,
    ...(extra.action ? { action: extra.action } : {}),
    ...(extra.requestId ? { requestId: extra.requestId } : {}),
    ...(extra.waitMs ? { waitMs: extra.waitMs } : {}),
  };
}

const holderPath = (holder: string) => `/v1/holders/${encodeURIComponent(holder)}/renew`;

/**
 * Renews every lease of a holder to expire in ttlMs, following nextCursor. A 503 (shed, or
 * the call outlived the service's Redis timeout, and Redis finishes the script anyway) is
 * waited out and the page sent again, three times at most. Returns how many were renewed,
 * or null when 503s left that unknown.
 */
async function renewHolderAll(env: Env, holder: string, ttlMs: number): Promise<number | null> {
  let cursor: string | null = null;
  let renewed = 0;
  let unavailable = 0;
  for (let page = 0; page < 1000; page++) {
    const answer = await env.client.call('POST', holderPath(holder), { ttlMs, ...(cursor ? { cursor } : {}) });
    if (answer.status === 503) {
      if (++unavailable > 3) return null;
      await patiently(() => env.ctx.probe.ping());
      await sleep(Number(answer.headers?.['retry-after'] ?? 1) * 1000);
      continue;
    }
    if (answer.status !== 200) throw new Error(`holder renew answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    const page_ = JSON.parse(answer.text) as { renewed: unknown[]; nextCursor?: string | null };
    renewed += page_.renewed.length;
    cursor = page_.nextCursor ?? null;
    if (!cursor) break;
  }
  return renewed;
}

// ---------------------------------------------------------------------------------------
// Part 2: bytes per tombstone

interface TombstoneVariant {
  key: string;
  label: string;
  end: 'release' | 'revoke' | 'expire';
  wide: boolean;
}

const TOMBSTONE_VARIANTS: TombstoneVariant[] = [
  { key: 'tombReleased', label: 'released (completed)', end: 'release', wide: false },
  { key: 'tombRevoked', label: 'revoked, its orphan resolved', end: 'revoke', wide: false },
  { key: 'tombExpired', label: 'expired, its orphan resolved', end: 'expire', wide: false },
  { key: 'tombReleasedWide', label: 'released, 64 resources x 16 segments', end: 'release', wide: true },
];

interface TombstoneMeasurement {
  leases: number;
  /** family -> bytes per ended lease */
  perLease: Record<string, number>;
  total: number;
  /** family -> smallest TTL met (ms; -1: none) */
  ttlMs: Record<string, number>;
  /** Keys without a TTL an ended lease left. */
  withoutTtl: number;
  /** family -> in how long the reaper drops keys of it that have no TTL (resolved orphans), ms. */
  dropInMs: Record<string, number>;
}

async function allKeys(probe: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await probe.scan(cursor, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

async function measureTombstones(env: Env): Promise<Record<string, TombstoneMeasurement>> {
  const { ctx, client, limits } = env;
  const results: Record<string, TombstoneMeasurement> = {};
  const payload = payloadOfSize(1024);
  const progress = payloadOfSize(Math.min(16 * 1024, limits.progressBytes));
  for (const variant of TOMBSTONE_VARIANTS) {
    const count = variant.wide ? Math.min(5, env.sizes.tombstones) : env.sizes.tombstones;
    const holder = `tomb-${variant.key}`;
    const ended: { id: string; requestId: string; orphanId: string | null }[] = [];
    let expiresAt = 0;
    await runPool(count, 8, async (i) => {
      const requestId = `${holder}-${i}-0123456789abcdef`;
      const res = variant.wide ? resources(distinctPaths(`tw${i}`), 'exclusive') : [{ path: `tomb/${variant.key}/t-${i}`, mode: 'exclusive' }];
      const body = acquireBody(holder, res, {
        action: { kind: `tomb-${variant.key}`, payload },
        requestId,
        ttlMs: variant.end === 'expire' ? limits.ttlMinMs : LONG_TTL_MS,
      });
      const lease = await client.expect<{ id: string; expiresAt: string }>(201, 'POST', '/v1/leases', body);
      await client.expect(200, 'POST', `/v1/leases/${lease.id}/renew`, { progress });
      expiresAt = Math.max(expiresAt, Date.parse(lease.expiresAt));
      ended[i] = { id: lease.id, requestId, orphanId: null };
    });
    if (variant.end === 'expire') await sleep(Math.max(0, expiresAt - Date.now()) + 300);
    await runPool(count, 8, async (i) => {
      const e = ended[i]!;
      if (variant.end === 'release') {
        await client.expect(200, 'POST', `/v1/leases/${e.id}/release`, { outcome: 'completed' });
        return;
      }
      if (variant.end === 'revoke') {
        e.orphanId = (await client.expect<{ orphanId?: string }>(200, 'DELETE', `/v1/leases/${e.id}`)).orphanId ?? null;
      } else {
        // A read settles it if the reaper has not yet: orphaned, with its orphan.
        const answer = await client.call('GET', `/v1/leases/${e.id}`);
        e.orphanId = (JSON.parse(answer.text) as { orphanId?: string | null }).orphanId ?? null;
      }
      if (!e.orphanId) throw new Error(`tombstones (${variant.label}): lease ${e.id} has no orphan`);
      await client.expect(200, 'POST', `/v1/orphans/${e.orphanId}/resolve`, { resolution: 'discard' });
    });
    const keys = await allKeys(ctx.probe);
    const perLease: Record<string, number> = {};
    const ttl: Record<string, number> = {};
    let withoutTtl = 0;
    const dropInMs: Record<string, number> = {};
    for (const e of ended) {
      const mine = keys.filter((k) => k.includes(e.id) || k.includes(e.requestId) || (e.orphanId !== null && k.includes(e.orphanId)));
      for (const key of mine) {
        const [bytes, ttlMs] = await Promise.all([ctx.probe.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') as Promise<number | null>, ctx.probe.pttl(key)]);
        if (ttlMs === -2) continue; // gone meanwhile
        const rest = key.startsWith(ctx.prefix) ? key.slice(ctx.prefix.length) : key;
        const family = rest.includes(':') ? rest.slice(0, rest.indexOf(':')) : rest;
        perLease[family] = (perLease[family] ?? 0) + Number(bytes ?? 0) / count;
        ttl[family] = ttl[family] === undefined ? ttlMs : Math.min(ttl[family], ttlMs);
        if (ttlMs === -1) {
          withoutTtl++;
          // A resolved orphan has no TTL: the reaper drops it when its time in P.."oexp" comes.
          const dropAt = e.orphanId !== null && key.includes(e.orphanId) ? await ctx.probe.zscore(`${ctx.prefix}oexp`, e.orphanId) : null;
          if (dropAt !== null) dropInMs[family] = Math.min(dropInMs[family] ?? Infinity, Number(dropAt) - Date.now());
        }
      }
    }
    const total = Object.values(perLease).reduce((a, b) => a + b, 0);
    results[variant.key] = { leases: count, perLease, total, ttlMs: ttl, withoutTtl, dropInMs };
    ctx.progress(`    tombstone, ${variant.label}: ${formatNumber(total)} B per ended lease (${describeTombstone(results[variant.key]!)})`);
  }
  return results;
}

function describeTombstone(m: TombstoneMeasurement): string {
  return Object.entries(m.perLease)
    .sort((a, b) => b[1] - a[1])
    .map(([family, bytes]) => {
      const ttl = m.ttlMs[family] ?? -2;
      const drop = m.dropInMs[family];
      const kept = ttl !== -1 ? `for ${(ttl / 3_600_000).toFixed(2)} h` : drop !== undefined ? `for ${(drop / 3_600_000).toFixed(2)} h (no TTL: the reaper drops it)` : 'with NO TTL';
      return `${family}: ${formatNumber(bytes)} B ${kept}`;
    })
    .join(', ');
}

// ---------------------------------------------------------------------------------------
// The state

/** What the rows run against. */
interface State {
  /** 64 paths (16 segments, 512 chars, parting at the first) every pile lease holds, shared. */
  pilePaths: string[];
  /** The parent of pilePaths[0] (15 segments): `covering` shared leases hold it. */
  parent: string;
  /** Leases with an action, payload and progress, of one holder; granted first. */
  holder: string;
  holderPile: number;
  /** Leases without an action, of another holder. */
  plainHolder: string;
  plainPile: number;
  covering: number;
  big: Granted;
  bigPaths: string[];
  plain: Granted;
}

async function buildState(env: Env): Promise<State> {
  const { ctx, client, limits, sizes } = env;
  // The piles' payloads and checkpoints are strings of the full size: no script decodes
  // them (what costs Redis is their size), and a thousand wide ones would keep the service
  // parsing for a minute. The single leases of the rows carry wide ones.
  const payload = payloadOfSize(limits.payloadBytes);
  const progress = payloadOfSize(limits.progressBytes);
  const pilePaths = distinctPaths('pile');
  const parent = parentOf(pilePaths[0]!);
  const shared = resources(pilePaths, 'shared');

  // Granted first: the first page of every listing.
  const holder = longName('pile-holder');
  const holderTarget = sizes.holderLeases || limits.holderRenewMax + 1;
  ctx.progress(
    `  building: ${holderTarget} leases of one holder on the same 64 shared paths of 16 segments and 512 characters, ` +
      `each with a ${kib(limits.payloadBytes)} payload and a ${kib(limits.progressBytes)} checkpoint`,
  );
  const holderIds = await fillPile(
    env,
    'holder pile',
    holderTarget,
    (i) => acquireBody(holder, shared, { action: { kind: longName('wc-pile'), payload }, requestId: longName(`p${i}`) }),
    sizes.holderBudgetS,
  );
  await renewWithProgress(client, holderIds, progress);

  const plainHolder = longName('plain-pile-holder');
  await fillPile(env, 'leases without an action of another holder', sizes.plainLeases, () => acquireBody(plainHolder, shared));

  const covering = sizes.coveringLeases;
  const coverIds = await fillPile(env, `shared leases on the parent of the first path, with payload and checkpoint`, covering, (i) =>
    acquireBody(longName('cover-holder'), [{ path: parent, mode: 'shared' }], { action: { kind: longName('wc-cover'), payload }, requestId: longName(`c${i}`) }),
  );
  await renewWithProgress(client, coverIds, progress);

  const bigPaths = distinctPaths('big');
  const big = await acquire(
    client,
    acquireBody(longName('big-holder'), resources(bigPaths, 'exclusive'), {
      action: { kind: longName('wc-big'), payload: wideJson(limits.payloadBytes) },
      requestId: longName('big'),
    }),
  );
  await renewWithProgress(client, [big.id], wideJson(limits.progressBytes));
  const plain = await acquire(client, acquireBody(longName('plain-holder'), resources(distinctPaths('plain'), 'exclusive'), { requestId: longName('plain') }));
  return { pilePaths, parent, holder, holderPile: holderIds.length, plainHolder, plainPile: sizes.plainLeases, covering, big, bigPaths, plain };
}

// ---------------------------------------------------------------------------------------
// The scenario

export const worstCase: Scenario = {
  name: 'worst-case',
  summary: 'Redis time (INFO commandstats, SLOWLOG) of one request of each route in the worst legal state built for it, and bytes per tombstone',
  async run(ctx: Context): Promise<ScenarioResult> {
    const sizes = ctx.sizes.worstCase ?? (ctx.options.smoke ? WORST_CASE_SIZES.smoke : WORST_CASE_SIZES.full);
    const limits = limitsOf(ctx.serviceConfig);
    await ctx.resetStore();
    // A service of its own, started now: the scripts it loads are those the meter names
    // (their files may have changed since the run's service started).
    await ctx.stopService();
    const service = await ctx.service();
    const lockKey = `${ctx.prefix}reaper`;
    const client = new JsonClient(service.url, 16, 120_000);
    const meter = new Meter(ctx.probe, lockKey);
    const reaper = new ReaperHold(ctx, lockKey);
    const env: Env = { ctx, client, meter, limits, sizes, rows: new Map() };
    const seconds: Record<string, number> = {};
    let lapStarted = performance.now();
    const lap = (name: string) => {
      const now = performance.now();
      seconds[name] = (now - lapStarted) / 1000;
      lapStarted = now;
    };
    let tombstones: Record<string, TombstoneMeasurement> = {};
    let state: State | undefined;
    let error: Error | undefined;
    await meter.open();
    try {
      ctx.progress('  bytes per tombstone (1 KiB payload, 16 KiB checkpoint, requestId)');
      tombstones = await measureTombstones(env);
      lap('tombstones');
      await reaper.pause();
      state = await buildState(env);
      lap('build');
      await ctx.compactAof();
      lap('compactAof');
      await measureRoutes(env, state, reaper, lap);
    } catch (e) {
      error = e instanceof Error ? e : new Error(String(e));
    } finally {
      await reaper.resume().catch(() => undefined);
      await meter.close().catch(() => undefined);
      client.close();
      // The state is large (hundreds of MB with the full sizes): leave Redis empty, freeing
      // it in Redis' background thread rather than blocking for seconds.
      await patiently(() => ctx.probe.flushall('ASYNC')).catch(() => undefined);
      await patiently(() => ctx.resetStore()).catch(() => undefined);
      lap('cleanup');
    }
    const result = report(env, state, tombstones, seconds);
    if (error) throw new ScenarioFailure(error.message, result);
    const failed = [...env.rows.values()].filter((r) => r.samples.some((s) => s.status >= 500));
    if (failed.length > 0) {
      throw new ScenarioFailure(
        `requests answered 5xx: ${failed.map((r) => `${r.key} (${r.samples.filter((s) => s.status >= 500).map((s) => s.status).join(', ')})`).join('; ')}`,
        result,
      );
    }
    return result;
  },
};

async function measureRoutes(env: Env, s: State, reaper: ReaperHold, lap: (name: string) => void): Promise<void> {
  const { ctx, client, limits, sizes } = env;
  const { reps, heavyReps } = sizes;
  const payload = wideJson(limits.payloadBytes);
  const progress = wideJson(limits.progressBytes);
  const big = `64 resources x 16 segments of 512 chars, ${kib(limits.payloadBytes)} payload and ${kib(limits.progressBytes)} progress of [[],[],...]`;
  const pileLease = `64 x 16-segment resources, ${kib(limits.payloadBytes)} payload, ${kib(limits.progressBytes)} progress`;
  const call = (method: string, path: string, body?: unknown) => () => client.call(method, path, body);

  ctx.progress('  leases: read, renew');
  await measure(env, row(env, 'get', 'GET /v1/leases/{id}', `lease of ${big}`, [200]), reps, call('GET', `/v1/leases/${s.big.id}`));
  await measure(
    env,
    row(env, 'renewProgress', 'POST /v1/leases/{id}/renew', `lease of ${big}; renewed with a new ${kib(limits.progressBytes)} progress`, [200]),
    reps,
    call('POST', `/v1/leases/${s.big.id}/renew`, { progress }),
  );
  await measure(
    env,
    row(env, 'renewPlain', 'POST /v1/leases/{id}/renew', 'lease of 64 x 16-segment resources without an action (every index entry rescored)', [200]),
    reps,
    call('POST', `/v1/leases/${s.plain.id}/renew`, {}),
  );

  ctx.progress('  acquire');
  const requestBody = (paths: string[], tag: string, extra: { waitMs?: number } = {}) =>
    acquireBody(longName(`${tag}-holder`), resources(paths, 'exclusive'), { action: { kind: longName('wc-acquire'), payload }, requestId: longName(tag), ...extra });
  await measure(
    env,
    row(env, 'acquireGranted', 'POST /v1/leases (201)', `64 new exclusive resources x 16 segments of 512 chars, ${kib(limits.payloadBytes)} payload, requestId`, [201]),
    reps,
    (rep) => client.call('POST', '/v1/leases', requestBody(distinctPaths(`g${rep}`), `granted-${rep}`)),
  );
  await measure(
    env,
    row(env, 'acquireConflict', 'POST /v1/leases (409)', `the same, on 64 resources a lease of ${big} holds`, [409]),
    reps,
    (rep) => client.call('POST', '/v1/leases', requestBody(s.bigPaths, `conflict-${rep}`)),
  );
  const onEachPath = s.holderPile + s.plainPile;
  await measure(
    env,
    row(
      env,
      'acquireConflictShared',
      'POST /v1/leases (409)',
      `the same, on 64 resources each held by ${formatNumber(onEachPath)} shared leases (the first also covered by ${s.covering} more)`,
      [409],
    ),
    reps,
    (rep) => client.call('POST', '/v1/leases', requestBody(s.pilePaths, `conflict-shared-${rep}`)),
  );
  await measure(
    env,
    row(env, 'acquireWaitTimeout', 'POST /v1/leases waitMs (409)', `the first 409 with waitMs ${sizes.waitMs}: queued, refused at the deadline`, [409], true),
    heavyReps,
    (rep) => client.call('POST', '/v1/leases', requestBody(s.bigPaths, `wait-${rep}`, { waitMs: sizes.waitMs })),
  );
  const blockers: Granted[] = [];
  await measure(
    env,
    row(
      env,
      'acquireWaitGranted',
      'POST /v1/leases waitMs (201)',
      `64 x 16-segment resources with waitMs ${sizes.waitMs * 3}, granted once their blocker (64 x 16, no action) is released mid-wait (the release left out)`,
      [201],
      true,
    ),
    heavyReps,
    async (rep) => {
      const waiting = client.call('POST', '/v1/leases', requestBody(distinctPaths(`w${rep}`), `waiter-${rep}`, { waitMs: sizes.waitMs * 3 }));
      await sleep(sizes.waitMs / 2);
      await client.expect(200, 'POST', `/v1/leases/${blockers[rep]!.id}/release`, {});
      return waiting;
    },
    {
      prepare: async (rep) => {
        blockers[rep] = await acquire(client, acquireBody(longName('blocker'), resources(distinctPaths(`w${rep}`), 'exclusive')));
      },
      background: (name) => isBackground(name) || name === 'release',
    },
  );
  lap('acquire');

  ctx.progress('  fencing check, listings, resource view');
  await measure(
    env,
    row(
      env,
      'fencing',
      'POST /v1/fencing/check',
      `a 16-segment path with ${formatNumber(onEachPath)} shared leases on it and ${s.covering} on its parent; a stale token`,
      [200],
    ),
    reps,
    call('POST', '/v1/fencing/check', { path: s.pilePaths[0], fencingToken: 1 }),
  );
  const first = `${formatNumber(s.holderPile)} leases of ${pileLease}`;
  await measure(env, row(env, 'list', 'GET /v1/leases', `limit=${limits.listMax}, no filter: ${first} first`, [200]), heavyReps, call('GET', `/v1/leases?limit=${limits.listMax}`));
  await measure(
    env,
    row(env, 'listPayload', 'GET /v1/leases include=payload', `limit=${limits.listMax}&include=payload, no filter: as above`, [200]),
    heavyReps,
    call('GET', `/v1/leases?limit=${limits.listMax}&include=payload`),
  );
  const prefix = encodeURIComponent(s.parent);
  const below = `${first} and ${formatNumber(s.plainPile)} without an action below it, ${s.covering} on it`;
  await measure(
    env,
    row(env, 'listPrefix', 'GET /v1/leases prefix', `limit=${limits.listMax}, prefix = a 15-segment path with ${below}`, [200]),
    heavyReps,
    call('GET', `/v1/leases?limit=${limits.listMax}&prefix=${prefix}`),
  );
  await measure(
    env,
    row(env, 'listPrefixPayload', 'GET /v1/leases prefix include=payload', `as above with include=payload`, [200]),
    heavyReps,
    call('GET', `/v1/leases?limit=${limits.listMax}&prefix=${prefix}&include=payload`),
  );
  const viewed = `a 15-segment path held by ${s.covering} shared leases (${kib(limits.payloadBytes)} payload, ${kib(limits.progressBytes)} progress) with ${formatNumber(onEachPath)} below`;
  await measure(env, row(env, 'resource', 'GET /v1/resources/{path}', viewed, [200]), heavyReps, call('GET', `/v1/resources/${s.parent}`));
  await measure(
    env,
    row(env, 'resourcePayload', 'GET /v1/resources/{path} include=payload', `${viewed}, include=payload`, [200]),
    heavyReps,
    call('GET', `/v1/resources/${s.parent}?include=payload`),
  );
  lap('reads');

  ctx.progress('  release, revoke, orphans');
  const ended = async (tag: string, kind: string, count: number): Promise<Granted[]> => {
    const leases: Granted[] = [];
    for (let i = 0; i < count; i++) {
      leases.push(
        await acquire(client, acquireBody(longName(`${tag}-holder`), resources(distinctPaths(`${tag}${i}`), 'exclusive'), { action: { kind, payload }, requestId: longName(`${tag}${i}`) })),
      );
    }
    await renewWithProgress(
      client,
      leases.map((l) => l.id),
      progress,
    );
    return leases;
  };
  const orphanOf = (answer: JsonResponse) => (answer.status === 200 ? ((JSON.parse(answer.text) as { orphanId?: string }).orphanId ?? null) : null);
  const releaseLeases = await ended('rel', longName('wc-released'), reps);
  await measure(env, row(env, 'release', 'POST /v1/leases/{id}/release', `completed, lease of ${big}, requestId`, [200]), reps, (rep) =>
    client.call('POST', `/v1/leases/${releaseLeases[rep]!.id}/release`, { outcome: 'completed' }),
  );
  const abandonLeases = await ended('ab', longName('wc-abandoned'), reps);
  const abandoned = await measure(env, row(env, 'releaseAbandoned', 'POST /v1/leases/{id}/release', `abandoned: a lease of ${big} becomes an orphan`, [200]), reps, (rep) =>
    client.call('POST', `/v1/leases/${abandonLeases[rep]!.id}/release`, { outcome: 'abandoned' }),
  );
  const revokeKind = longName('wc-revoked');
  const revokeLeases = await ended('rv', revokeKind, reps);
  const revoked = await measure(env, row(env, 'revoke', 'DELETE /v1/leases/{id}', `a lease of ${big} with an action: it becomes an orphan`, [200]), reps, (rep) =>
    client.call('DELETE', `/v1/leases/${revokeLeases[rep]!.id}`),
  );
  const revokedOrphans = revoked.map(orphanOf).filter((id): id is string => id !== null);
  const abandonedOrphans = abandoned.map(orphanOf).filter((id): id is string => id !== null);
  await measure(env, row(env, 'orphanGet', 'GET /v1/orphans/{id}', `orphan of ${big}`, [200]), reps, call('GET', `/v1/orphans/${revokedOrphans[revokedOrphans.length - 1] ?? 'none'}`));
  await measure(
    env,
    row(env, 'resolve', 'POST /v1/orphans/{id}/resolve', `discard a pending orphan of ${big} (frees its 64 x 5 index entries)`, [200]),
    Math.min(reps, abandonedOrphans.length),
    (rep) => client.call('POST', `/v1/orphans/${abandonedOrphans[rep]}/resolve`, { resolution: 'discard' }),
  );
  // A claim looks at the queue of each of its kinds: 31 more kinds, each with an orphan newer
  // than the revoked leases' ones, so that the claim still takes one of those.
  const otherKinds = Array.from({ length: KINDS_MAX - 1 }, (_, i) => longName(`wc-kind-${i}`));
  await runPool(otherKinds.length, 8, async (i) => {
    const lease = await acquire(client, acquireBody('kinds-holder', [{ path: `kinds/k-${i}`, mode: 'exclusive' }], { action: { kind: otherKinds[i]!, payload: { i } } }));
    await client.expect(200, 'DELETE', `/v1/leases/${lease.id}`);
  });
  lap('changes');

  ctx.progress(`  holder renew, claims with due leases, the reaper's sweeps`);
  const more = s.holderPile > limits.holderRenewMax ? 'more than' : 'fewer than';
  await measure(
    env,
    row(env, 'holderRenew', 'POST /v1/holders/{holder}/renew', `holder of ${first}: ${more} HOLDER_RENEW_MAX ${limits.holderRenewMax}`, [200]),
    heavyReps,
    call('POST', holderPath(s.holder), {}),
  );
  await measure(
    env,
    row(env, 'holderRenewPlain', 'POST /v1/holders/{holder}/renew', `holder of ${formatNumber(s.plainPile)} leases of 64 shared x 16-segment resources without an action (every index entry rescored)`, [200]),
    heavyReps,
    call('POST', holderPath(s.plainHolder), {}),
  );
  lap('holder renew');

  // Leases that expire while the reaper is away, oldest first: those the claims settle, then
  // those the reaper's first sweeps settle.
  const shared = resources(s.pilePaths, 'shared');
  const claimDue = sizes.claimDue * heavyReps;
  await fillPile(env, 'leases due for the claims', claimDue, () => acquireBody(longName('claim-pile-holder'), shared, { ttlMs: limits.ttlMinMs }));
  const sweepDue = sizes.sweepLeases || limits.reaperBatch;
  await fillPile(env, 'leases due for the sweep', sweepDue, () => acquireBody(longName('sweep-pile-holder'), shared, { ttlMs: limits.ttlMinMs }));
  await sleep(limits.ttlMinMs + 200);
  await measure(
    env,
    row(
      env,
      'claim',
      'POST /v1/orphans/claim',
      `the oldest (of 32 kinds of 128 chars) a revoked lease's orphan of ${big}; ${sizes.claimDue} expired leases of 64 x 16 resources due for it to settle first`,
      [200],
    ),
    Math.min(heavyReps, revokedOrphans.length),
    call('POST', '/v1/orphans/claim', { holder: longName('claimer'), kinds: [...otherKinds, revokeKind], ttlMs: LONG_TTL_MS }),
  );
  lap('claims');
  const before = await leaseGauges(ctx);
  await env.meter.start();
  await reaper.resume();
  const lastCall = await measureSweep(
    env,
    row(env, 'sweepExpire', 'reaper sweep (one call)', '', [200]),
    sweepDue,
    async () => (await leaseGauges(ctx)).active <= before.active - sweepDue,
    `leases of 64 shared x 16-segment resources without an action, expired unsettled (each frees its 64 x 5 index entries)`,
    -1,
    // All of them, so that the next row's calls are the orphans' only.
    Math.max(20, sizes.sweepWindowS),
  );
  // The reaper leads from here on. The holder's pile expires in the same ms (per holder renew
  // call), so it sweeps them back to back, each becoming an orphan.
  const orphaned = (await leaseGauges(ctx)).orphaned;
  const orphansDue = (await renewHolderAll(env, s.holder, limits.ttlMinMs)) ?? s.holderPile;
  await measureSweep(
    env,
    row(env, 'sweepOrphan', 'reaper sweep (one call)', '', [200]),
    orphansDue,
    async () => (await leaseGauges(ctx)).orphaned >= orphaned + orphansDue,
    `leases of ${pileLease}, expired together: each becomes an orphan`,
    lastCall,
    sizes.sweepWindowS + limits.ttlMinMs / 1000,
  );
  lap('sweeps');

  ctx.progress('  orphan listings');
  const orphans = `${formatNumber(orphansDue)} orphans of ${pileLease}, after ${revokedOrphans.length + abandonedOrphans.length + otherKinds.length} others`;
  await measure(env, row(env, 'orphanList', 'GET /v1/orphans', `limit=${limits.listMax}: ${orphans}`, [200]), heavyReps, call('GET', `/v1/orphans?limit=${limits.listMax}`));
  await measure(
    env,
    row(env, 'orphanListPayload', 'GET /v1/orphans include=payload', `limit=${limits.listMax}&include=payload: as above`, [200]),
    heavyReps,
    call('GET', `/v1/orphans?limit=${limits.listMax}&include=payload`),
  );
  lap('orphan listings');
}

/** The lease_leases gauges of GET /metrics (read from Redis at scrape time). */
async function leaseGauges(ctx: Context): Promise<{ active: number; orphaned: number }> {
  const service = await ctx.service();
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const gauge = (state: string) => Number(new RegExp(`^lease_leases\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { active: gauge('active'), orphaned: gauge('orphaned') };
}

/** Sweep calls that settle something take milliseconds with these leases; idle ones, tens of µs. */
const SWEEP_WORK_US = 1000;

/**
 * Records the reaper's sweep calls (it leads: this process let go of its key; the meter was
 * started before) after SLOWLOG entry `afterId` until `done()` says the `due` leases are
 * settled or `windowS` has passed (it settles the rest afterwards, and the rows after this
 * one leave its calls out). Every call that did work is a sample: with the batch the
 * reaper is configured with and whatever bound a sweep keeps. Returns the last entry's id.
 */
async function measureSweep(env: Env, r: Row, due: number, done: () => Promise<boolean>, what: string, afterId: number, windowS: number): Promise<number> {
  const { ctx, meter, limits } = env;
  const started = performance.now();
  let settled = false;
  while (performance.now() - started < windowS * 1000) {
    await sleep(100);
    if (await patiently(done)) {
      settled = true;
      break;
    }
  }
  const wallMs = performance.now() - started;
  const all = await meter.scriptCalls();
  const calls = all.filter((c) => c.id > afterId && c.name === 'sweep');
  const working = calls.filter((c) => c.us >= SWEEP_WORK_US);
  r.built =
    `${formatNumber(due)} ${what}; REAPER_BATCH ${limits.reaperBatch}: ${working.length} sweep calls did work in ${formatNumber(wallMs / 1000, 1)} s` +
    (settled ? '' : ` (watched ${windowS} s, not all settled yet)`);
  for (const c of working) r.samples.push({ status: 200, us: c.us, calls: 1, wallMs, bytes: 0, scripts: `${c.name} ${formatNumber(c.us)} µs`, answer: '', largestUs: c.us, shed: 0 });
  const s = summarize(working.map((c) => c.us));
  ctx.progress(`    ${r.key}: ${r.built}: median ${formatNumber(s.median)} µs, max ${formatNumber(s.max)} µs per call`);
  return all.reduce((last, c) => Math.max(last, c.id), afterId);
}

// ---------------------------------------------------------------------------------------
// Report

function report(env: Env, state: State | undefined, tombstones: Record<string, TombstoneMeasurement>, seconds: Record<string, number>): ScenarioResult {
  const figures: Record<string, Figure> = {};
  const lines: string[] = [];
  for (const key of ROUTE_KEYS) {
    const r = env.rows.get(key);
    if (!r) continue;
    const s = summarize(r.samples.map((x) => (r.perCall ? x.largestUs : x.us)));
    const usable = r.samples.length > 0 && r.samples.every((x) => r.expected.includes(x.status));
    let measured = r.samples.length > 0 ? `median ${formatNumber(s.median)} µs, max ${formatNumber(s.max)} µs` : 'not measured';
    let built = r.built;
    if (r.perCall && r.samples.length > 0) {
      const all = summarize(r.samples.map((x) => x.us));
      const looks = r.samples.map((x) => x.calls);
      const together = `all its looks together (${Math.min(...looks)} to ${Math.max(...looks)} calls): median ${formatNumber(all.median)} µs, max ${formatNumber(all.max)} µs`;
      measured = `its largest look: ${measured}; ${together}`;
      built = `${r.built}; its largest look (${together})`;
    }
    const remark = r.note ? `; ${r.note}` : '';
    figures[key] = figure(`${r.route}: ${r.built}; ${measured}${remark}`, usable ? s.max / 1000 : Number.NaN, 'ms');
    const verdict = !usable ? `n/a${remark}` : s.max < ROUTE_BUDGET_MS * 1000 ? 'yes' : 'NO';
    lines.push(`| ${r.route} | ${built} | ${r.samples.length ? formatNumber(s.median) : '-'} | ${r.samples.length ? formatNumber(s.max) : '-'} | ${verdict} |`);
  }
  figures.budget = figure('Redis time budget per request (issue 14)', ROUTE_BUDGET_MS, 'ms');
  for (const variant of TOMBSTONE_VARIANTS) {
    const m = tombstones[variant.key];
    if (!m) continue;
    figures[variant.key] = figure(`bytes per tombstone, ${variant.label} (1 KiB payload, 16 KiB progress, requestId): every key it leaves`, m.total, 'B');
  }
  const tombText = TOMBSTONE_VARIANTS.filter((v) => tombstones[v.key])
    .map((v) => `${v.label}: ${describeTombstone(tombstones[v.key]!)}`)
    .join('; ');
  if (tombText) figures.tombDetail = figure('bytes per tombstone by key family (MEMORY USAGE), and how long kept', Number.NaN, 'text', tombText);
  env.ctx.progress(
    ['worst legal request per route, Redis time of one request (µs):', '| route | worst case built | median | max | < 5 ms |', '|---|---|---|---|---|', ...lines]
      .map((l) => `  ${l}`)
      .join('\n'),
  );
  return {
    figures,
    details: {
      budgetMs: ROUTE_BUDGET_MS,
      limits: env.limits,
      sizes: env.sizes,
      state: state
        ? { holderPile: state.holderPile, plainPile: state.plainPile, covering: state.covering }
        : null,
      // Every sample's Redis µs; the first few samples whole (the sweeps have hundreds).
      rows: Object.fromEntries(
        [...env.rows.entries()].map(([key, r]) => [
          key,
          { route: r.route, built: r.built, expected: r.expected, note: r.note ?? null, us: r.samples.map((x) => x.us), samples: r.samples.slice(0, 5) },
        ]),
      ),
      tombstones,
      seconds,
    },
  };
}
