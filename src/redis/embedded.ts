// The redis-server the service runs for itself when no REDIS_URL is given, so a newcomer
// gets a working, persistent service from one command. It listens on loopback only, on a
// free port, and keeps an append-only file under the data folder.
//
// If the service dies without stopping it (SIGKILL, power cut of the Node process only),
// the orphaned redis-server keeps running and keeps the leases. The next start adopts it
// instead of starting a second server on the same append-only file, which would corrupt it.
//
// The server is private to the service: it asks for a random password, which reaches it on
// stdin (a command line is readable by every local user through ps and /proc), and its data
// folder is 0700 with every file in it 0600. It is memory-bounded with noeviction: when full,
// writes fail with OOM (the service answers 503) instead of the kernel killing it, or Redis
// silently dropping leases to make room.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export interface EmbeddedRedisOptions {
  dataDir: string;
  bin?: string;
  /** Use this port instead of a free one (tests restart a server where clients expect it). */
  port?: number;
  /** Extra redis-server arguments, e.g. ['--appendfsync', 'always']. */
  extraArgs?: string[];
  /** Redis' maxmemory, e.g. '1gb' (the policy is always noeviction). Unset: no limit. */
  maxmemory?: string;
  /**
   * The password to start a new server with, instead of a random one: the supervisor starts
   * a dead server again with the one its clients already use.
   */
  password?: string;
  startTimeoutMs?: number;
}

/** What the state file in the data folder records about the running server. */
export interface EmbeddedState {
  pid: number;
  port: number;
  /** Absent in a file written before the server had a password. */
  password?: string;
}

export interface EmbeddedRedis {
  /** redis://:password@127.0.0.1:port; log `port`, never this. */
  url: string;
  port: number;
  pid: number;
  password: string;
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
// redis-server's default appenddirname.
const AOF_DIR = 'appendonlydir';
// 32 random bytes, hex: no character that needs escaping in a URL or a config file.
const PASSWORD_BYTES = 32;

export async function startEmbeddedRedis(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const bin = options.bin ?? 'redis-server';
  const executable = findExecutable(bin);
  if (!executable) throw new RedisServerMissingError(bin);
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const dataDir = realpathSync(options.dataDir);
  makePrivate(dataDir);

  const adopted = await adoptRunningServer(dataDir, options);
  if (adopted) return adopted;

  const password = options.password ?? randomBytes(PASSWORD_BYTES).toString('hex');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = options.port ?? (await findFreePort());
    try {
      return await launch(executable, dataDir, port, password, options);
    } catch (error) {
      lastError = error;
      if (options.port !== undefined) break;
    }
  }
  throw lastError;
}

async function launch(
  executable: string,
  dataDir: string,
  port: number,
  password: string,
  options: EmbeddedRedisOptions,
): Promise<EmbeddedRedis> {
  const logFile = join(dataDir, 'redis.log');
  const args = [
    // '-' (first or last): redis-server reads a configuration from stdin before applying
    // the options below; the password comes that way, never on the command line.
    '-',
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--dir', dataDir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--save', '',
    '--daemonize', 'no',
    '--logfile', logFile,
    '--maxmemory-policy', 'noeviction',
    ...(options.maxmemory === undefined ? [] : ['--maxmemory', options.maxmemory]),
    ...(options.extraArgs ?? []),
  ];
  const child = spawnPrivate(executable, args);
  // A server that fails at once closes stdin early; its exit (below) reports the failure.
  child.stdin.on('error', () => {});
  child.stdin.end(`requirepass ${password}\n`);
  let exited = false;
  child.once('exit', () => (exited = true));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${executable}`);

  const url = redisUrl(port, password);
  const deadline = Date.now() + (options.startTimeoutMs ?? 15000);
  while (!(await answersPing(url))) {
    if (exited) throw new Error(`redis-server exited at start: ${tail(logFile)}`);
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`redis-server did not answer within its start timeout: ${tail(logFile)}`);
    }
    await sleep(50);
  }
  writeState(dataDir, { pid, port, password });
  return handle(port, pid, password, dataDir, false);
}

/**
 * Spawns redis-server so that every file it creates (redis.log, appendonlydir and the
 * files in it, rewrites included) is private: it creates them with the mode its umask
 * allows, and a child inherits the umask of its parent at fork. Node has no per-spawn
 * umask, so ours is narrowed around spawn(), which forks synchronously: no other code of
 * this process runs before it is restored.
 */
function spawnPrivate(executable: string, args: string[]): ChildProcessByStdio<Writable, null, null> {
  const previous = process.umask(0o077);
  try {
    // detached: a Ctrl-C in the terminal must reach the service, which then stops Redis
    // after the last request, not Redis first.
    const child = spawn(executable, args, { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    child.unref();
    return child;
  } finally {
    process.umask(previous);
  }
}

/**
 * The data folder 0700, and what redis-server and this module keep in it 0600 (folders
 * 0700). It may have been made by an earlier version, or by hand, with the usual 0755/0644,
 * and it holds the password (in the state file) and every lease (in the append-only file).
 * Only those are touched: DATA_DIR may be a folder that also holds other things.
 */
function makePrivate(dataDir: string): void {
  chmodSync(dataDir, 0o700);
  for (const name of [STATE_FILE, 'redis.log', 'dump.rdb']) chmodFile(join(dataDir, name));
  const aofDir = join(dataDir, AOF_DIR);
  // lstat: a symbolic link is not followed out of the folder.
  if (!lstatSync(aofDir, { throwIfNoEntry: false })?.isDirectory()) return;
  chmodSync(aofDir, 0o700);
  for (const name of readdirSync(aofDir)) chmodFile(join(aofDir, name));
}

function chmodFile(path: string): void {
  if (lstatSync(path, { throwIfNoEntry: false })?.isFile()) chmodSync(path, 0o600);
}

function writeState(dataDir: string, state: Required<EmbeddedState>): void {
  // Written aside and renamed: a reader never sees half a file, and the file is 0600 from
  // its creation on, before the password is in it.
  const file = join(dataDir, STATE_FILE);
  const temporary = `${file}.tmp`;
  rmSync(temporary, { force: true });
  writeFileSync(temporary, JSON.stringify(state), { mode: 0o600, flag: 'wx' });
  renameSync(temporary, file);
}

function redisUrl(port: number, password: string): string {
  return `redis://:${password}@127.0.0.1:${port}`;
}

