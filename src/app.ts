// buildApp(deps) assembles the HTTP service from its parts; it opens no sockets and starts
// no timers until `ready()`/`listen()`, so tests build as many apps as they like.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { RedisClient } from './redis/connection.js';
import type { Config } from './config.js';
import { clientErrorHandler, frameworkErrorHandler, installProblemHandling } from './http/problems.js';
import { registerLoadShedding } from './http/load-shedding.js';
import { registerOpenApi } from './http/openapi.js';
import { echoRequestId, requestIdOf } from './http/request-id.js';
import { component } from './http/schemas/components.js';
import { Holder, LeaseId } from './http/schemas/ids.js';
import { ActionView, LeaseView } from './http/schemas/lease-view.js';
import { Mode, Resource, ResourcePath } from './http/schemas/paths.js';
import { ProblemView } from './http/schemas/problems.js';
import { addSharedSchemas, validatorCompiler } from './http/validation.js';
import { leaseRoutes } from './leases/routes.js';
import { ConflictProblemView, ConflictView, GoneProblemView, TombstoneView } from './leases/schemas.js';
import { eventRoutes, eventStreamSlots } from './events/routes.js';
import { EventView } from './events/schemas.js';
import { StreamWatchers } from './events/stream-watchers.js';
import { registerInEveryNamespace } from './namespaces/routing.js';
import { DEFAULT_NAMESPACE, namespaceKeyPrefix } from './namespaces/names.js';
import { Namespaces } from './namespaces/namespaces.js';
import { NamespaceRegistry } from './namespaces/registry.js';
import { healthRoutes } from './observability/health.js';
import { Notifications } from './notify/notifications.js';
import { waiterSlots } from './notify/waiter-slots.js';
import { instrumentHttp } from './observability/http-metrics.js';
import { ServiceMetrics } from './observability/metrics.js';
import { metricsRoutes } from './observability/metrics-routes.js';
import { orphanRoutes } from './orphans/routes.js';
import { OrphanId, OrphanView } from './orphans/schemas.js';
import { Reaper } from './reaper/reaper.js';
import { resourceRoutes } from './resources/routes.js';
import { EventStream } from './store/event-stream.js';
import { ensureIndexFormat, INDEX_FORMAT } from './store/index-format.js';
import { LeaseStore } from './store/lease-store.js';
import { RedisClock } from './store/redis-clock.js';
import { installAccessControl } from './auth/access-control.js';
import { documentRateLimit, registerRateLimit } from './auth/rate-limit.js';
import { Authenticator } from './auth/authenticator.js';
import { JwtVerifier } from './auth/jwt.js';
import { ServiceTokens, tokenKeys } from './auth/service-tokens.js';
import { AcknowledgedScripts } from './store/acknowledged-scripts.js';
import { defineScripts, loadLibrary, type LuaLibrary, type ScriptRunner } from './store/scripts.js';
import { watchPrimary } from './redis/primary-watch.js';

export const SERVICE_VERSION = '0.1.0';

export interface AppDeps {
  config: Config;
  /** A connected client made by createRedisClient (fail-fast options). */
  redis: RedisClient;
  /** Run the reaper, which settles expired leases in the background (default true). */
  sweep?: boolean;
  /**
   * Make sure, before serving, that every namespace's index is in this version's layout
   * (default true; false only for an app that never reaches Redis, as the OpenAPI writer's).
   */
  checkIndexFormat?: boolean;
  /** pino options, or false for no logging. */
  logger?: boolean | object;
}

/**
 * Once shutdown begins, every answer says Connection: close, so keep-alive clients leave
 * after their last in-flight request and close() does not wait on idle sockets.
 *
 * A connection that has not sent a request yet (a client's pool opening one in advance, a
 * load balancer's TCP check) is not idle to Node: it counts as a request whose headers are
 * still coming, and close() would wait up to headersTimeout (HTTP_HEADERS_TIMEOUT_MS) for it. Nothing is
 * in flight on it, so it is closed with the idle ones.
 */
