// What a replica refuses when it has more than it can serve, so that it slows down instead
// of falling over: connections past HTTP_MAX_CONNECTIONS are closed as they arrive, and while
// the event loop lags past LOAD_SHED_EVENT_LOOP_DELAY_MS new requests answer 503 at once
// (@fastify/under-pressure), before they cost a body parse or a Redis call.
import type { FastifyInstance } from 'fastify';
import underPressure from '@fastify/under-pressure';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';

/**
 * Never shed: a liveness probe that fails under load gets the process restarted, which
 * loses more than it saves; readiness is about Redis, and a whole fleet reporting "not
 * ready" at once would leave nobody to serve; a scrape is how an operator sees the overload.
 */
const EXEMPT_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** How often the event loop's lag is measured; the verdict holds until the next measurement. */
const SAMPLE_INTERVAL_MS = 1000;
/**
 * Longer than one measurement, so a retry meets a fresh verdict; short next to a lease's
 * default TTL (15 s), so a heartbeat that was shed can still be retried in time.
 */
const RETRY_AFTER_SECONDS = 2;

export async function registerLoadShedding(app: FastifyInstance, config: Config): Promise<void> {
  // Node closes a connection past the limit as soon as it is accepted (the client sees it
  // closed before any answer). Fastify has no option for it, hence after creation.
  app.server.maxConnections = config.HTTP_MAX_CONNECTIONS;

  // The first measurements count start-up (schemas compiled, scripts loaded: the loop is
  // busy on purpose), not load; a fresh replica would shed its first requests. Only a
  // measurement taken wholly after start counts.
  let countsFrom = Number.POSITIVE_INFINITY;
  app.addHook('onReady', async () => {
    countsFrom = performance.now() + 2 * SAMPLE_INTERVAL_MS;
  });

  await app.register(underPressure, {
    maxEventLoopDelay: config.LOAD_SHED_EVENT_LOOP_DELAY_MS,
    sampleInterval: SAMPLE_INTERVAL_MS,
    exposeStatusRoute: false,
    // Rejecting with a ProblemError sends the answer through the one error handler, as
    // problem+json with its Retry-After; resolving lets the request through.
    pressureHandler: async (request, _reply, type, value) => {
      if (request.routeOptions.url !== undefined && EXEMPT_ROUTES.has(request.routeOptions.url)) return;
      if (performance.now() < countsFrom) return;
      const measured = type === 'eventLoopDelay' && value !== undefined ? ` (event loop delay ${Math.round(value)} ms)` : '';
      throw new ProblemError(
        'backend_unavailable',
        `The service is overloaded${measured} and sheds new requests; this one changed nothing. Retry after Retry-After seconds.`,
        {},
        { 'retry-after': String(RETRY_AFTER_SECONDS) },
      );
    },
  });
}
