// Reading Redis' own accounting: INFO sections, memory, CPU and per-command statistics.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';

export async function info(redis: Redis, section: string): Promise<Record<string, string>> {
  const text = await redis.info(section);
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/** Bytes the allocator has handed to Redis (INFO memory used_memory). */
export async function usedMemory(redis: Redis): Promise<number> {
  return Number((await info(redis, 'memory')).used_memory);
}

/** CPU seconds Redis has used (user + system), all its threads. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const cpu = await info(redis, 'cpu');
  return Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys);
}

export interface CommandStat {
  calls: number;
  /** Microseconds spent in the command; for EVALSHA this includes the commands the script ran. */
  usec: number;
}

/**
 * INFO commandstats as command -> {calls, usec}. Commands run inside scripts are counted
 * under their own names as well, which tells how many Redis commands one script call makes.
 */
/**
 * The commands that run Lua, as INFO commandstats and SLOWLOG name them: FCALL (the service's
 * functions library), EVALSHA and EVAL (redlock's, the registry's, other baselines'), and
 * their read-only forms.
 */
export const SCRIPT_COMMANDS: ReadonlySet<string> = new Set(['fcall', 'fcall_ro', 'evalsha', 'evalsha_ro', 'eval', 'eval_ro']);

export async function commandStats(redis: Redis): Promise<Map<string, CommandStat>> {
  const stats = new Map<string, CommandStat>();
  for (const [key, value] of Object.entries(await info(redis, 'commandstats'))) {
    if (!key.startsWith('cmdstat_')) continue;
    const fields = Object.fromEntries(value.split(',').map((pair) => pair.split('=') as [string, string]));
    stats.set(key.slice('cmdstat_'.length), { calls: Number(fields.calls), usec: Number(fields.usec) });
  }
  return stats;
}

/** What happened between two commandstats readings, busiest command first. */
export function commandStatsDelta(before: Map<string, CommandStat>, after: Map<string, CommandStat>): Record<string, CommandStat> {
  const delta: [string, CommandStat][] = [];
  for (const [command, now] of after) {
    const then = before.get(command) ?? { calls: 0, usec: 0 };
    if (now.calls > then.calls) delta.push([command, { calls: now.calls - then.calls, usec: now.usec - then.usec }]);
  }
  delta.sort((a, b) => b[1].usec - a[1].usec);
  return Object.fromEntries(delta);
}

export interface Persistence {
  /** AOF rewrites since Redis started. */
  rewrites: number;
  /** A rewrite (or an RDB save, which forks too) is running or waits to run. */
  busy: boolean;
}

export async function persistence(redis: Redis): Promise<Persistence> {
  const p = await info(redis, 'persistence');
  return {
    rewrites: Number(p.aof_rewrites ?? 0),
    busy: p.aof_rewrite_in_progress === '1' || p.aof_rewrite_scheduled === '1' || p.rdb_bgsave_in_progress === '1',
  };
}

/**
 * Rewrites the append-only file now and waits until it is done. Redis rewrites it by itself
 * whenever it has doubled (auto-aof-rewrite-percentage 100), forking a child whose
 * copy-on-write slows every write while it runs; under load that happens every few
 * seconds. Compacting before a measured phase makes every phase start from the same state
 * instead of sometimes catching a rewrite and sometimes not. Returns the seconds it took.
 */
export async function compactAof(redis: Redis, timeoutMs = 120_000): Promise<number> {
  const started = performance.now();
  const deadline = Date.now() + timeoutMs;
  const waitIdle = async () => {
    while ((await persistence(redis)).busy) {
      if (Date.now() > deadline) throw new Error('an AOF rewrite did not finish in time');
      await sleep(20);
    }
  };
  await waitIdle();
  const before = (await persistence(redis)).rewrites;
  await redis.bgrewriteaof();
  while ((await persistence(redis)).rewrites === before) {
    if (Date.now() > deadline) throw new Error('BGREWRITEAOF did not start in time');
    await sleep(20);
  }
  await waitIdle();
  return (performance.now() - started) / 1000;
}