function closeConnectionsWhenClosing(app: FastifyInstance): void {
  let closing = false;
  const silent = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    silent.add(socket);
    socket.once('close', () => silent.delete(socket));
  });
  app.server.on('request', (request: IncomingMessage) => silent.delete(request.socket));
  app.addHook('preClose', async () => {
    closing = true;
    app.server.closeIdleConnections();
    for (const socket of silent) socket.destroy();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
}

/** The key prefix of the namespace "default" (every other namespace's is built from KEY_PREFIX too). */
export function keyPrefix(config: Config): string {
  return namespaceKeyPrefix(config.KEY_PREFIX, DEFAULT_NAMESPACE);
}

/** The Fastify server options; the benchmark's HTTP floor uses them too, to compare like with like. */
export function serverOptions(config: Config, logger?: boolean | object) {
  return {
    logger: logger ?? { level: config.LOG_LEVEL },
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Lease ids and paths are short; anything longer is garbage, not a slow parse.
    routerOptions: { maxParamLength: 1024 },
    requestIdHeader: false as const,
    genReqId: requestIdOf,
    // While closing, requests on open connections are still served (Redis is closed only
    // after the server); each answer then closes its connection, see below.
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    // Bounds on receiving a request, never on answering it: an event stream, a waiting
    // acquire or a long-poll claim stays open as long as it needs once its request is in.
    // A slow-body client is answered 408 and closed after HTTP_REQUEST_TIMEOUT_MS.
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    http: {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      // Node enforces both timeouts only when it sweeps its connections (every 30 s by
      // default); sweeping at a quarter of the shorter one keeps them at most 25% late.
      connectionsCheckingInterval: Math.min(5000, Math.ceil(config.HTTP_HEADERS_TIMEOUT_MS / 4)),
    },
  };
}

/**
 * The schemas routes share by $ref: each is one of the OpenAPI document's components.schemas
 * (named as in http/schemas/components.ts), in this order.
 */
const SHARED_SCHEMAS = [
  Holder,
  LeaseId,
  OrphanId,
  ResourcePath,
  Mode,
  Resource,
  ActionView,
  LeaseView,
  TombstoneView,
  ConflictView,
  OrphanView,
  ProblemView,
  ConflictProblemView,
  GoneProblemView,
  EventView,
];

/**
 * Validation with the project's Ajv instances, which know the shared schemas, as Fastify's
 * serialisers do; the benchmark's HTTP floor uses it too, for the same acquire schema.
 */
export function useSharedSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  addSharedSchemas(SHARED_SCHEMAS);
  for (const schema of SHARED_SCHEMAS) app.addSchema(component(schema));
}

/**
 * Runs the Lua scripts on `redis`; with REDIS_MIN_REPLICAS above 0, state changes go through
 * connections of their own, each followed by WAIT (see store/acknowledged-scripts.ts).
 */
function scriptRunner(app: FastifyInstance, config: Config, redis: RedisClient, library: LuaLibrary, metrics: ServiceMetrics): ScriptRunner {
  const plain = defineScripts(redis, library);
  if (config.REDIS_MIN_REPLICAS === 0) return plain;
  const acknowledged = new AcknowledgedScripts(redis, library, {
    minReplicas: config.REDIS_MIN_REPLICAS,
    timeoutMs: config.REDIS_REPLICA_ACK_TIMEOUT_MS,
    onShortfall: () => metrics.replicaAckShortfalls.inc(),
  });
  app.addHook('onReady', async () => acknowledged.connect());
  // After the requests and the reaper, which may still be writing.
  app.addHook('onClose', async () => acknowledged.disconnect());
  return acknowledged.runner(plain);
}

/** With AUTH=on, what checks bearer tokens (started and stopped with the app); else null. */
function authenticatorOf(app: FastifyInstance, config: Config, redis: RedisClient): Authenticator | null {
  if (config.AUTH !== 'on') return null;
  const keys = tokenKeys(config.KEY_PREFIX);
  const jwt =
    config.AUTH_JWT_PUBLIC_KEY_FILE || config.AUTH_JWKS_FILE
      ? new JwtVerifier({
          ...(config.AUTH_JWT_PUBLIC_KEY_FILE ? { publicKeyFile: config.AUTH_JWT_PUBLIC_KEY_FILE } : {}),
          ...(config.AUTH_JWKS_FILE ? { jwksFile: config.AUTH_JWKS_FILE } : {}),
          ...(config.AUTH_JWT_ISSUER ? { issuer: config.AUTH_JWT_ISSUER } : {}),
          ...(config.AUTH_JWT_AUDIENCE ? { audience: config.AUTH_JWT_AUDIENCE } : {}),
        })
      : undefined;
  const authenticator = new Authenticator(redis, new ServiceTokens(redis, keys), keys, jwt, config.AUTH_CACHE_MS);
  app.addHook('onReady', async () => authenticator.start());
  app.addHook('onClose', async () => authenticator.stop());
  return authenticator;
}

