// Facts about other processes that tests of process groups need.
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
