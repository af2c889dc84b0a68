// Other processes, as tests see them: whether one still runs, and one run to its end.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Whether a process still runs (a zombie has ended: it only waits to be reaped). */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Runs a command to its end (killed after `timeoutMs`): its exit code (or signal) and all it printed. */
export function runToEnd(
  command: string,
  args: string[],
  { env = {}, cwd, timeoutMs }: { env?: Record<string, string>; cwd?: string; timeoutMs: number },
): Promise<{ code: number | string; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, output });
    });
  });
}
