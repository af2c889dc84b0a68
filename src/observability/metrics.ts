// Prometheus exposition at /metrics. A registry per app, so tests and several apps in one
// process never share (or double-register) metrics.
import type { FastifyPluginAsync } from 'fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';

export const metricsRoutes: FastifyPluginAsync = async (app) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics (text exposition format)' } }, async (_request, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics());
  });
};
