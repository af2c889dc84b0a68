// A Redis Sentinel topology on loopback from Debian's redis-server and redis-sentinel: one
// primary, its replicas and three sentinels, each a real process with its own folder, port
// and password. `npm run ha` runs the service against one; the failover tests kill, freeze
// and thaw its members for real.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export interface TopologyOptions {
  replicas?: number;
  sentinels?: number;
  /** Sentinel's down-after-milliseconds: how long a silent primary takes to be declared down. */
  downAfterMs?: number;
  /** Sentinel's failover-timeout. */
  failoverTimeoutMs?: number;
  /** The name the sentinels monitor the primary under. */
  master?: string;
  redisServerBin?: string;
  redisSentinelBin?: string;
}

export interface RedisNode {
  port: number;
  pid(): number;
  /** SIGKILL, and wait until the process is gone. */
  kill(): Promise<void>;
  /** SIGSTOP: the socket stays open and nothing answers. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Starts the process again with its configuration file (which Redis may have rewritten). */
  restart(): Promise<void>;
  /** The process runs (frozen or not). */
  running(): boolean;
  /** A fresh client to this node alone (not through Sentinel). */
  client(): Redis;
  /** What ROLE says it is now ("master", "slave", "sentinel"), or undefined if it does not answer. */
  role(): Promise<string | undefined>;
}

export interface SentinelTopology {
  master: string;
  password: string;
  sentinelPassword: string;
  servers: RedisNode[];
  sentinels: RedisNode[];
  /** REDIS_SENTINELS for the service. */
  sentinelAddresses: string;
  /** The variables that point the service at this topology. */
  env: Record<string, string>;
  /** The server the sentinels name as primary now. */
  primary(): Promise<RedisNode>;
  /** Restarts the servers that are down, and waits until the primary has every replica online. */
  heal(timeoutMs: number): Promise<void>;
  /** Waits until the sentinels name a primary other than `old` that answers as a primary. */
  waitForNewPrimary(old: RedisNode, timeoutMs: number): Promise<RedisNode>;
  stop(): Promise<void>;
}

export const HOST = '127.0.0.1';

export async function startSentinelTopology(options: TopologyOptions = {}): Promise<SentinelTopology> {
  const {
    replicas = 2,
    sentinels: sentinelCount = 3,
    downAfterMs = 1000,
    failoverTimeoutMs = 5000,
    master = 'lease-primary',
    redisServerBin = 'redis-server',
    redisSentinelBin = 'redis-sentinel',
  } = options;
  const dir = mkdtempSync(join(tmpdir(), 'lease-sentinel-'));
  const password = randomBytes(12).toString('hex');
  const sentinelPassword = randomBytes(12).toString('hex');
  const nodes: ProcessNode[] = [];
  const stopAll = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const servers: ProcessNode[] = [];
    for (let i = 0; i <= replicas; i++) {
      const port = await freePort();
      const serverDir = join(dir, `redis-${port}`);
      const lines = [
        `port ${port}`,
        `bind ${HOST}`,
        `dir ${serverDir}`,
        ...replicatedServerLines(password),
        // A replica answers reads only; the service never reads from one.
        'replica-read-only yes',
        ...(i === 0 ? [] : [`replicaof ${HOST} ${servers[0]!.port}`]),
      ];
      const node = new ProcessNode(redisServerBin, serverDir, `redis-${port}.conf`, lines, port, password);
      nodes.push(node);
      servers.push(node);
      await node.start();
    }
    const sentinels: ProcessNode[] = [];
    const quorum = Math.floor(sentinelCount / 2) + 1;
    for (let i = 0; i < sentinelCount; i++) {
      const port = await freePort();
      const sentinelDir = join(dir, `sentinel-${port}`);
      const lines = [
        `port ${port}`,
        `bind ${HOST}`,
        `dir ${sentinelDir}`,
        `requirepass ${sentinelPassword}`,
        // Sentinels talk to each other with the same password.
        `sentinel sentinel-pass ${sentinelPassword}`,
        `sentinel monitor ${master} ${HOST} ${servers[0]!.port} ${quorum}`,
        `sentinel auth-pass ${master} ${password}`,
        `sentinel down-after-milliseconds ${master} ${downAfterMs}`,
        `sentinel failover-timeout ${master} ${failoverTimeoutMs}`,
        `sentinel parallel-syncs ${master} 1`,
      ];
      const node = new ProcessNode(redisSentinelBin, sentinelDir, `sentinel-${port}.conf`, lines, port, sentinelPassword);
      nodes.push(node);
      sentinels.push(node);
      await node.start();
    }
    const sentinelAddresses = sentinels.map((s) => `${HOST}:${s.port}`).join(',');
    const primaryAddress = async (): Promise<number | undefined> => {
      for (const sentinel of sentinels) {
        const client = sentinel.client();
        try {
          const reply = (await client.call('SENTINEL', 'get-master-addr-by-name', master)) as [string, string] | null;
          if (reply) return Number(reply[1]);
        } catch {
          // that sentinel is down or frozen; ask the next
        } finally {
          client.disconnect();
        }
      }
      return undefined;
    };
    const topology: SentinelTopology = {
      master,
      password,
      sentinelPassword,
      servers,
      sentinels,
      sentinelAddresses,
      env: { REDIS_SENTINELS: sentinelAddresses, REDIS_SENTINEL_MASTER: master, REDIS_PASSWORD: password, REDIS_SENTINEL_PASSWORD: sentinelPassword },
      async primary() {
        const port = await primaryAddress();
        const node = servers.find((s) => s.port === port);
        if (!node) throw new Error(`the sentinels name no primary of this topology (port ${port})`);
        return node;
      },
      async waitForNewPrimary(old, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
          const port = await primaryAddress();
          const node = servers.find((s) => s.port === port);
          if (node && node !== old && (await node.role()) === 'master') return node;
          await sleep(50);
        }
        throw new Error(`no failover within ${timeoutMs} ms`);
      },
      async heal(timeoutMs) {
        for (const server of servers) {
          server.thaw();
          if (!server.running()) await server.restart();
        }
        const primary = await topology.primary();
        await waitForReplicas(primary as ProcessNode, servers.length - 1, timeoutMs);
      },
      stop: stopAll,
    };
    await waitForReplicas(servers[0]!, replicas, 10000);
    await waitForSentinels(sentinels, master, replicas, 15000);
    return topology;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** One redis-server or redis-sentinel process with its folder and configuration file (the cluster topology uses it too). */
