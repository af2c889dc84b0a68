// What the cluster scenario (bench/scenarios/cluster.ts) needs beyond the other scenarios'
// tools: acquire + release pairs spread over namespaces, which namespace lands on which
// primary, and each primary's own accounting.
import type { Redis } from 'ioredis';
import { namespaceKeyPrefix } from '../../src/namespaces/names.js';
import { keySlot, SLOTS } from '../../scripts/lib/cluster-topology.js';
import { nextSerial, singleAcquireBody } from './bodies.js';
import type { LoadRequest } from './http-load.js';
import type { JsonClient } from './json-client.js';
import type { LeaseApi } from './orphans.js';
import { commandStats, persistence, redisCpuSeconds, SCRIPT_COMMANDS } from './redis-info.js';

// ---------------------------------------------------------------------------------------
// Which primary serves which namespace

/** The primary's port of every slot, from one node's CLUSTER SLOTS (the service's client asks the same). */
export async function slotOwners(probe: Redis): Promise<(slot: number) => number> {
  const ranges = ((await probe.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][]).map(
    ([first, last, [, port]]) => ({ first, last, port }),
  );
  return (slot) => {
    const range = ranges.find((r) => r.first <= slot && slot <= r.last);
    if (!range) throw new Error(`CLUSTER SLOTS names no primary for slot ${slot}`);
    return range.port;
  };
}

/** The slot of a namespace's keys: they share the hash tag {KEY_PREFIX/namespace}. */
export function namespaceSlot(keyPrefix: string, namespace: string): number {
  return keySlot(namespaceKeyPrefix(keyPrefix, namespace));
}

/**
 * The slot ranges `redis-cli --cluster create` gives `primaries` primaries (redis-cli.c,
 * clusterManagerCommandCreate): equal shares, each ending at the rounded running total.
 */
function createdSlotRanges(primaries: number): [number, number][] {
  const perPrimary = SLOTS / primaries;
  const ranges: [number, number][] = [];
  let first = 0;
  for (let i = 0; i < primaries; i++) {
    const last = i === primaries - 1 ? SLOTS - 1 : Math.max(first, Math.round((i + 1) * perPrimary - 1));
    ranges.push([first, last]);
    first = last + 1;
  }
  return ranges;
}

/** How many of `namespaces` each of `primaries` primaries would serve in a cluster made by redis-cli. */
export function namespacesPerPrimary(keyPrefix: string, namespaces: readonly string[], primaries: number): number[] {
  const ranges = createdSlotRanges(primaries);
  const counts = new Array<number>(primaries).fill(0);
  for (const namespace of namespaces) {
    const slot = namespaceSlot(keyPrefix, namespace);
    counts[ranges.findIndex(([first, last]) => first <= slot && slot <= last)]!++;
  }
  return counts;
}

// ---------------------------------------------------------------------------------------
// The workload

export interface SpreadPairs {
  requests: LoadRequest[];
  /** Releases answered 200 per namespace since the last reset(): the pairs each namespace served. */
  released: Map<string, number>;
  reset(): void;
}

interface Holding {
  namespace?: string;
  leaseId?: string;
}

/**
 * cycle.ts's acquireThenRelease over `namespaces`: each pair acquires `pathOf(n)` (n new
 * every time) in namespace n mod their number, so every namespace gets the same share, then
 * releases that lease in the same namespace. The release is skipped (the sequence restarts)
 * when the acquire did not answer 201; the phase then fails on that status anyway.
 */
export function pairsAcross(namespaces: readonly string[], pathOf: (n: number) => string): SpreadPairs {
  const released = new Map<string, number>();
  return {
    released,
    reset: () => released.clear(),
    requests: [
      {
        method: 'POST',
        setupRequest: (request, context: Holding) => {
          const n = nextSerial();
          context.namespace = namespaces[n % namespaces.length]!;
          return { ...request, path: `/v1/namespaces/${context.namespace}/leases`, body: singleAcquireBody(pathOf(n), n) };
        },
        onResponse: (status, body, context: Holding) => {
          context.leaseId = status === 201 ? (JSON.parse(body) as { id: string }).id : undefined;
        },
      },
      {
        method: 'POST',
        body: '{}',
        setupRequest: ((request: LoadRequest, context: Holding) =>
          context.leaseId === undefined ? undefined : { ...request, path: `/v1/namespaces/${context.namespace}/leases/${context.leaseId}/release` }) as never,
        onResponse: (status, _body, context: Holding) => {
          if (status === 200 && context.namespace !== undefined) released.set(context.namespace, (released.get(context.namespace) ?? 0) + 1);
        },
      },
    ],
  };
}

/**
 * bench/lib/orphans.ts's LeaseApi over `namespaces`: acquire k goes to namespace k mod their
 * number (so acquireExpiringLeases spreads its leases evenly), and a lease is renewed or
 * released in the namespace it was acquired in. `namespaceOf` maps lease id -> namespace.
 */
export function namespacedLeaseApi(client: JsonClient, namespaces: readonly string[]): LeaseApi & { namespaceOf: Map<string, string> } {
  const namespaceOf = new Map<string, string>();
  let next = 0;
  const base = (id: string) => {
    const namespace = namespaceOf.get(id);
    if (namespace === undefined) throw new Error(`lease ${id} was not acquired through this api`);
    return `/v1/namespaces/${namespace}/leases/${id}`;
  };
  return {
    namespaceOf,
    async acquire(body) {
      const namespace = namespaces[next++ % namespaces.length]!;
      const lease = await client.expect<{ id: string; expiresAt: string }>(201, 'POST', `/v1/namespaces/${namespace}/leases`, body);
      namespaceOf.set(lease.id, namespace);
      return { id: lease.id, expiresAt: Date.parse(lease.expiresAt) };
    },
    async renew(id) {
      await client.expect(200, 'POST', `${base(id)}/renew`, {});
    },
    async release(id) {
      await client.expect(200, 'POST', `${base(id)}/release`, {});
    },
  };
}

// ---------------------------------------------------------------------------------------
// One primary's accounting

export interface ShardReading {
  /** CPU seconds (user + system, all its threads) since it started. */
  cpuS: number;
  /** Script calls since it started: every state change of the service is one script (or Redis function) call. */
  scriptCalls: number;
  /** µs spent running them (commandstats usec): the CPU a pair costs beyond reading, parsing and answering it. */
  scriptUs: number;
  aofRewrites: number;
  /** A rewrite (or a save) runs or waits to run. */
  aofBusy: boolean;
}


export async function readShard(probe: Redis): Promise<ShardReading> {
  const [cpuS, stats, persisted] = await Promise.all([redisCpuSeconds(probe), commandStats(probe), persistence(probe)]);
  const total = (of: 'calls' | 'usec') => [...SCRIPT_COMMANDS].reduce((sum, command) => sum + (stats.get(command)?.[of] ?? 0), 0);
  return { cpuS, scriptCalls: total('calls'), scriptUs: total('usec'), aofRewrites: persisted.rewrites, aofBusy: persisted.busy };
}
