// The lease service as its own process, started the way `npm start` starts it: no
// REDIS_URL, so it runs a redis-server of its own under DATA_DIR (here a temporary folder)
// and stops it when it gets SIGTERM. Access control is on (AUTH=on), as in production: every
// /v1 call needs a bearer token, which the demo makes in that Redis once the service is ready.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort, isAlive, readEmbeddedState } from '../redis/embedded.js';
import { StoryError } from './checks.js';
import type { Program } from './entry-points.js';

export interface ServiceSettings {
  dataDir: string;
  /** A short interval publishes an orphan soon after its lease expires. */
  reaperIntervalMs: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  url: string;
  pid: number;
  /** The redis-server the service started (from the state file it keeps in DATA_DIR). */
  redisPid: number | null;
  /** What the service printed (warnings and errors only), for when something goes wrong. */
  output(): string;
  /** SIGTERM, as an operator would: the service finishes its requests and stops its redis-server. */
  stop(timeoutMs: number): Promise<Exit>;
  /** For a demo that is over or failed: stops whatever still runs, the service's Redis included. */
  terminate(): Promise<void>;
}

/** The service's keys' prefix, named here so that the tokens the demo makes are where the service looks. */
export const KEY_PREFIX = 'lease';

const READY_TIMEOUT_MS = 30_000;
const TERMINATE_GRACE_MS = 5_000;

export async function startService(program: Program, settings: ServiceSettings): Promise<ServiceProcess> {
  const port = await findFreePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(program.command, program.args, {
    cwd: program.cwd,
    // Only what the demo means: a REDIS_URL or a TTL_* from the caller's shell would change the story.
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: settings.dataDir,
      KEY_PREFIX,
      AUTH: 'on',
      LOG_LEVEL: 'warn',
      REAPER_INTERVAL_MS: String(settings.reaperIntervalMs),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let exit: Exit | null = null;
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve((exit = { code, signal }))));

  const redisPid = (): number | null => readEmbeddedState(settings.dataDir)?.pid ?? null;
  const ended = (timeoutMs: number): Promise<Exit | null> =>
    // unref'd: a pending timer must not keep the demo alive once everything has ended.
    Promise.race([exited, sleep(timeoutMs, null, { ref: false })]);
  const terminate = async (): Promise<void> => {
    // SIGTERM first, so the service stops its own redis-server; SIGKILL only if it hangs.
    if (!exit) child.kill('SIGTERM');
    if (!(await ended(TERMINATE_GRACE_MS))) child.kill('SIGKILL');
    await exited;
    // A service killed with SIGKILL leaves its redis-server running (the next start would adopt it).
    const pid = redisPid();
    if (pid === null || !isAlive(pid)) return;
    process.kill(pid, 'SIGTERM');
    for (const deadline = Date.now() + TERMINATE_GRACE_MS; isAlive(pid) && Date.now() < deadline; ) await sleep(20);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exit) {
      await terminate();
      throw new StoryError(`the lease service exited while starting (${describe(exit)}): ${output.trim()}`);
    }
    if (await answersReady(url)) break;
    if (Date.now() > deadline) {
      await terminate();
      throw new StoryError(`the lease service was not ready within ${READY_TIMEOUT_MS} ms: ${output.trim()}`);
    }
    await sleep(50);
  }

  const stop = async (timeoutMs: number): Promise<Exit> => {
    if (!exit) child.kill('SIGTERM');
    const end = await ended(timeoutMs);
    if (!end) throw new StoryError(`the lease service did not stop within ${timeoutMs} ms of SIGTERM`);
    return end;
  };
  return {
    url,
    pid: child.pid!,
    redisPid: redisPid(),
    output: () => output,
    stop,
    terminate,
  };
}

export function describe(exit: Exit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

async function answersReady(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}
