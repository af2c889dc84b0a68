// HTTP load with autocannon, used as a library. Each connection loops over `requests` in
// order, one request in flight at a time (no pipelining: a conductor waits for its
// answer), so `connections` is the number of requests in flight: a closed loop.
// A sequence such as acquire -> release passes the lease id along in autocannon's
// per-connection context (onResponse stores it, setupRequest reads it).
//
// Latencies are recorded here from autocannon's 'response' events, in fractional ms and per
// status: autocannon's own histogram keeps whole milliseconds only, too coarse to compare
// a 3 ms p50 with a 3.4 ms one, and it cannot tell an acquire (201) from the release (200)
// that follows it on the same connection.
import autocannon from 'autocannon';
import { latencySummary, type LatencySummary } from './stats.js';

export type LoadRequest = autocannon.Request;

export interface LoadSpec {
  /** Server base URL. */
  url: string;
  connections: number;
  requests: LoadRequest[];
  /** Statuses that mean "worked as intended"; any other status or a socket error fails the phase. */
  expect: number[];
  /** Sent with every request besides content-type (e.g. authorization). */
  headers?: Record<string, string>;
}

export interface LoadResult {
  /** Seconds autocannon ran (measured by autocannon). */
  durationS: number;
  responses: number;
  /** All responses per second. */
  rps: number;
  /** status -> count */
  statuses: Record<string, number>;
  /** status -> latency of the responses with that status (ms) */
  latency: Record<string, LatencySummary>;
  errors: number;
  timeouts: number;
  /** Times a sequence restarted because a setupRequest returned nothing. */
  resets: number;
}

export type LoadLength = { durationS: number } | { amount: number };

/** Seconds after which autocannon gives up on one answer (a stuck request is a failure). */
const REQUEST_TIMEOUT_S = 10;
const SAMPLE_INTERVAL_MS = 25;

export async function runLoad(spec: LoadSpec, length: LoadLength, onTick?: (responsesThisSecond: number) => void): Promise<LoadResult> {
  const latencies = new Map<number, number[]>();
  // Without a callback autocannon returns its event emitter, made thenable (the types only say Promise).
  const instance = autocannon({
    url: spec.url,
    connections: spec.connections,
    pipelining: 1,
    timeout: REQUEST_TIMEOUT_S,
    // autocannon only notices that a run is over (duration elapsed, amount reached) on its
    // sampling tick, 1 s by default: a 0.5 s warm-up would last 1 s and a fill would end on
    // a whole second. Its per-sample statistics are not used here.
    sampleInt: SAMPLE_INTERVAL_MS,
    headers: { 'content-type': 'application/json', ...spec.headers },
    requests: spec.requests,
    ...('amount' in length ? { amount: length.amount } : { duration: length.durationS }),
  }) as unknown as NodeJS.EventEmitter & PromiseLike<autocannon.Result>;
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    let list = latencies.get(statusCode);
    if (!list) latencies.set(statusCode, (list = []));
    list.push(responseTimeMs);
  });
  if (onTick) instance.on('tick', (tick: { counter: number }) => onTick(tick.counter));
  const result = await instance;

  const statuses: Record<string, number> = {};
  for (const [status, { count }] of Object.entries(result.statusCodeStats ?? {})) statuses[status] = Number(count);
  const responses = Object.values(statuses).reduce((total, n) => total + n, 0);
  const latency: Record<string, LatencySummary> = {};
  for (const [status, values] of latencies) latency[String(status)] = latencySummary(values);
  const loadResult: LoadResult = {
    durationS: result.duration,
    responses,
    rps: responses / result.duration,
    statuses,
    latency,
    errors: result.errors,
    timeouts: result.timeouts,
    resets: result.resets ?? 0,
  };
  raw.set(loadResult, latencies);
  return loadResult;
}

/** Every latency of each result, kept out of the result itself (which goes to the JSON record). */
const raw = new WeakMap<LoadResult, Map<number, number[]>>();

/** The latency of one status over several runs together (as if they were one). */
export function pooledLatency(results: LoadResult[], status: number): LatencySummary {
  return latencySummary(results.flatMap((result) => raw.get(result)?.get(status) ?? []));
}

/** Throws unless every answer had an expected status and no socket failed. */
export function checkLoad(name: string, spec: LoadSpec, result: LoadResult): void {
  const unexpected = Object.entries(result.statuses).filter(([status]) => !spec.expect.includes(Number(status)));
  if (unexpected.length === 0 && result.errors === 0) return;
  const parts = unexpected.map(([status, count]) => `${count} x ${status}`);
  if (result.errors > 0) parts.push(`${result.errors} socket errors (${result.timeouts} timeouts)`);
  throw new Error(`${name}: unexpected answers: ${parts.join(', ')} (expected only ${spec.expect.join('/')})`);
}

/** Responses per second with one of these statuses. */
export function rateOf(result: LoadResult, ...statuses: number[]): number {
  return statuses.reduce((total, status) => total + (result.statuses[String(status)] ?? 0), 0) / result.durationS;
}

/** Latency of the responses with this status (an empty summary when there were none). */
export function latencyOf(result: LoadResult, status: number): LatencySummary {
  return result.latency[String(status)] ?? latencySummary([]);
}