export class ProcessNode implements RedisNode {
  private child: ChildProcess | undefined;

  constructor(
    private readonly bin: string,
    private readonly dir: string,
    private readonly configName: string,
    private readonly configLines: string[],
    readonly port: number,
    private readonly password: string,
  ) {}

  pid(): number {
    if (!this.child?.pid) throw new Error(`node ${this.port} is not running`);
    return this.child.pid;
  }

  async start(firstTime = true): Promise<void> {
    if (firstTime) {
      // 0700: the append-only file holds every lease.
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      // Holds the passwords: readable by this user only. Sentinel rewrites it as it learns.
      writeFileSync(join(this.dir, this.configName), this.configLines.join('\n') + '\n', { mode: 0o600 });
    }
    const child = spawn(this.bin, [join(this.dir, this.configName)], { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${this.bin} on port ${this.port} exited with ${child.exitCode}: ${stderr}`);
      const client = this.client();
      try {
        await client.ping();
        return;
      } catch {
        await sleep(50);
      } finally {
        client.disconnect();
      }
    }
    throw new Error(`${this.bin} on port ${this.port} did not answer within 10 s`);
  }

  restart(): Promise<void> {
    return this.start(false);
  }

  running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  client(): Redis {
    const client = new Redis({ host: HOST, port: this.port, password: this.password, lazyConnect: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 1000 });
    client.on('error', () => {});
    return client;
  }

  async role(): Promise<string | undefined> {
    const client = this.client();
    try {
      const reply = (await client.call('ROLE')) as unknown[];
      return String(reply[0]);
    } catch {
      return undefined;
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    this.thaw();
    await this.kill();
  }
}

async function waitForReplicas(primary: ProcessNode, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = 'no answer';
  while (Date.now() < deadline) {
    const client = primary.client();
    try {
      const info = await client.info('replication');
      const replicas = info.split('\n').filter((line) => /^slave\d+:/.test(line));
      seen = `role ${/^role:(\S+)/m.exec(info)?.[1] ?? '?'}, replicas: ${replicas.map((line) => line.trim()).join('; ') || 'none'}`;
      if (replicas.filter((line) => /state=online/.test(line)).length >= count) return;
    } catch (error) {
      seen = `no answer (${(error as Error).message})`;
    } finally {
      client.disconnect();
    }
    await sleep(50);
  }
  // What the primary last said, so that a slow machine and a stuck replica can be told apart.
  throw new Error(`the replicas did not sync with the primary (port ${primary.port}) within ${timeoutMs} ms; it last said: ${seen}`);
}

/** Until every sentinel knows the replicas and the other sentinels (else a failover cannot start). */
async function waitForSentinels(sentinels: ProcessNode[], master: string, replicas: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const sentinel of sentinels) {
    for (;;) {
      const client = sentinel.client();
      try {
        const fields = (await client.call('SENTINEL', 'master', master)) as string[];
        const field = (name: string) => Number(fields[fields.indexOf(name) + 1]);
        if (field('num-slaves') >= replicas && field('num-other-sentinels') >= sentinels.length - 1) break;
      } catch {
        // not yet
      } finally {
        client.disconnect();
      }
      if (Date.now() > deadline) throw new Error(`the sentinels did not discover each other within ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

/**
 * What every redis-server of a test topology has (Sentinel's or a cluster's): one password for
 * clients and for its replication, the append-only file as production keeps it, and a
 * replica's first sync at once, not after the default 5 s wait for others.
 */
export function replicatedServerLines(password: string): string[] {
  return [`requirepass ${password}`, `masterauth ${password}`, 'appendonly yes', 'appendfsync everysec', 'save ""', 'repl-diskless-sync-delay 0'];
}

// Ports below Linux's ephemeral range (32768+): a port some client got from the kernel is
// never one of these, so a node restarted on its old port does not find it taken.
const PORT_RANGE = { low: 20000, high: 32000 };

/** A port of PORT_RANGE that nothing listens on now. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low));
    if (await canListen(port)) return port;
  }
  throw new Error('found no free port');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}
