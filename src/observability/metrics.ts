// Every Prometheus metric the service exports, in one place: names, units, labels. A
// registry per app, so tests and several apps in one process never share (or
// double-register) metrics. Names follow Prometheus' guide (base units, `_total` for
// counters); label values come from fixed sets, never lease ids, holders or paths.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Mode } from '../mode.js';

// Every value a label can take: the types below, and the series set to 0 at start (so
// rate() sees a counter from its first increase), both come from these lists.
const ACQUIRE_OUTCOMES = ['granted', 'waited', 'conflict', 'error'] as const;
const MODES = ['exclusive', 'shared', 'mixed'] as const;
const RENEW_OUTCOMES = ['renewed', 'lost', 'not_found', 'forbidden', 'error'] as const;
const RELEASE_OUTCOMES = ['completed', 'failed', 'abandoned', 'lost', 'not_found', 'forbidden', 'error'] as const;

export type AcquireOutcome = (typeof ACQUIRE_OUTCOMES)[number];
export type ModeLabel = (typeof MODES)[number];
export type RenewOutcome = (typeof RENEW_OUTCOMES)[number];
export type ReleaseOutcome = (typeof RELEASE_OUTCOMES)[number];

/** Latencies of calls that answer at once: sub-millisecond to Redis, a few ms over HTTP. */
const FAST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Waiting acquires and orphan claims long-poll for up to minutes. */
const WAIT_BUCKETS = [...FAST_BUCKETS, 30, 60, 300];

export class ServiceMetrics {
  readonly registry = new Registry();

  // HTTP, per replica.
  readonly httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from request to response, by route template (not the URL: no ids), method and status class (2xx..5xx).',
    labelNames: ['route', 'method', 'status_class'] as const,
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });

  // The lease API, per replica: sum over replicas.
  readonly acquires = new Counter({
    name: 'lease_acquires_total',
    help:
      'Acquire requests that passed validation, by outcome (granted at once or after a retried requestId; waited: granted after ' +
      'queueing with waitMs; conflict: answered 409; error: any other answer) and mode (of the requested resources: exclusive, ' +
      'shared, or mixed).',
    labelNames: ['outcome', 'mode'] as const,
    registers: [this.registry],
  });
  readonly acquireDuration = new Histogram({
    name: 'lease_acquire_duration_seconds',
    help: 'Time to answer an acquire, by whether it queued (waited="true": a waitMs request that met a conflict) or answered at once.',
    labelNames: ['waited'] as const,
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });
  readonly renewals = new Counter({
    name: 'lease_renewals_total',
    help:
      'Lease renewals (heartbeats) by outcome: renewed, lost (410: the lease had ended), not_found, error. A holder-wide renew ' +
      'counts each lease it renewed.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly releases = new Counter({
    name: 'lease_releases_total',
    help: 'Lease releases by outcome: completed, failed, abandoned (released as asked), lost (410), not_found, error.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly eventStreamClients = new Gauge({
    name: 'lease_event_stream_clients',
    help: 'Open GET /v1/events streams on this replica.',
    registers: [this.registry],
  });

  // The reaper, per replica.
  readonly reaperLeader = new Gauge({
    name: 'lease_reaper_leader',
    help: '1 while this replica leads the reaper (holds its redlock lock), else 0. Summed over replicas it should be 1.',
    registers: [this.registry],
  });
  readonly reaperSweeps = new Counter({
    name: 'lease_reaper_sweeps_total',
    help: 'Sweep batches the reaper ran while leading, by result (ok, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reaperSweepDuration = new Histogram({
    name: 'lease_reaper_sweep_duration_seconds',
    help: 'Time of one sweep batch (one script call) of the reaper.',
    buckets: FAST_BUCKETS,
    registers: [this.registry],
  });
  readonly reaperSettled = new Counter({
    name: 'lease_reaper_settled_total',
    help: 'Leases the reaper settled (expired, orphaned, or out of lock delay) because no request had met them first.',
    registers: [this.registry],
  });

  // Redis, as this replica sees it.
  readonly redisUp = new Gauge({
    name: 'lease_redis_up',
    help: '1 when this replica read Redis at this scrape, 0 when it could not.',
    registers: [this.registry],
  });
  readonly redisCommandDuration = new Histogram({
    name: 'lease_redis_command_duration_seconds',
    help: 'Round trip of each Lua script call, by script (every state change is one) and result (ok, error).',
    labelNames: ['command', 'result'] as const,
    buckets: FAST_BUCKETS,
    registers: [this.registry],
  });

  readonly redisPrimary = new Gauge({
    name: 'lease_redis_primary_info',
    help: 'The Redis primary this replica is connected to: 1 for its address while connected, 0 while the connection is down and for the primaries it wrote to before; none before the first connection. In Cluster mode one series per primary of the slot map.',
    labelNames: ['address'] as const,
    registers: [this.registry],
  });
  readonly redisFailovers = new Counter({
    name: 'lease_redis_failovers_total',
    help: 'Times this replica found the Redis primary at a new address on reconnecting (a Sentinel failover, or a Redis moved); in Cluster mode, times a primary of the slot map was replaced by another.',
    registers: [this.registry],
  });
  readonly replicaAckShortfalls = new Counter({
    name: 'lease_redis_replica_ack_shortfalls_total',
    help: 'State changes answered 503 because fewer than REDIS_MIN_REPLICAS replicas confirmed them within REDIS_REPLICA_ACK_TIMEOUT_MS (Redis WAIT).',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // prom-client exports these totals as gauges, which promtool rejects ("non-counter
    // metrics should not have _total suffix"); nodejs_active_{handles,requests,resources}
    // carry the same numbers by type.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    for (const mode of MODES) for (const outcome of ACQUIRE_OUTCOMES) this.acquires.inc({ outcome, mode }, 0);
    for (const outcome of RENEW_OUTCOMES) this.renewals.inc({ outcome }, 0);
    for (const outcome of RELEASE_OUTCOMES) this.releases.inc({ outcome }, 0);
    for (const result of ['ok', 'error'] as const) this.reaperSweeps.inc({ result }, 0);
    this.redisFailovers.inc(0);
    this.replicaAckShortfalls.inc(0);
  }
}

/** The mode label of an acquire: one mode for all its resources, or mixed. */
export function modeLabel(resources: { mode: Mode }[]): ModeLabel {
  const modes = new Set(resources.map((r) => r.mode));
  return modes.size === 1 ? [...modes][0]! : 'mixed';
}