function handle(port: number, pid: number, password: string, dataDir: string, adopted: boolean): EmbeddedRedis {
  return {
    url: redisUrl(port, password),
    port,
    pid,
    password,
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
/**
 * The URL of the redis-server a service started under `dataDir`, for another process that
 * must reach it (the CLI's `lease tokens`, the demo), or null when none runs there.
 */
export function embeddedRedisUrl(dataDir: string): string | null {
  const state = readEmbeddedState(dataDir);
  if (!state) return null;
  return state.password === undefined ? `redis://127.0.0.1:${state.port}` : redisUrl(state.port, state.password);
}

export function readEmbeddedState(dataDir: string): EmbeddedState | null {
  try {
    return JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as EmbeddedState;
  } catch {
    return null;
  }
}

/** Forgets the server recorded under `dataDir` (it was stopped or killed). */
export function forgetEmbeddedState(dataDir: string): void {
  rmSync(join(dataDir, STATE_FILE), { force: true });
}

async function adoptRunningServer(dataDir: string, options: EmbeddedRedisOptions): Promise<EmbeddedRedis | undefined> {
  const state = readEmbeddedState(dataDir);
  if (!state) return undefined;
  if (!Number.isInteger(state.pid) || !Number.isInteger(state.port) || !isAlive(state.pid)) return undefined;
  if (state.password !== undefined && typeof state.password !== 'string') return undefined;
  if (!readCommandLine(state.pid).includes('redis-server')) return undefined;
  const client = new Redis({
    host: '127.0.0.1',
    port: state.port,
    password: state.password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    if (!(await servesDataDir(client, dataDir))) return undefined;
    // From here on it is our server: a failure below stops this start (it throws) rather
    // than starting a second server on the same append-only file.
    const password = state.password ?? (await givePassword(client, dataDir, state));
    await applyMemoryLimit(client, options);
    return handle(state.port, state.pid, password, dataDir, true);
  } finally {
    client.disconnect();
  }
}

/** Whether the server behind `client` answers, and keeps its files in `dataDir`. */
async function servesDataDir(client: Redis, dataDir: string): Promise<boolean> {
  try {
    await client.connect();
    const [, dir] = (await client.config('GET', 'dir')) as [string, string];
    return dir === dataDir;
  } catch {
    return false;
  }
}

/** This start's limit on an adopted server: REDIS_MAXMEMORY may have changed since it started. */
async function applyMemoryLimit(client: Redis, options: EmbeddedRedisOptions): Promise<void> {
  await client.config('SET', 'maxmemory-policy', 'noeviction');
  if (options.maxmemory !== undefined) await client.config('SET', 'maxmemory', options.maxmemory);
}

/**
 * A server started by a version of the service that gave it no password gets one now, so
 * that it is private from here on (it reaches it over the socket, not a command line).
 */
async function givePassword(client: Redis, dataDir: string, state: EmbeddedState): Promise<string> {
  const password = randomBytes(PASSWORD_BYTES).toString('hex');
  await client.config('SET', 'requirepass', password);
  writeState(dataDir, { pid: state.pid, port: state.port, password });
  return password;
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
