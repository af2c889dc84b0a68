// HTTP servers under test run in a child process of their own, as in production: the load
// generator (autocannon, in this process) must not share an event loop with the server it
// measures. The lease service runs as `node --import tsx src/main.ts` (no build needed),
// the HTTP floor as `node --import tsx bench/lib/http-floor-server.ts`, both the same way,
// so the floor is a fair baseline.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort } from '../../src/redis/embedded.js';
import { trackChild } from './cleanup.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Lines of a child's output kept to explain a failure. */
const OUTPUT_LINES = 40;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ, fixed at 100 on every arch Node runs on). */
const TICKS_PER_SECOND = 100;

export interface ChildServer {
  name: string;
  /** http://127.0.0.1:port, no trailing slash. */
  url: string;
  pid: number;
  /** The environment it was started with (to derive its configuration). */
  env: Record<string, string>;
  alive(): boolean;
  /** CPU seconds (user + system) the child has used so far. */
  cpuSeconds(): number;
  /** Its last lines of stdout and stderr. */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s; safe to call more than once. */
  stop(): Promise<void>;
}

export interface ChildServerOptions {
  name: string;
  /** Path of a TypeScript entry point, relative to the repository root. */
  script: string;
  /** Added to this process's environment (PORT and HOST are set here). */
  env: Record<string, string>;
  /** A GET path that answers 200 once the server can serve. */
  readyPath: string;
  /** Node flags before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export async function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  const port = await findFreePort();
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
  Object.assign(env, options.env, { PORT: String(port), HOST: '127.0.0.1' });

  const args = [...(options.nodeArgs ?? []), '--import', 'tsx', options.script];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${options.name}: could not start ${options.script}`);
  const pid = child.pid;
  const tracked = trackChild(pid);
  const watched = watchChild(child);
  void watched.exited.then(() => tracked.forget());

  const server: ChildServer = {
    name: options.name,
    url: `http://127.0.0.1:${port}`,
    pid,
    env,
    alive: () => watched.exit() === undefined,
    cpuSeconds: () => processCpuSeconds(pid),
    output: () => watched.output(),
    stop: () => stopChild(child, watched, STOP_TIMEOUT_MS),
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await answers200(`${server.url}${options.readyPath}`))) {
    const exit = watched.exit();
    if (exit) throw new Error(`${options.name} exited at start (code ${exit.code}, signal ${exit.signal}):\n${server.output()}`);
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${options.name} was not ready within ${START_TIMEOUT_MS} ms:\n${server.output()}`);
    }
    await sleep(100);
  }
  return server;
}

export interface WatchedChild {
  /** Its last OUTPUT_LINES lines of stdout and stderr. */
  output(): string;
  /** How it exited, once it has. */
  exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
}

/** Keeps a child's last lines of output (to explain a failure) and notes its exit. */
export function watchChild(child: ChildProcess): WatchedChild {
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter((line) => line.trim() !== ''));
    if (lines.length > OUTPUT_LINES) lines.splice(0, lines.length - OUTPUT_LINES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  return { output: () => lines.join('\n'), exit: () => exit, exited };
}

/** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`. */
export async function stopChild(child: ChildProcess, watched: WatchedChild, timeoutMs: number): Promise<void> {
  if (watched.exit()) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await watched.exited;
  clearTimeout(timer);
}

/** One GET on a fresh connection (no keep-alive socket is left open to the child). */
function answers200(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(url, { agent: false, timeout: 1_000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}

/** utime + stime of a process from /proc (fields 14 and 15, after the parenthesised name). */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/**
 * The lease service, against the benchmark's Redis, logging warnings only (logging every
 * grant at info would measure pino); with `profileDir`, under V8's CPU profiler. Extra knobs (e.g. TTL_MAX_MS) come from `env`; the
 * service's other variables pass through from this process's environment, so a tuning run
 * can set REAPER_INTERVAL_MS and the like.
 */
export function startService(redisUrl: string, env: Record<string, string>, profileDir?: string): Promise<ChildServer> {
  return startChildServer({
    name: 'lease service',
    script: 'src/main.ts',
    env: { ...env, REDIS_URL: redisUrl, LOG_LEVEL: 'warn' },
    readyPath: '/readyz',
    // V8 writes the profile when the process exits (it stops on SIGTERM by itself).
    ...(profileDir ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] } : {}),
  });
}

/** The HTTP floor (bench/lib/http-floor-server.ts) with the same environment as the service. */
export function startHttpFloor(env: Record<string, string>): Promise<ChildServer> {
  return startChildServer({
    name: 'HTTP floor',
    script: 'bench/lib/http-floor-server.ts',
    env: { ...env, LOG_LEVEL: 'warn' },
    readyPath: '/healthz',
  });
}
