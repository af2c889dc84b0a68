// The one ioredis client of the service, set up to fail fast: when Redis is gone or stuck,
// a request must get 503 within seconds, not wait in a queue that replays it later.
import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import type { Config } from '../config.js';

/**
 * Where Redis is: one server by URL (given, or the managed redis-server), or the primary that
 * Redis Sentinel names. A third mode (Redis Cluster) is another member of this union.
 */
export type RedisTarget =
  | { mode: 'single'; url: string; password?: string }
  | { mode: 'sentinel'; sentinels: { host: string; port: number }[]; master: string; password?: string; sentinelPassword?: string };

export interface ConnectionOptions {
  target: RedisTarget;
  commandTimeoutMs: number;
}

/** The target the configuration names; `managedUrl` is the managed redis-server's, if it runs. */
export function redisTargetOf(config: Config, managedUrl?: string): RedisTarget {
  if (config.REDIS_SENTINELS) {
    return {
      mode: 'sentinel',
      sentinels: config.REDIS_SENTINELS.split(',').map((address) => {
        const [host, port] = address.split(':');
        return { host: host!, port: Number(port) };
      }),
      master: config.REDIS_SENTINEL_MASTER!,
      password: config.REDIS_PASSWORD,
      sentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    };
  }
  const url = config.REDIS_URL ?? managedUrl;
  if (!url) throw new Error('no Redis to connect to: REDIS_URL, REDIS_SENTINELS or the managed redis-server');
  return { mode: 'single', url, password: config.REDIS_URL ? config.REDIS_PASSWORD : undefined };
}

/** For logs and metrics: where the target is, never its passwords. */
export function describeTarget(target: RedisTarget): string {
  if (target.mode === 'sentinel') return `sentinel ${target.master} via ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  const url = new URL(target.url);
  return `${url.protocol}//${url.host}`;
}

/** Backs off to one attempt a second, for ever. */
const retryStrategy = (attempt: number) => Math.min(50 * attempt, 1000);

export function createRedisClient({ target, commandTimeoutMs }: ConnectionOptions): Redis {
  const options: RedisOptions = {
    // No offline queue: a command sent while disconnected fails at once instead of being
    // queued and run, perhaps much later, after the caller was told it failed.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A paused or overloaded Redis keeps the socket open but answers nothing.
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 1000),
    retryStrategy,
    // A primary demoted to a replica answers writes READONLY: find the primary again. The
    // command is not resent (1, not 2): its caller was already answered 503.
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
    lazyConnect: true,
    // A script that reached Redis is not resent on reconnect: it may already have run.
    autoResendUnfulfilledCommands: false,
    // Commands sent in one event-loop turn (concurrent requests) go out in one socket
    // write; the acquire profile spent a fifth of its time in socket writes.
    enableAutoPipelining: true,
  };
  if (target.mode === 'single') return reviveWhenEndedUnasked(new Redis(target.url, { ...options, ...(target.password && { password: target.password }) }));
  return reviveWhenEndedUnasked(new Redis({
    ...options,
    sentinels: target.sentinels,
    name: target.master,
    role: 'master',
    password: target.password,
    sentinelPassword: target.sentinelPassword,
    sentinelRetryStrategy: retryStrategy,
    sentinelCommandTimeout: commandTimeoutMs,
    // Each client listens for the sentinels' +switch-master and leaves the old primary at
    // once: a primary that is frozen (not dead) would otherwise keep the socket open, and
    // every command on it would wait out its timeout until it thaws.
    failoverDetector: true,
  }));
}

/**
 * A connection of its own for SUBSCRIBE, beside the request client: unlike that one, it may
 * queue its SUBSCRIBE until connected, re-subscribes by itself after a reconnect, and never
 * times out (a subscriber waits for messages). Its errors are the request client's to report.
 */
export function subscriberOf(client: Redis): Redis {
  const subscriber = client.duplicate({
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    autoResubscribe: true,
    commandTimeout: undefined,
    enableAutoPipelining: false,
  });
  subscriber.on('error', () => {}); // reported by the request client and /readyz
  return subscriber;
}

/** How long a client that ioredis gave up on waits before it connects again. */
const REVIVE_DELAY_MS = 1000;

/**
 * ioredis gives a client up for good (status "end") when one connection attempt fails
 * outright, not only when asked to close. In Sentinel mode that happens in a failover: a
 * +switch-master that arrives while the client is still asking the sentinels where the
 * primary is (it lost its socket to the old one) aborts that attempt with "Connection is
 * closed.", and the client never tries again: every later command fails the same way, for
 * as long as the process lives. So a client that ends without our asking is connected again
 * (after a pause, then again on each failure). Its duplicates (the subscribers, the
 * acknowledged-write connections) are revived the same way.
 */
export function reviveWhenEndedUnasked(client: Redis): Redis {
  let closedByUs = false;
  const disconnect = client.disconnect.bind(client);
  const quit = client.quit.bind(client);
  const duplicate = client.duplicate.bind(client);
  client.disconnect = (reconnect?: boolean) => {
    if (!reconnect) closedByUs = true;
    disconnect(reconnect);
  };
  client.quit = (callback?: Parameters<Redis['quit']>[0]) => {
    closedByUs = true;
    return quit(callback);
  };
  client.duplicate = (override) => reviveWhenEndedUnasked(duplicate(override));
  client.on('end', () => {
    if (closedByUs) return;
    setTimeout(() => {
      if (!closedByUs && client.status === 'end') client.connect().catch(() => undefined);
    }, REVIVE_DELAY_MS).unref();
  });
  return client;
}

const UNAVAILABLE_PATTERNS = [
  /Command timed out/i, // ioredis' commandTimeout, and a script that started after its deadline
  /Connection is closed/i,
  /Command aborted due to connection close/i, // ioredis' AbortError: a pipeline cut by a lost connection
  /Stream isn't writeable/i,
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND/,
  /^LOADING /,
  /^BUSY /,
  /^MASTERDOWN /,
  /^READONLY /,
  /^TRYAGAIN /,
  /^CLUSTERDOWN /,
  /MaxRetriesPerRequestError|Reached the max retries/i,
];

/**
 * Redis applied a change, but WAIT saw fewer replicas confirm it in time than
 * REDIS_MIN_REPLICAS asks: the caller must not take it as durable (it may be lost in a failover).
 */
export class ReplicaShortfallError extends Error {
  override readonly name = 'ReplicaShortfallError';
  constructor(
    readonly confirmed: number,
    readonly required: number,
    timeoutMs: number,
  ) {
    super(`only ${confirmed} of the ${required} replicas required confirmed the change within ${timeoutMs} ms`);
  }
}

/** True when an error means "Redis could not be reached or could not act", not a bug. */
export function isBackendUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (isRedisOutOfMemory(error) || error instanceof ReplicaShortfallError) return true;
  return UNAVAILABLE_PATTERNS.some((pattern) => pattern.test(error.message)) || error.name === 'MaxRetriesPerRequestError';
}

/**
 * True when Redis refused a write because it reached its maxmemory (policy noeviction).
 * Nothing was written: Redis refuses a script only at its first write, never half-way.
 */
export function isRedisOutOfMemory(error: unknown): boolean {
  // ioredis types ReplyError as any; the cast gives the message its type back.
  return error instanceof ReplyError && (error as Error).message.startsWith('OOM ');
}

/** Resolves once the client is ready, retrying until `timeoutMs` passes. */
export async function waitUntilReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait') client.connect().catch(() => {});
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis was not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolveReady();
    };
    client.once('ready', onReady);
  });
}
