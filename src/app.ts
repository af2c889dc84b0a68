// buildApp(deps) assembles the HTTP service from its parts; it opens no sockets and starts
// no timers until `ready()`/`listen()`, so tests build as many apps as they like.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { frameworkErrorHandler, installProblemHandling } from './http/problems.js';
import { registerOpenApi } from './http/openapi.js';
import { validatorCompiler } from './http/validation.js';
import { leaseRoutes } from './leases/routes.js';
import { Sweeper } from './leases/sweeper.js';
import { healthRoutes } from './observability/health.js';
import { metricsRoutes } from './observability/metrics.js';
import { resourceRoutes } from './resources/routes.js';
import { LeaseStore } from './store/lease-store.js';
import { defineScripts, loadScripts } from './store/scripts.js';

export const SERVICE_VERSION = '0.1.0';

export interface AppDeps {
  config: Config;
  /** A connected client made by createRedisClient (fail-fast options). */
  redis: Redis;
  /** Run the background sweep of expired leases (default true). */
  sweep?: boolean;
  /** pino options, or false for no logging. */
  logger?: boolean | object;
}

/**
 * Once shutdown begins, every answer says Connection: close, so keep-alive clients leave
 * after their last in-flight request and close() does not wait on idle sockets.
 */
function closeConnectionsWhenClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    app.server.closeIdleConnections();
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
}

export function keyPrefix(config: Config): string {
  return `{${config.KEY_PREFIX}}:`;
}

export async function buildApp({ config, redis, sweep = true, logger }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: logger ?? { level: config.LOG_LEVEL },
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Lease ids and paths are short; anything longer is garbage, not a slow parse.
    routerOptions: { maxParamLength: 1024 },
    requestIdHeader: 'x-request-id',
    // While closing, requests on open connections are still served (Redis is closed only
    // after the server); each answer then closes its connection, see below.
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler,
  });
  app.setValidatorCompiler(validatorCompiler);
  installProblemHandling(app);
  closeConnectionsWhenClosing(app);

  const scripts = loadScripts();
  const store = new LeaseStore(defineScripts(redis, scripts), {
    keyPrefix: keyPrefix(config),
    tombstoneTtlMs: config.TOMBSTONE_TTL_MS,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
  });

  await registerOpenApi(app, SERVICE_VERSION);
  await app.register(healthRoutes, { redis, scripts });
  await app.register(metricsRoutes);
  await app.register(leaseRoutes, { config, store });
  await app.register(resourceRoutes, { config, store });

  if (sweep) {
    const sweeper = new Sweeper(store, { intervalMs: config.SWEEP_INTERVAL_MS, batch: config.SWEEP_BATCH, log: app.log });
    app.addHook('onReady', async () => sweeper.start());
    app.addHook('onClose', async () => sweeper.stop());
  }
  return app;
}
