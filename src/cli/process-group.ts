// The command of `lease run` runs in a process group of its own, so a signal reaches every
// process it started. These send to the group and tell whether anything in it still runs.
import { readdirSync, readFileSync } from 'node:fs';

/** Sends a signal to every process of the group; an empty group is no error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is empty already.
  }
}

/**
 * Whether a process of the group still runs. A zombie does not: it has ended and only
 * waits for its parent (or, orphaned, for init, which in some containers never reaps).
 */
export function groupRunning(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform !== 'linux') return true;
  try {
    return readdirSync('/proc').some((entry) => /^\d+$/.test(entry) && runningInGroup(entry, pgid));
  } catch {
    return true;
  }
}

function runningInGroup(pid: string, pgid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so read after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(pgrp) === pgid && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