export async function buildApp({ config, redis, sweep = true, checkIndexFormat = true, logger }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(config, logger));
  useSharedSchemas(app);
  installProblemHandling(app);
  closeConnectionsWhenClosing(app);
  echoRequestId(app);
  const metrics = new ServiceMetrics();
  instrumentHttp(app, metrics);
  await registerLoadShedding(app, config);

  const library = loadLibrary();
  const run = scriptRunner(app, config, redis, library, metrics);
  // One clock estimate for every namespace: they all run on the same Redis.
  const clock = new RedisClock();
  const storeOptions = {
    tombstoneTtlMs: config.TOMBSTONE_TTL_MS,
    streamCap: config.STREAM_MAX_ENTRIES,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    clock,
    observe: (command: string, seconds: number, ok: boolean) => metrics.redisCommandDuration.observe({ command, result: ok ? 'ok' : 'error' }, seconds),
  };
  const registry = new NamespaceRegistry(redis, `${keyPrefix(config)}namespaces`, config.NAMESPACES_MAX);
  const namespaces = new Namespaces(
    config.KEY_PREFIX,
    registry,
    (prefix) => new LeaseStore(run, { ...storeOptions, keyPrefix: prefix }),
    config.NAMESPACES_MAX + 64,
    config.LEASES_MAX_PER_TOKEN,
  );

  // Before anything reads or writes leases: every namespace's index in this version's layout
  // (moved once from an earlier version's; src/store/index-format.ts).
  if (checkIndexFormat) {
    app.addHook('onReady', async () => {
      for (const namespace of await namespaces.list()) {
        const calls = await ensureIndexFormat(redis, namespaces.store(namespace), namespaces.keys(namespace));
        if (calls > 0) app.log.info({ namespace, calls, format: INDEX_FORMAT }, 'index checked and marked in this version\'s layout');
      }
    });
  }

  // Waiting requests (waitMs) are woken by what the scripts publish; stopping the
  // notifications first lets them answer before the server waits on them to close.
  const stopWatchingPrimary = watchPrimary(redis, {
    connected(address, previous) {
      if (previous !== undefined && previous !== address) {
        metrics.redisPrimary.set({ address: previous }, 0);
        metrics.redisFailovers.inc();
        app.log.warn({ from: previous, to: address }, 'the Redis primary moved (failover)');
      }
      metrics.redisPrimary.set({ address }, 1);
    },
    lost(address) {
      metrics.redisPrimary.set({ address }, 0);
    },
  });
  app.addHook('onClose', async () => stopWatchingPrimary());

  const notifications = new Notifications(redis, (namespace) => namespaces.keys(namespace));
  app.addHook('onReady', async () => notifications.start());
  app.addHook('preClose', async () => notifications.stop());

  installAccessControl(app, {
    authenticator: authenticatorOf(app, config, redis),
    protectMetrics: config.AUTH_METRICS === 'token',
    protectDocs: config.AUTH_DOCS === 'token',
  });
  documentRateLimit(app);
  await registerRateLimit(app, redis, namespaces, config.RATE_LIMIT_PER_SECOND);
  await registerOpenApi(app, SERVICE_VERSION);
  await app.register(healthRoutes, { redis, library });
  await app.register(metricsRoutes, { metrics, namespaces });
  // Acquires and claims that wait share one budget of open waits (per holder and in all).
  const waiters = waiterSlots(config);
  await registerInEveryNamespace(app, leaseRoutes, { config, namespaces, notifications, metrics, waiters });
  await registerInEveryNamespace(app, resourceRoutes, { namespaces });
  await registerInEveryNamespace(app, orphanRoutes, { config, namespaces, notifications, waiters });
  const watchers = new StreamWatchers(redis, (namespace) => namespaces.keys(namespace).events);
  app.addHook('onClose', async () => watchers.stop());
  await registerInEveryNamespace(app, eventRoutes, {
    config,
    slots: eventStreamSlots(config),
    eventsOf: (namespace: string) => new EventStream(redis, namespaces.keys(namespace)),
    watchers,
    metrics,
  });

  if (sweep) {
    const reaper = new Reaper(redis, namespaces, {
      intervalMs: config.REAPER_INTERVAL_MS,
      batch: config.REAPER_BATCH,
      streams: { maxAgeMs: config.STREAM_MAX_AGE_MS, maxBytes: config.STREAM_MAX_BYTES },
      lockMs: config.REAPER_LOCK_MS,
      lockKey: namespaces.keys().reaperLock,
      log: app.log,
      metrics,
    });
    app.addHook('onReady', async () => reaper.start());
    app.addHook('onClose', async () => reaper.stop());
  }
  return app;
}
