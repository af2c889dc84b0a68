// The redis-server the service runs for itself when no REDIS_URL is given, so a newcomer
// gets a working, persistent service from one command. It listens on loopback only, on a
// free port, and keeps an append-only file under the data folder.
//
// If the service dies without stopping it (SIGKILL, power cut of the Node process only),
// the orphaned redis-server keeps running and keeps the leases. The next start adopts it
// instead of starting a second server on the same append-only file, which would corrupt it.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export interface EmbeddedRedisOptions {
  dataDir: string;
  bin?: string;
  /** Use this port instead of a free one (tests restart a server where clients expect it). */
  port?: number;
  /** Extra redis-server arguments, e.g. ['--appendfsync', 'always']. */
  extraArgs?: string[];
  startTimeoutMs?: number;
}

export interface EmbeddedRedis {
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  /** True when this start found a server left running by an earlier process and took it over. */
  adopted: boolean;
  /** Graceful stop: redis-server fsyncs its append-only file on SIGTERM. */
  stop(): Promise<void>;
}

export class RedisServerMissingError extends Error {
  constructor(bin: string) {
    super(
      `redis-server was not found (looked for "${bin}"). Install it with ` +
        '"apt-get install -y redis-server" (Debian/Ubuntu; use sudo when not root), ' +
        'or set REDIS_URL to a Redis you already run.',
    );
  }
}

const STATE_FILE = 'embedded-redis.json';

export async function startEmbeddedRedis(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const bin = options.bin ?? 'redis-server';
  const executable = findExecutable(bin);
  if (!executable) throw new RedisServerMissingError(bin);
  mkdirSync(options.dataDir, { recursive: true });
  const dataDir = realpathSync(options.dataDir);

  const adopted = await adoptRunningServer(dataDir);
  if (adopted) return adopted;

  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = options.port ?? (await findFreePort());
    try {
      return await launch(executable, dataDir, port, options);
    } catch (error) {
      lastError = error;
      if (options.port !== undefined) break;
    }
  }
  throw lastError;
}

async function launch(executable: string, dataDir: string, port: number, options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const logFile = join(dataDir, 'redis.log');
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--dir', dataDir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--save', '',
    '--daemonize', 'no',
    '--logfile', logFile,
    ...(options.extraArgs ?? []),
  ];
  // detached: a Ctrl-C in the terminal must reach the service, which then stops Redis
  // after the last request, not Redis first.
  const child = spawn(executable, args, { stdio: 'ignore', detached: true });
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${executable}`);

  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 15000);
  while (!(await answersPing(url))) {
    if (exited) throw new Error(`redis-server exited at start: ${tail(logFile)}`);
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`redis-server did not answer within its start timeout: ${tail(logFile)}`);
    }
    await sleep(50);
  }
  writeFileSync(join(dataDir, STATE_FILE), JSON.stringify({ pid, port }));
  return handle(url, port, pid, dataDir, false);
}

function handle(url: string, port: number, pid: number, dataDir: string, adopted: boolean): EmbeddedRedis {
  return {
    url,
    port,
    pid,
    dataDir,
    adopted,
    async stop() {
      if (!isAlive(pid)) return;
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10000;
      while (isAlive(pid) && Date.now() < deadline) await sleep(20);
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      forgetEmbeddedState(dataDir);
    },
  };
}

/**
 * The redis-server a service started under `dataDir` (the file it keeps there while that
 * server runs), or null. Other processes (the demo, tests) read it to find that server.
 */
export function readEmbeddedState(dataDir: string): { pid: number; port: number } | null {
  try {
    return JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as { pid: number; port: number };
  } catch {
    return null;
  }
}

/** Forgets the server recorded under `dataDir` (it was stopped or killed). */
export function forgetEmbeddedState(dataDir: string): void {
  rmSync(join(dataDir, STATE_FILE), { force: true });
}

async function adoptRunningServer(dataDir: string): Promise<EmbeddedRedis | undefined> {
  const state = readEmbeddedState(dataDir);
  if (!state) return undefined;
  if (!Number.isInteger(state.pid) || !Number.isInteger(state.port) || !isAlive(state.pid)) return undefined;
  if (!readCommandLine(state.pid).includes('redis-server')) return undefined;
  const url = `redis://127.0.0.1:${state.port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await client.connect();
    const [, dir] = (await client.config('GET', 'dir')) as [string, string];
    if (dir !== dataDir) return undefined;
    return handle(url, state.port, state.pid, dataDir, true);
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

async function answersPing(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still "exists" for kill(0); /proc tells whether it is really running.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readCommandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function findExecutable(bin: string): string | undefined {
  const candidates = bin.includes('/')
    ? [resolve(bin)]
    : (process.env.PATH ?? '').split(delimiter).filter(isAbsolute).map((dir) => join(dir, bin));
  for (const candidate of [...candidates, ...(bin.includes('/') ? [] : [`/usr/bin/${bin}`, `/usr/local/bin/${bin}`])]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next one
    }
  }
  return undefined;
}

/** A TCP port on loopback that nothing listens on right now. */
export function findFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}
