// GET /metrics: the Prometheus text exposition. Each scrape first reads the shared state
// from Redis (one O(1) script call); when Redis does not answer, the scrape still answers,
// with lease_redis_up 0, so Prometheus can tell "Redis down" from "service down".
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { LeaseStore } from '../store/lease-store.js';
import type { ServiceMetrics } from './metrics.js';
import { SharedMetrics } from './shared-metrics.js';

export interface MetricsRoutesOptions {
  metrics: ServiceMetrics;
  store: LeaseStore;
}

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { metrics, store }) => {
  const shared = new SharedMetrics(metrics.registry);
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
          'the same on every replica: aggregate them with max(). lease_redis_up is 0 when this scrape could not read Redis.',
        response: {
          200: {
            description: 'The metrics, as text/plain in the Prometheus exposition format.',
            content: {
              'text/plain': {
                schema: Type.String({ examples: ['# HELP lease_redis_up 1 when this replica read Redis at this scrape, 0 when it could not.\n# TYPE lease_redis_up gauge\nlease_redis_up 1\n'] }),
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      try {
        shared.update(await store.stats());
        metrics.redisUp.set(1);
      } catch (error) {
        request.log.warn({ err: (error as Error).message }, 'metrics: Redis could not be read');
        metrics.redisUp.set(0);
      }
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  );
};
