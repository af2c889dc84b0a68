// Where the time went during a phase: CPU of the server child, of Redis and of this process
// (the load generator), per operation, and the Redis commands run per operation. On a
// 2-core box these three share the CPU, so "CPU per request" explains a throughput better
// than the throughput alone does, and it is what tuning changes.
import type { Redis } from 'ioredis';
import { commandStats, commandStatsDelta, persistence, redisCpuSeconds, SCRIPT_COMMANDS, type CommandStat } from './redis-info.js';
import type { ChildServer } from './service-process.js';

export interface UsageSnapshot {
  at: number;
  redisCpu: number;
  serverCpu: number;
  clientCpu: number;
  commands: Map<string, CommandStat>;
  aofRewrites: number;
  aofBusy: boolean;
}

export async function takeUsage(probe: Redis, server: ChildServer | null): Promise<UsageSnapshot> {
  const cpu = process.cpuUsage();
  return {
    at: performance.now(),
    redisCpu: await redisCpuSeconds(probe),
    serverCpu: server ? server.cpuSeconds() : Number.NaN,
    clientCpu: (cpu.user + cpu.system) / 1e6,
    commands: await commandStats(probe),
    ...(await persistence(probe).then((p) => ({ aofRewrites: p.rewrites, aofBusy: p.busy }))),
  };
}

export interface Usage {
  seconds: number;
  /** Share of one core each used over the phase. */
  cores: { server: number; redis: number; client: number };
  /** CPU µs per operation (an HTTP response, a Redis call, a lock pair). */
  perOpUs: { server: number; redis: number; client: number };
  /** Redis commands in the phase (scripts' inner commands under their own names), with calls and µs per operation. */
  commands: Record<string, CommandStat & { callsPerOp: number; usPerCall: number }>;
  /** Redis forked to rewrite its append-only file during the phase (its copy-on-write slows writes meanwhile). */
  aofRewriteDuring: boolean;
}

export function usageBetween(before: UsageSnapshot, after: UsageSnapshot, ops: number): Usage {
  const seconds = (after.at - before.at) / 1000;
  const delta = {
    server: after.serverCpu - before.serverCpu,
    redis: after.redisCpu - before.redisCpu,
    client: after.clientCpu - before.clientCpu,
  };
  const perOp = (cpuSeconds: number) => (ops > 0 ? (cpuSeconds * 1e6) / ops : Number.NaN);
  const commands: Usage['commands'] = {};
  for (const [name, stat] of Object.entries(commandStatsDelta(before.commands, after.commands))) {
    if (name === 'info') continue; // our own probes
    commands[name] = { ...stat, callsPerOp: ops > 0 ? stat.calls / ops : Number.NaN, usPerCall: stat.usec / stat.calls };
  }
  return {
    seconds,
    cores: { server: delta.server / seconds, redis: delta.redis / seconds, client: delta.client / seconds },
    perOpUs: { server: perOp(delta.server), redis: perOp(delta.redis), client: perOp(delta.client) },
    commands,
    aofRewriteDuring: after.aofRewrites > before.aofRewrites || before.aofBusy || after.aofBusy,
  };
}


/** "service 210 µs, redis 160 µs, client 90 µs CPU/op; fcall 1.0/op at 150 µs" */
export function describeUsage(usage: Usage, serverName = 'service'): string {
  const parts: string[] = [];
  if (Number.isFinite(usage.perOpUs.server)) parts.push(`${serverName} ${usage.perOpUs.server.toFixed(0)}`);
  parts.push(`redis ${usage.perOpUs.redis.toFixed(0)}`, `client ${usage.perOpUs.client.toFixed(0)} µs CPU/op`);
  const scripts = Object.entries(usage.commands).filter(([name, s]) => SCRIPT_COMMANDS.has(name) && s.callsPerOp >= 0.01);
  const script = scripts.map(([name, s]) => `${name} ${s.callsPerOp.toFixed(2)}/op at ${s.usPerCall.toFixed(0)} µs`).join(', ');
  const rewrite = usage.aofRewriteDuring ? '; an AOF rewrite ran meanwhile' : '';
  return `${script ? `${parts.join(', ')}; ${script}` : parts.join(', ')}${rewrite}`;
}
