// With REDIS_MIN_REPLICAS above 0, a script that changes state is answered only once Redis'
// WAIT says that many replicas have it. The script and its WAIT are written together on one
// connection (one round trip, one pipeline), so the WAIT covers that script on the node that
// ran it, even while a failover moves the other connections elsewhere. In Cluster mode the
// pipeline goes to the primary of the script's slot (WAIT names no key), so each write waits
// for the replicas of its own shard.
//
// WAIT blocks the connection it is sent on until the replicas confirm, so the pairs travel
// on connections of their own (reads stay on the shared client and never queue behind a
// confirmation), and on several, so one slow confirmation holds up few writes.
import { Cluster, type ChainableCommander } from 'ioredis';
import { duplicateClient, type RedisClient } from '../redis/connection.js';
import { ReplicaShortfallError } from '../redis/connection.js';
import { isMissingFunction, reloadLibrary, type LuaLibrary, type LuaScript, type ScriptRunner } from './scripts.js';

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
  private readonly connections: { redis: RedisClient; inFlight: number }[];
  private readonly byName: Map<string, LuaScript>;

  /** `client` is duplicated (same target, same options) for each connection. */
  constructor(
    client: RedisClient,
    private readonly library: LuaLibrary,
    private readonly options: ReplicaAckOptions,
  ) {
    this.byName = new Map(library.scripts.map((script) => [script.name, script]));
    this.connections = Array.from({ length: ACK_CONNECTIONS }, () => {
      const redis = duplicateClient(client);
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

  private async runAndWait(redis: RedisClient, script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    let [reply, confirmed] = await this.sendOnce(redis, script, keys, args);
    if (reply instanceof Error && isRedirection(reply)) {
      // Cluster mode: the slot moved (a failover, a resharding) and this client had not
      // heard yet. The script did not run; with the slot map read again, send it once more.
      await slotMapReadAgain(redis);
      [reply, confirmed] = await this.sendOnce(redis, script, keys, args);
    }
    if (reply instanceof Error) throw reply;
    const { minReplicas, timeoutMs } = this.options;
    if (confirmed < minReplicas) {
      this.options.onShortfall?.(confirmed);
      throw new ReplicaShortfallError(confirmed, minReplicas, timeoutMs);
    }
    return reply;
  }

  /** The function with its WAIT: its reply or error, and the replicas that confirmed. */
  private async sendOnce(redis: RedisClient, script: LuaScript, keys: string[], args: (string | number)[]): Promise<[unknown, number]> {
    const { minReplicas, timeoutMs } = this.options;
    // Both are written before either answers. Redis runs them in order, so WAIT counts the
    // replicas that have this call's writes. A WAIT after a failed call waits for nothing
    // new and answers at once.
    const send = () => scriptThenWait(redis.pipeline().fcall(script.functionName, keys.length, ...keys, ...args), minReplicas, timeoutMs);
    const sent = await send();
    if (!isMissingFunction(sent[0])) return sent;
    // Redis lost the library (a FUNCTION FLUSH, a primary that never had it): nothing ran.
    await reloadLibrary(redis, this.library);
    return send();
  }
}

/**
 * Sends a pipeline of one script, then WAIT; the script's reply (or error) and WAIT's count.
 * WAIT's own error matters only when the script ran: a script refused by a replica (MOVED)
 * makes that replica refuse WAIT too.
 */
async function scriptThenWait(pipeline: ChainableCommander, minReplicas: number, timeoutMs: number): Promise<[unknown, number]> {
  const replies = await pipeline.wait(minReplicas, timeoutMs).exec();
  // exec() answers null only for a MULTI that a WATCH aborted: never here.
  const [[scriptError, reply], [waitError, confirmed]] = replies as [[Error | null, unknown], [Error | null, number]];
  if (scriptError) return [scriptError, 0];
  if (waitError) throw waitError;
  return [reply, confirmed];
}

/** Redis Cluster said the slot is served elsewhere: the command did not run. */
function isRedirection(error: Error): boolean {
  return /^(MOVED|ASK) /.test(error.message);
}

/** In Cluster mode, resolves once the client has read the slot map again (at most a second). */
async function slotMapReadAgain(redis: RedisClient): Promise<void> {
  if (!(redis instanceof Cluster)) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1000);
    redis.refreshSlotsCache(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
