// Times every HTTP answer into http_request_duration_seconds. Labelled by the route's
// template (/v1/leases/:id), never the URL, so ids and paths cannot blow up the series.
import type { FastifyInstance } from 'fastify';
import type { ServiceMetrics } from './metrics.js';

export function instrumentHttp(app: FastifyInstance, metrics: ServiceMetrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    metrics.httpRequestDuration.observe(
      {
        // No route matched (404, or a URL the router refused): one series for all of them.
        route: request.routeOptions.url ?? 'unmatched',
        method: request.method,
        status_class: `${Math.floor(reply.statusCode / 100)}xx`,
      },
      reply.elapsedTime / 1000,
    );
    done();
  });
}
