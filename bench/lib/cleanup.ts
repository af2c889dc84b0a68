// Teardown for a benchmark process. Whatever a benchmark starts (a redis-server, a service
// child, connections) registers how to undo it; the steps run newest first, once, whether
// the run ends, throws or is interrupted. A redis-server we start is detached (its own
// process group), so a Ctrl-C in the terminal never reaches it: only these steps stop it.
// Children also get a last-resort SIGKILL when the process exits before the steps could
// run (a second Ctrl-C, process.exit from elsewhere), so nothing is left behind.
import { rmSync } from 'node:fs';

const steps: (() => Promise<unknown>)[] = [];
const lastResort = new Map<number, string | undefined>();
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Registers a step that undoes some setup; steps run newest first. */
export function onCleanup(step: () => Promise<unknown>): void {
  steps.push(step);
}

/**
 * Remembers a child process (and a folder to remove with it) to kill synchronously if the
 * process exits while it still runs; forget() it once it was stopped properly.
 */
export function trackChild(pid: number, folder?: string): { forget(): void } {
  lastResort.set(pid, folder);
  return { forget: () => void lastResort.delete(pid) };
}

/** Runs every registered step (once; every caller waits for the same run). */
export function cleanUp(log: (line: string) => void = () => {}): Promise<void> {
  cleaning ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop()!;
      await step().catch((error: unknown) => log(`cleanup step failed: ${(error as Error).message}`));
    }
  })();
  return cleaning;
}

/** True once SIGINT or SIGTERM arrived: errors from then on are the interruption's doing. */
export function wasInterrupted(): boolean {
  return interrupted;
}

/**
 * First SIGINT/SIGTERM: clean up, then exit 130. A second one exits at once (the exit
 * hook below still kills the children).
 */
export function installSignalHandlers(log: (line: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      log(`\n${signal}: stopping what this benchmark started (again to exit at once)`);
      void cleanUp(log).finally(() => process.exit(130));
    });
  }
}

process.on('exit', () => {
  for (const [pid, folder] of lastResort) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    if (folder) rmSync(folder, { recursive: true, force: true });
  }
});

/**
 * Runs a benchmark's main function as the process: signal handlers first, then main; a
 * throw prints its stack and becomes `failureCode` (130 once interrupted); cleanup always
 * runs before the process exits with the code.
 */
export function runBenchmark(main: () => Promise<number>, log: (line: string) => void, failureCode: number): void {
  installSignalHandlers(log);
  void main()
    .then(
      (code) => code,
      (error: unknown) => {
        if (interrupted) return 130;
        process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
        return failureCode;
      },
    )
    .then(async (code) => {
      await cleanUp(log);
      process.exit(code);
    });
}
