// The process: reads the configuration, starts (or connects to) Redis, serves HTTP, and on
// SIGTERM/SIGINT finishes in-flight requests before closing Redis.
import closeWithGrace from 'close-with-grace';
import type { FastifyBaseLogger } from 'fastify';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, usesManagedRedis, type Config } from './config.js';
import { createRedisClient, describeTarget, redisTargetOf, waitUntilReady } from './redis/connection.js';
import { RedisServerMissingError, startEmbeddedRedis, type EmbeddedRedis, type EmbeddedRedisOptions } from './redis/embedded.js';
import { EmbeddedRedisSupervisor } from './redis/supervisor.js';
import { ensureLibraryLoaded, loadLibrary } from './store/scripts.js';

const REDIS_START_TIMEOUT_MS = 30000;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`lease-service: ${error.message}\n`);
    process.exit(2);
  }

  let embedded: EmbeddedRedis | undefined;
  if (usesManagedRedis(config)) {
    try {
      embedded = await startEmbeddedRedis(embeddedOptions(config));
    } catch (error) {
      process.stderr.write(`lease-service: ${(error as Error).message}\n`);
      process.exit(error instanceof RedisServerMissingError ? 3 : 1);
    }
  }
  const target = redisTargetOf(config, embedded?.url);
  const redis = createRedisClient({ target, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  redis.on('error', () => {
    // Connection errors surface as 503s and in /readyz; ioredis reconnects by itself.
  });
  await waitUntilReady(redis, REDIS_START_TIMEOUT_MS);
  await ensureLibraryLoaded(redis, loadLibrary());

  const app = await buildApp({ config, redis });
  logAccessControl(app.log, config);
  redis.on('ready', () => app.log.info({ redis: describeTarget(target) }, 'Redis connection ready'));
  let stopping = false;
  redis.on('close', () => {
    if (!stopping) app.log.warn('Redis connection closed; reconnecting');
  });
  const supervisor = embedded && new EmbeddedRedisSupervisor(embedded, embeddedOptions(config), app.log);
  supervisor?.start();
  if (embedded) {
    app.log.info(
      // Not embedded.url: it carries the password.
      { redis: `redis://127.0.0.1:${embedded.port}`, dataDir: embedded.dataDir, pid: embedded.pid, adopted: embedded.adopted },
      embedded.adopted ? 'adopted the redis-server left running by an earlier start' : 'started redis-server',
    );
  }

  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger: app.log }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'stopping after an unexpected error');
    else app.log.info({ signal }, 'stopping: finishing in-flight requests');
    await app.close();
    stopping = true;
    await redis.quit().catch(() => redis.disconnect());
    await supervisor?.stop();
  });

  await app.listen({ port: config.PORT, host: config.HOST });
}

/** Says at start who may call: the first thing an operator should know about a service. */
function logAccessControl(log: FastifyBaseLogger, config: Config): void {
  if (config.AUTH === 'on') {
    const jwt = config.AUTH_JWT_PUBLIC_KEY_FILE ?? config.AUTH_JWKS_FILE;
    log.info({ auth: 'on', jwt: jwt ?? null }, `access control is on: /v1 needs a bearer token (service tokens${jwt ? ', and JWTs' : ''})`);
  } else if (config.AUTH === 'none') {
    log.warn({ auth: 'none', host: config.HOST }, 'access control is off (AUTH=none): anyone who reaches this address can read and change every lease');
  } else {
    log.info({ auth: 'off', host: config.HOST }, 'access control is off: serving loopback only (set AUTH=on, or AUTH=none, to serve other addresses)');
  }
}

function embeddedOptions(config: Config): EmbeddedRedisOptions {
  return {
    dataDir: config.DATA_DIR,
    bin: config.REDIS_SERVER_BIN,
    maxmemory: config.REDIS_MAXMEMORY,
    extraArgs: ['--appendfsync', config.REDIS_APPENDFSYNC],
  };
}

main().catch((error: unknown) => {
  process.stderr.write(`lease-service: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
