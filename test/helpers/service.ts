// The service as a real process (`node --import tsx src/main.ts`), for tests of start-up,
// signals and crashes: what `npm start` runs, minus the build.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findFreePort } from '../../src/redis/embedded.js';
import { waitFor } from './wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
}


/** Spawns the service; with `waitReady` resolves once /readyz answers 200. */
export async function startService(env: Record<string, string>, { waitReady = true } = {}): Promise<ServiceProcess> {
  const port = env.PORT ?? String(await findFreePort());
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    // Load shedding off unless a test turns it on: a test machine running two suites at once
    // lags more than a second now and then, and a shed request there is a false failure.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn', LOAD_SHED_EVENT_LOOP_DELAY_MS: '60000', ...env, PORT: port, HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const service = { url: `http://127.0.0.1:${port}`, child, output: () => output, exited };
  if (waitReady) await waitUntilServing(service);
  return service;
}

/** Resolves once /readyz answers 200; fails at once if the process exits first. */
export async function waitUntilServing(service: ServiceProcess): Promise<void> {
  let ended = false;
  void service.exited.then(() => (ended = true));
  await waitFor(
    async () => {
      if (ended) throw new Error(`service exited during start: ${service.output()}`);
      try {
        return (await fetch(`${service.url}/readyz`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30000, what: 'the service to be ready' },
  );
}
