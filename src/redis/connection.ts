// The one ioredis client of the service, set up to fail fast: when Redis is gone or stuck,
// a request must get 503 within seconds, not wait in a queue that replays it later.
import { Cluster, Redis, ReplyError, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config.js';

/**
 * Where Redis is: one server by URL (given, or the managed redis-server), the primary that
 * Redis Sentinel names, or a Redis Cluster (each namespace in the slot of its hash tag).
 */
export type RedisTarget =
  | { mode: 'single'; url: string; password?: string }
  | { mode: 'sentinel'; sentinels: HostPort[]; master: string; password?: string; sentinelPassword?: string }
  | { mode: 'cluster'; nodes: HostPort[]; password?: string };

export interface HostPort {
  host: string;
  port: number;
}

/**
 * A client of one Redis (single or Sentinel mode) or of a Redis Cluster. Both run the same
 * commands; a Cluster routes each by the slot of its first key (every script's KEYS[1] is
 * its namespace's fencing counter, so a script runs on its namespace's primary).
 */
export type RedisClient = Redis | Cluster;

export interface ConnectionOptions {
  target: RedisTarget;
  commandTimeoutMs: number;
}

/** The target the configuration names; `managedUrl` is the managed redis-server's, if it runs. */
export function redisTargetOf(config: Config, managedUrl?: string): RedisTarget {
  if (config.REDIS_CLUSTER_NODES) return { mode: 'cluster', nodes: hostPorts(config.REDIS_CLUSTER_NODES), password: config.REDIS_PASSWORD };
  if (config.REDIS_SENTINELS) {
    return {
      mode: 'sentinel',
      sentinels: hostPorts(config.REDIS_SENTINELS),
      master: config.REDIS_SENTINEL_MASTER!,
      password: config.REDIS_PASSWORD,
      sentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    };
  }
  const url = config.REDIS_URL ?? managedUrl;
  if (!url) throw new Error('no Redis to connect to: REDIS_URL, REDIS_SENTINELS or the managed redis-server');
  return { mode: 'single', url, password: config.REDIS_URL ? config.REDIS_PASSWORD : undefined };
}

/** "host:port,host:port" (as the configuration checked it) as a list. */
function hostPorts(addresses: string): HostPort[] {
  return addresses.split(',').map((address) => {
    const [host, port] = address.split(':');
    return { host: host!, port: Number(port) };
  });
}

/** For logs and metrics: where the target is, never its passwords. */
export function describeTarget(target: RedisTarget): string {
  if (target.mode === 'cluster') return `cluster via ${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (target.mode === 'sentinel') return `sentinel ${target.master} via ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  const url = new URL(target.url);
  return `${url.protocol}//${url.host}`;
}

/** Backs off to one attempt a second, for ever. */
const retryStrategy = (attempt: number) => Math.min(50 * attempt, 1000);

/** A client of one Redis (not a Cluster) when the target says so. */
export function createRedisClient(options: ConnectionOptions & { target: Exclude<RedisTarget, { mode: 'cluster' }> }): Redis;
export function createRedisClient(options: ConnectionOptions): RedisClient;
export function createRedisClient({ target, commandTimeoutMs }: ConnectionOptions): RedisClient {
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
  if (target.mode === 'cluster') return createClusterClient(target, options, commandTimeoutMs);
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
 * How long a Cluster client waits between two reads of the slot map. A failover moves a
 * dead primary's slots to its replica; commands for them fail (503) until the client reads
 * the map again, so this bounds how long a namespace stays unavailable after its promotion.
 * One CLUSTER SLOTS a second per client is little work for Redis.
 */
const CLUSTER_SLOTS_REFRESH_MS = 1000;

function createClusterClient(target: Extract<RedisTarget, { mode: 'cluster' }>, options: RedisOptions, commandTimeoutMs: number): Cluster {
  const { enableOfflineQueue, enableAutoPipelining, lazyConnect, retryStrategy: _perNode, ...redisOptions } = options;
  const clusterOptions: ClusterOptions = {
    enableOfflineQueue,
    enableAutoPipelining,
    lazyConnect,
    clusterRetryStrategy: retryStrategy,
    redisOptions: { ...redisOptions, ...(target.password && { password: target.password }) },
    slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
    slotsRefreshTimeout: Math.max(commandTimeoutMs, 1000),
    // A command whose connection closed may have run: it is not resent (its caller is
    // answered 503), as in the other modes. MOVED, ASK, TRYAGAIN and CLUSTERDOWN say the
    // command did not run, and ioredis sends it again where the slot is now; a script that
    // gets there after its deadline changes nothing (includes/prelude.lua).
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 100,
    maxRedirections: 8,
  };
  return refreshSlotsWhenANodeGoes(new Cluster(target.nodes, clusterOptions));
}

/** A node that went away (its primary killed) is reason to read the slot map at once, not at the next interval. */
function refreshSlotsWhenANodeGoes(cluster: Cluster): Cluster {
  cluster.on('-node', () => {
    if (cluster.status === 'ready') cluster.refreshSlotsCache();
  });
  return cluster;
}

/**
 * A client like `client` (same Redis, same options) with `override`; in Cluster mode a new
 * Cluster client, whose per-node options take the override.
 */
export function duplicateClient(client: RedisClient, override: Partial<RedisOptions> & { shardedSubscribers?: boolean } = {}): RedisClient {
  if (!(client instanceof Cluster)) {
    const { shardedSubscribers: _clusterOnly, ...options } = override;
    return client.duplicate(options);
  }
  const { enableOfflineQueue, enableAutoPipelining, lazyConnect, shardedSubscribers, retryStrategy: _perNode, ...redisOptions } = override;
  return refreshSlotsWhenANodeGoes(
    client.duplicate([], {
      ...(enableOfflineQueue !== undefined && { enableOfflineQueue }),
      ...(enableAutoPipelining !== undefined && { enableAutoPipelining }),
      ...(lazyConnect !== undefined && { lazyConnect }),
      ...(shardedSubscribers !== undefined && { shardedSubscribers }),
      redisOptions: { ...client.options.redisOptions, ...redisOptions },
    }),
  );
}

/** The clients of every primary: the one Redis, or each primary of the Cluster now. */
export function primariesOf(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/**
 * A connection of its own for SUBSCRIBE and SSUBSCRIBE, beside the request client: unlike
 * that one, it may queue its subscriptions until connected, re-subscribes by itself after a
 * reconnect, and never times out (a subscriber waits for messages). In Cluster mode it holds
 * one connection per primary for sharded channels, each subscribed where its slot is.
 * Its errors are the request client's to report.
 */
export function subscriberOf(client: RedisClient): RedisClient {
  const subscriber = duplicateClient(client, {
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    autoResubscribe: true,
    commandTimeout: undefined,
    enableAutoPipelining: false,
    shardedSubscribers: true,
  });
  subscriber.on('error', () => {}); // reported by the request client and /readyz
  return subscriber;
}

/**
 * Calls `listener` each time `subscriber` has (re)connected, when messages sent meanwhile are
 * lost: a Redis client says 'ready'; in Cluster mode ioredis replaces a sharded subscriber
 * (a lost connection, a failover) and subscribes it again by itself, then says
 * 'subscribersReady'. The listener should subscribe again itself and act once Redis confirmed.
 */
export function onResubscribe(subscriber: RedisClient, listener: () => void): void {
  subscriber.on(subscriber instanceof Cluster ? 'subscribersReady' : 'ready', listener);
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
  // Redis Cluster: the slot is served elsewhere (a failover this client has not heard of
  // yet, or a resharding); the command did not run. Also ioredis giving up after following
  // a few such redirections.
  /^(MOVED|ASK) /,
  /Too many Cluster redirections/,
  // ioredis' Cluster client while it has no usable node or slot map (connecting, or every
  // node it knew is gone); commands are not queued (enableOfflineQueue: false).
  /Cluster isn't ready|None of startup nodes is available|Cluster is ended|Failed to refresh slots cache/,
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
  return UNAVAILABLE_PATTERNS.some((pattern) => pattern.test(error.message)) || error.name === 'MaxRetriesPerRequestError' || error.name === 'ClusterAllFailedError';
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
export async function waitUntilReady(client: RedisClient, timeoutMs: number): Promise<void> {
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
