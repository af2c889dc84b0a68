// What the numbers were measured on: they mean little without it.
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import type { Redis } from 'ioredis';
import { info } from './redis-info.js';
import { REPO_ROOT } from './service-process.js';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  redis: string;
  /** 1-minute load average when the run started and ended: above `cores`, others competed for the CPU. */
  loadAverage: { start: number; end?: number };
  commit: string;
}

export async function describeMachine(probe: Redis): Promise<Machine> {
  const server = await info(probe, 'server');
  const memory = await info(probe, 'memory');
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${process.platform} ${release()}`,
    node: process.version,
    redis: `redis-server ${server.redis_version ?? '?'} (${memory.mem_allocator ?? '?'})`,
    loadAverage: { start: round2(loadavg()[0]!) },
    commit: gitCommit(),
  };
}

export function finishMachine(machine: Machine): void {
  machine.loadAverage.end = round2(loadavg()[0]!);
}

export function machineLine(machine: Machine): string {
  const load = `load ${machine.loadAverage.start}${machine.loadAverage.end === undefined ? '' : ` -> ${machine.loadAverage.end}`}`;
  return `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; node ${machine.node}; ${machine.redis}; ${load}; ${machine.commit}`;
}

function gitCommit(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--', 'src').length > 0 ? `${head} + uncommitted src/ changes` : head;
  } catch {
    return 'not a git checkout';
  }
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
