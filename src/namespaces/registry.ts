// Which namespaces exist, so that the reaper and /metrics can visit each one. Namespaces
// need no creation step: an acquire in a namespace admits it first. The registry is one
// Redis set beside the namespace "default"'s keys, and holds at most NAMESPACES_MAX names,
// which bounds what the reaper and a scrape do per round (one script call per namespace).
// A namespace is never dropped: an empty one costs a sweep that finds nothing.
import { performance } from 'node:perf_hooks';
import { isBackendUnavailable, type RedisClient } from '../redis/connection.js';
import { DEFAULT_NAMESPACE } from './names.js';

/**
 * Admits ARGV[1] unless the set already holds ARGV[2] names: 1 admitted (or already there),
 * 0 full, -1 new and ARGV[3] is not "1" (the caller may not create one). One script, so
 * replicas admitting at once never pass the cap together.
 */
const ADMIT = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if ARGV[3] ~= '1' then return -1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`;

/**
 * How long this replica trusts its memory that a namespace is registered. Past it the next
 * acquire admits it again (one round trip), so a registry lost with Redis' data (a restart
 * without persistence, a failover that lost the last writes) is written again within this.
 */
const REMEMBER_MS = 60_000;

/** The client with ADMIT defined on it (as EVALSHA, falling back to EVAL). */
interface AdmittingRedis {
  leaseAdmitNamespace(key: string, namespace: string, max: number, mayCreate: '1' | '0'): Promise<number>;
}

/** A namespace that does not exist yet, asked for by a caller that may not create one. */
export class NamespaceUnknownError extends Error {
  constructor(readonly namespace: string) {
    super(`The namespace "${namespace}" does not exist yet, and this token may not create one.`);
  }
}

export class NamespaceFullError extends Error {
  constructor(readonly max: number) {
    super(`This service holds ${max} namespaces, as many as it may (NAMESPACES_MAX).`);
  }
}

export class NamespaceRegistry {
  private readonly admittedAt = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    /** "{KEY_PREFIX}:namespaces": in the namespace "default"'s slot. */
    private readonly key: string,
    private readonly max: number,
  ) {
    redis.defineCommand('leaseAdmitNamespace', { numberOfKeys: 1, lua: ADMIT });
  }

  /**
   * Registers `namespace` (the default one always is), or throws NamespaceFullError, or
   * NamespaceUnknownError when it is new and `mayCreate` is false.
   */
  async admit(namespace: string, mayCreate = true): Promise<void> {
    if (namespace === DEFAULT_NAMESPACE) return;
    const at = this.admittedAt.get(namespace);
    if (at !== undefined && performance.now() - at < REMEMBER_MS) return;
    const redis = this.redis as unknown as AdmittingRedis;
    let answer: number;
    try {
      answer = await redis.leaseAdmitNamespace(this.key, namespace, this.max, mayCreate ? '1' : '0');
    } catch (error) {
      // In Cluster mode the registry is on the namespace "default"'s shard: while that one
      // fails over, a namespace admitted before goes on (it is admitted again next time).
      if (at !== undefined && isBackendUnavailable(error)) return;
      throw error;
    }
    if (answer === -1) throw new NamespaceUnknownError(namespace);
    if (answer !== 1) throw new NamespaceFullError(this.max);
    // At most NAMESPACES_MAX names get here, so the map stays as small as the set.
    this.admittedAt.set(namespace, performance.now());
  }

  /**
   * Whether `namespace` is registered (the default one always is): this replica's memory of
   * it, else one SISMEMBER (a name that is, is remembered as an admitted one is).
   */
  async isRegistered(namespace: string): Promise<boolean> {
    if (namespace === DEFAULT_NAMESPACE) return true;
    const at = this.admittedAt.get(namespace);
    if (at !== undefined && performance.now() - at < REMEMBER_MS) return true;
    if ((await this.redis.sismember(this.key, namespace)) !== 1) return false;
    this.admittedAt.set(namespace, performance.now());
    return true;
  }

  /** Every namespace, "default" first: at most NAMESPACES_MAX + 1 names. */
  async list(): Promise<string[]> {
    const registered = await this.redis.smembers(this.key);
    return [DEFAULT_NAMESPACE, ...registered.filter((name) => name !== DEFAULT_NAMESPACE).sort()];
  }
}
