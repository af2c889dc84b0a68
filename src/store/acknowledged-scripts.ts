// With REDIS_MIN_REPLICAS above 0, a script that changes state is answered only once Redis'
// WAIT says that many replicas have it. The script and its WAIT are written together on one
// connection (one round trip), so the WAIT covers that script on the node that ran it, even
// while a failover moves the other connections elsewhere.
//
// WAIT blocks the connection it is sent on until the replicas confirm, so the pairs travel
// on connections of their own (reads stay on the shared client and never queue behind a
// confirmation), and on several, so one slow confirmation holds up few writes.
import type { Redis } from 'ioredis';
import { ReplicaShortfallError } from '../redis/connection.js';
import type { LuaScript, ScriptRunner } from './scripts.js';

/** The scripts whose 2xx promises a state change; the others only read (or settle what a read meets). */
export const STATE_CHANGING_SCRIPTS: ReadonlySet<string> = new Set([
  'acquire',
  'cancelWait',
  'renew',
  'renewHolder',
  'release',
  'revoke',
  'claim',
  'resolve',
  'sweep',
]);

/** Connections that carry script + WAIT pairs. */
const ACK_CONNECTIONS = 8;

export interface ReplicaAckOptions {
  minReplicas: number;
  timeoutMs: number;
  /** Told of every confirmation that fell short (for metrics). */
  onShortfall?: (confirmed: number) => void;
}

export class AcknowledgedScripts {
  private readonly connections: { redis: Redis; inFlight: number }[];
  private readonly byName: Map<string, LuaScript>;

  /** `client` is duplicated (same target, same options) for each connection. */
  constructor(
    client: Redis,
    scripts: LuaScript[],
    private readonly options: ReplicaAckOptions,
  ) {
    this.byName = new Map(scripts.map((script) => [script.name, script]));
    this.connections = Array.from({ length: ACK_CONNECTIONS }, () => {
      const redis = client.duplicate();
      redis.on('error', () => {}); // reported by the shared client and /readyz
      return { redis, inFlight: 0 };
    });
  }

  async connect(): Promise<void> {
    await Promise.all(this.connections.filter(({ redis }) => redis.status === 'wait').map(({ redis }) => redis.connect().catch(() => undefined)));
  }

  disconnect(): void {
    for (const { redis } of this.connections) redis.disconnect();
  }

  /** Runs state-changing scripts with their WAIT, and the others with `plain`. */
  runner(plain: ScriptRunner): ScriptRunner {
    return (name, keys, args) => (STATE_CHANGING_SCRIPTS.has(name) ? this.run(name, keys, args) : plain(name, keys, args));
  }

  private async run(name: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    const script = this.byName.get(name);
    if (!script) throw new Error(`no Lua script named ${name}`);
    // The least busy connection that is ready: its WAIT queue is the shortest. One that is
    // reconnecting would fail at once, and so always look idle.
    const ready = this.connections.filter((c) => c.redis.status === 'ready');
    const connection = (ready.length > 0 ? ready : this.connections).reduce((best, c) => (c.inFlight < best.inFlight ? c : best));
    connection.inFlight++;
    try {
      return await this.runAndWait(connection.redis, script, keys, args);
    } finally {
      connection.inFlight--;
    }
  }

  private async runAndWait(redis: Redis, script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    const { minReplicas, timeoutMs } = this.options;
    // Both are written before either answers. Redis runs them in order, so WAIT counts the
    // replicas that have this script's writes. A WAIT after a failed script waits for
    // nothing new and answers at once.
    const evalSha = redis.evalsha(script.sha, keys.length, ...keys, ...args);
    const waited = redis.wait(minReplicas, timeoutMs);
    let reply: unknown;
    let confirmed: number;
    try {
      reply = await evalSha;
      confirmed = await waited;
    } catch (error) {
      waited.catch(() => undefined);
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      // Redis lost its script cache (a restart, a failover to a replica): send the source,
      // then wait again, since the WAIT above ran before this script did.
      reply = await redis.eval(script.source, keys.length, ...keys, ...args);
      confirmed = await redis.wait(minReplicas, timeoutMs);
    }
    if (confirmed < minReplicas) {
      this.options.onShortfall?.(confirmed);
      throw new ReplicaShortfallError(confirmed, minReplicas, timeoutMs);
    }
    return reply;
  }
}
