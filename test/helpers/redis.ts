// A real redis-server per test file, in a temporary data folder, started by the same
// manager the service uses. Tests pause it (SIGSTOP), kill it and restart it for real.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { forgetEmbeddedState, isAlive, startEmbeddedRedis, type EmbeddedRedis } from '../../src/redis/embedded.js';

export interface TestRedis {
  url: string;
  port: number;
  dataDir: string;
  pid(): number;
  /** SIGSTOP: the socket stays open and nothing answers, like a stuck server. */
  pause(): void;
  resume(): void;
  /** SIGKILL: no final fsync, like a power cut. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port and data folder. */
  start(): Promise<void>;
  /** Copies the data folder aside (while running: what a lagging disk would hold). */
  snapshot(): string;
  /** Replaces the data folder with a snapshot; the server must be stopped. */
  restore(snapshot: string): void;
  stop(): Promise<void>;
}

// Ports below Linux's ephemeral range (32768+): a port another test got from bind(0) is
// never one of these, so restarting a server on its old port does not find it taken.
const PORT_RANGE = { low: 20000, high: 32000 };

async function startOnUnusedPort(dataDir: string, extraArgs: string[]): Promise<EmbeddedRedis> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low));
    try {
      return await startEmbeddedRedis({ dataDir, extraArgs, port });
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

export async function startTestRedis(extraArgs: string[] = []): Promise<TestRedis> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lease-test-redis-'));
  let server = await startOnUnusedPort(dataDir, extraArgs);
  const port = server.port;
  const snapshots: string[] = [];
  return {
    url: server.url,
    port,
    dataDir,
    pid: () => server.pid,
    pause: () => process.kill(server.pid, 'SIGSTOP'),
    resume: () => process.kill(server.pid, 'SIGCONT'),
    async kill() {
      process.kill(server.pid, 'SIGKILL');
      while (isAlive(server.pid)) await sleep(10);
      forgetEmbeddedState(dataDir);
    },
    async start() {
      // The same password: clients hold the url, which carries it.
      server = await startEmbeddedRedis({ dataDir, port, extraArgs, password: server.password });
    },
    snapshot() {
      const copy = mkdtempSync(join(tmpdir(), 'lease-test-snapshot-'));
      cpSync(join(dataDir, 'appendonlydir'), join(copy, 'appendonlydir'), { recursive: true });
      snapshots.push(copy);
      return copy;
    },
    restore(snapshot: string) {
      rmSync(join(dataDir, 'appendonlydir'), { recursive: true, force: true });
      cpSync(join(snapshot, 'appendonlydir'), join(dataDir, 'appendonlydir'), { recursive: true });
    },
    async stop() {
      try {
        process.kill(server.pid, 'SIGCONT');
      } catch {
        // already gone
      }
      await server.stop();
      for (const dir of [dataDir, ...snapshots]) rmSync(dir, { recursive: true, force: true });
    },
  };
}
