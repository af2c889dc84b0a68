// GET /metrics: the Prometheus text exposition. Each scrape first reads the shared state
// from Redis (one O(1) script call per namespace, summed over them, at most NAMESPACES_MAX
// + 1 calls, pipelined); when Redis does not answer, the scrape still answers,
// with lease_redis_up 0, so Prometheus can tell "Redis down" from "service down".
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { problem } from '../errors.js';
import { problemResponse } from '../http/schemas/problems.js';
import type { Namespaces } from '../namespaces/namespaces.js';
import type { SharedStats } from '../store/lease-store.js';
import type { ServiceMetrics } from './metrics.js';
import { SharedMetrics } from './shared-metrics.js';

export interface MetricsRoutesOptions {
  metrics: ServiceMetrics;
  namespaces: Namespaces;
}

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { metrics, namespaces }) => {
  const shared = new SharedMetrics(metrics.registry);
  // One read at a time: scrapes that arrive while one is on its way share its answer, so a
  // flood of scrapes costs Redis no more than one scraper does (a read is one script call per
  // namespace, NAMESPACES_MAX + 1 at most).
  let reading: Promise<SharedStats> | undefined;
  const readShared = (): Promise<SharedStats> =>
    (reading ??= readAllNamespaces(namespaces).finally(() => {
      reading = undefined;
    }));
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics',
        description:
          'The Prometheus text exposition format (version 0.0.4). Per-replica series (requests, acquires, renewals, releases, the ' +
          'reaper, Redis round trips, process) are summed over replicas; cluster-wide series read from Redis at scrape time ' +
          '(lease_leases, lease_orphans, lease_waiting_requests and the lease_expiries/revocations/orphans_*_total counters) are ' +
          'the same on every replica: aggregate them with max(). They are totals over every namespace. lease_redis_up is 0 when this scrape could not read Redis.',
        response: {
          200: {
            description: 'The metrics, as text/plain in the Prometheus exposition format.',
            content: {
              'text/plain': {
                schema: Type.String({ examples: ['# HELP lease_redis_up 1 when this replica read Redis at this scrape, 0 when it could not.\n# TYPE lease_redis_up gauge\nlease_redis_up 1\n'] }),
              },
            },
          },
          401: problemResponse(
            'unauthorized: with AUTH=on and AUTH_METRICS=token, a scrape needs a bearer token (any valid one).',
            problem('unauthorized', 'This request needs a bearer token: Authorization: Bearer <token>.'),
          ),
        },
      },
    },
    async (request, reply) => {
      try {
        shared.update(await readShared());
        metrics.redisUp.set(1);
      } catch (error) {
        request.log.warn({ err: (error as Error).message }, 'metrics: Redis could not be read');
        metrics.redisUp.set(0);
      }
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  );
};

/** The stats of every namespace; "default" is read alongside the list of the others (one round trip less). */
async function readAllNamespaces(namespaces: Namespaces): Promise<SharedStats> {
  const [defaults, others] = await Promise.all([
    namespaces.store().stats(),
    namespaces.list().then((names) => Promise.all(names.slice(1).map((name) => namespaces.store(name).stats()))),
  ]);
  return sumStats([defaults, ...others]);
}

/** The stats of every namespace as one: counts and counters added up. */
function sumStats(all: SharedStats[]): SharedStats {
  const total: SharedStats = { now: 0, holdingLeases: 0, pendingOrphans: 0, claimedOrphans: 0, deadLetterOrphans: 0, waitingRequests: 0, counters: {} };
  for (const stats of all) {
    total.now = Math.max(total.now, stats.now);
    total.holdingLeases += stats.holdingLeases;
    total.pendingOrphans += stats.pendingOrphans;
    total.claimedOrphans += stats.claimedOrphans;
    total.deadLetterOrphans += stats.deadLetterOrphans;
    total.waitingRequests += stats.waitingRequests;
    for (const [field, value] of Object.entries(stats.counters)) total.counters[field] = String(Number(total.counters[field] ?? 0) + Number(value));
  }
  return total;
}
