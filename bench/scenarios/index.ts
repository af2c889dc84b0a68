// Every scenario, in the order they run, and the comparisons between their figures. Order
// matters twice: baselines run first (before the service even starts; etcd among them), and
// live-leases runs right before orphans, which reuses its 100 000 live leases.
import { contended, multiResource, uncontended } from './acquire.js';
import { auth } from './auth.js';
import { cluster } from './cluster.js';
import { cycle } from './cycle.js';
import { etcd } from './etcd.js';
import { httpFloor, redisFloor, redlockDirect } from './floors.js';
import { memory } from './memory.js';
import { orphans } from './orphans.js';
import { holderRenew, renew } from './renew.js';
import { replicaAcks } from './replica-acks.js';
import { belowParent, liveLeases } from './scaling.js';
import type { Scenario } from './types.js';

export const SCENARIOS: Scenario[] = [
  httpFloor,
  redisFloor,
  redlockDirect,
  etcd,
  uncontended,
  cycle,
  replicaAcks,
  cluster,
  auth,
  renew,
  holderRenew,
  contended,
  multiResource,
  belowParent,
  memory,
  liveLeases,
  orphans,
];

export interface Comparison {
  /** [scenario, figure key]: the figure compared... */
  figure: [string, string];
  /** ...divided by this one, measured in the same run (or a fixed budget a scenario reports). */
  baseline: [string, string];
  /** The target for the ratio; none: printed for information. */
  target?: { op: '>=' | '<='; bound: number };
  /**
   * The scenario whose rows show it (default: the figure's own). The table shows one
   * comparison per figure in its own rows, so a figure compared twice (cycle's pairs, against
   * redlock and against etcd) shows the second under the baseline's scenario.
   */
  under?: string;
}

export const COMPARISONS: Comparison[] = [
  { figure: ['uncontended', 'rps'], baseline: ['http-floor', 'rps'], target: { op: '>=', bound: 0.5 } },
  { figure: ['uncontended', 'p50'], baseline: ['http-floor', 'p50'] },
  { figure: ['uncontended', 'p99'], baseline: ['http-floor', 'p99'], target: { op: '<=', bound: 2 } },
  { figure: ['cycle', 'pairs'], baseline: ['redlock', 'pairs'], target: { op: '>=', bound: 0.35 } },
  // etcd 3.4 beside us, same load generator and connections; unjudged (n/a) when etcd is not installed.
  { figure: ['cycle', 'pairs'], baseline: ['etcd', 'pairs'], target: { op: '>=', bound: 5 }, under: 'etcd' },
  // What waiting for one replica (REDIS_MIN_REPLICAS=1) costs against not waiting (0), same topology, same run.
  { figure: ['replica-acks', 'pairsOne'], baseline: ['replica-acks', 'pairsNone'], target: { op: '>=', bound: 0.5 } },
  { figure: ['replica-acks', 'p50One'], baseline: ['replica-acks', 'p50None'] },
  { figure: ['replica-acks', 'p99One'], baseline: ['replica-acks', 'p99None'] },
  { figure: ['replica-acks', 'releaseP50One'], baseline: ['replica-acks', 'releaseP50None'] },
  // A Redis Cluster of 3 primaries against 1, the same pairs over 64 namespaces, same run: a pair
  // must not cost Redis more when the namespaces are spread over shards, and they must
  // spread (the smallest share of the script calls x 3, against 1 for perfectly even). pairs/s is
  // for information: on a small machine the load generator and the service cap it, not Redis.
  { figure: ['cluster', 'redisUsThree'], baseline: ['cluster', 'redisUsOne'], target: { op: '<=', bound: 1.3 } },
  { figure: ['cluster', 'evenness'], baseline: ['cluster', 'evenIdeal'], target: { op: '>=', bound: 0.8 } },
  { figure: ['cluster', 'pairsThree'], baseline: ['cluster', 'pairsOne'] },
  { figure: ['cluster', 'p50Three'], baseline: ['cluster', 'p50One'] },
  // The reaper sweeps every namespace: publication over 64 of them, on 3 shards, within the orphans scenario's budget.
  { figure: ['cluster', 'orphanP99'], baseline: ['cluster', 'orphanBudget'], target: { op: '<=', bound: 1 } },
  // What access control costs against none, same Redis, same run: a token lookup (one HGET) per
  // request by default, none with AUTH_CACHE_MS.
  { figure: ['auth', 'pairsOn'], baseline: ['auth', 'pairsOff'], target: { op: '>=', bound: 0.6 } },
  { figure: ['auth', 'pairsCached'], baseline: ['auth', 'pairsOff'], target: { op: '>=', bound: 0.8 } },
  { figure: ['auth', 'p50On'], baseline: ['auth', 'p50Off'] },
  { figure: ['auth', 'p50Cached'], baseline: ['auth', 'p50Off'] },
  { figure: ['renew', 'rps'], baseline: ['http-floor', 'rps'] },
  { figure: ['holder-renew', 'leases'], baseline: ['renew', 'rps'] },
  { figure: ['contended', 'rps'], baseline: ['uncontended', 'rps'] },
  { figure: ['multi-resource', 'rps'], baseline: ['uncontended', 'rps'] },
  { figure: ['below-parent', 'p50Large'], baseline: ['below-parent', 'p50Small'], target: { op: '<=', bound: 1.2 } },
  { figure: ['memory', 'plain'], baseline: ['memory', 'budget'], target: { op: '<=', bound: 1 } },
  { figure: ['memory', 'rich'], baseline: ['memory', 'plain'] },
  { figure: ['memory', 'requestId'], baseline: ['memory', 'plain'] },
  { figure: ['live-leases', 'p50Large'], baseline: ['live-leases', 'p50Small'], target: { op: '<=', bound: 1.2 } },
  { figure: ['orphans', 'p99'], baseline: ['orphans', 'budget'], target: { op: '<=', bound: 1 } },
];

/**
 * The scenarios to run for a selection, in run order: the picked ones and, transitively,
 * the baselines their targets need.
 */
export function resolveSelection(names: string[]): Scenario[] {
  const byName = new Map(SCENARIOS.map((s) => [s.name, s]));
  const wanted = new Set<string>();
  const add = (name: string) => {
    const scenario = byName.get(name);
    if (!scenario) throw new Error(`no scenario "${name}"; there are: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    if (wanted.has(name)) return;
    wanted.add(name);
    for (const need of scenario.needs ?? []) add(need);
  };
  for (const name of names) add(name);
  return SCENARIOS.filter((s) => wanted.has(s.name));
}
