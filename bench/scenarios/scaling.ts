// Does an acquire get slower as the store grows? The design promises O(depth): the cost of
// an acquire depends on its paths' depth, never on how many leases exist elsewhere or below
// an ancestor. Two comparisons of the same acquire measured twice in the same run:
// - live-leases: 100 vs 100 000 live leases in the store (the orphan benchmark's mix:
//   tenants/t-T/instances/i-I, some with a volume, a shared network or an action), the
//   acquire on tenants/t-(N mod 1000)/instances/m-N, so it shares its ancestors with them.
//   Measured before and after the fill (there is no going back without refilling).
// - below-parent: 0 vs 10 000 live leases below the parent of the path acquired. One
//   store holds 10 000 leases under instances/big/volumes/; the acquire of
//   instances/quiet/x-N (nothing below its parent) and of instances/big/x-N alternate
//   A B B A, half the duration each, so a machine that gets busier or quieter meanwhile
//   weighs on both sides alike.
// Each measured acquire is released right after (untimed), and what a phase leaves
// half-done is released before the next, so the live set stays what the comparison says
// (the table shows the count GET /metrics gave before measuring). The acquires' (201s) p50
// is compared. Redis' own time per script call, and which commands inside the scripts got
// slower, are reported too: they show growth that HTTP overhead would hide.
import { LONG_TTL_MS } from '../lib/bodies.js';
import type { Context, Phase, PhaseOptions } from '../lib/context.js';
import { pooledLatency, rateOf } from '../lib/http-load.js';
import { releaseListed, withJsonClient } from '../lib/json-client.js';
import { SCRIPT_COMMANDS } from '../lib/redis-info.js';
import { formatNumber } from '../lib/stats.js';
import { acquireThenRelease } from './cycle.js';
import { figure, type Figure, type Scenario } from './types.js';

/** Holder of the measured acquires (and of nothing else), so that leftovers can be found. */
const MEASURED_HOLDER = 'bench-measured';

interface Side {
  phases: Phase[];
  /** Active leases (GET /metrics) right before each measured phase. */
  liveBefore: number[];
}

/** One measured phase of acquire+release of `pathOf(n)`; leases left mid-pair are released after. */
async function measureInto(side: Side, ctx: Context, name: string, pathOf: (n: number) => string, how: PhaseOptions = {}): Promise<void> {
  const service = await ctx.service();
  side.liveBefore.push(await ctx.activeLeases());
  const spec = { url: service.url, connections: ctx.options.connections, requests: acquireThenRelease(pathOf, MEASURED_HOLDER), expect: [201, 200] };
  side.phases.push(await ctx.phase(name, spec, service, how));
  await withJsonClient(service.url, (client) => releaseListed(client, `holder=${MEASURED_HOLDER}`));
}

/** Redis commands of a side's phases, summed: µs per request and per call. */
function commandCosts(side: Side): Map<string, { usPerOp: number; usPerCall: number }> {
  const ops = side.phases.reduce((total, p) => total + p.load.responses, 0);
  const sums = new Map<string, { calls: number; usec: number }>();
  for (const phase of side.phases) {
    for (const [name, stat] of Object.entries(phase.usage.commands)) {
      const sum = sums.get(name) ?? { calls: 0, usec: 0 };
      sums.set(name, { calls: sum.calls + stat.calls, usec: sum.usec + stat.usec });
    }
  }
  return new Map([...sums].map(([name, { calls, usec }]) => [name, { usPerOp: usec / ops, usPerCall: usec / calls }]));
}

/** "FCALL 126 -> 277 µs/call; grew most: zadd +12 µs/request (2.1 -> 4.4 µs/call), ..." */
function describeGrowth(small: Side, large: Side): string {
  const a = commandCosts(small);
  const b = commandCosts(large);
  const script = `FCALL ${(a.get('fcall')?.usPerCall ?? Number.NaN).toFixed(0)} -> ${(b.get('fcall')?.usPerCall ?? Number.NaN).toFixed(0)} µs/call`;
  const grown = [...b]
    .filter(([name]) => !SCRIPT_COMMANDS.has(name) && a.has(name))
    .map(([name, cost]) => ({ name, delta: cost.usPerOp - a.get(name)!.usPerOp, from: a.get(name)!.usPerCall, to: cost.usPerCall }))
    .sort((x, y) => y.delta - x.delta)
    .slice(0, 3)
    .map((g) => `${g.name} ${g.delta >= 0 ? '+' : ''}${g.delta.toFixed(1)} µs/request (${g.from.toFixed(1)} -> ${g.to.toFixed(1)} µs/call)`);
  const rewrites = (side: Side) => side.phases.filter((p) => p.usage.aofRewriteDuring).length;
  const aof = rewrites(small) + rewrites(large) > 0 ? `; AOF rewrite inside ${rewrites(small)} vs ${rewrites(large)} phase(s)` : '';
  return `${script} (acquire and release averaged); inside the scripts, grew most: ${grown.join(', ')}${aof}`;
}

function pairsPerS(side: Side): number {
  const seconds = side.phases.reduce((total, p) => total + p.load.durationS, 0);
  return side.phases.reduce((total, p) => total + rateOf(p.load, 200) * p.load.durationS, 0) / seconds;
}

/** p50/p99 of both sides; `p50Small`/`p50Large` are what the target compares. */
function comparison(small: Side, large: Side, smallLabel: string, largeLabel: string): Record<string, Figure> {
  const a = pooledLatency(small.phases.map((p) => p.load), 201);
  const b = pooledLatency(large.phases.map((p) => p.load), 201);
  return {
    p50Small: figure(`acquire p50, ${smallLabel}`, a.p50, 'ms'),
    p50Large: figure(`acquire p50, ${largeLabel}`, b.p50, 'ms'),
    p99Small: figure(`acquire p99, ${smallLabel}`, a.p99, 'ms'),
    p99Large: figure(`acquire p99, ${largeLabel}`, b.p99, 'ms'),
    pairs: figure('acquire+release pairs/s', Number.NaN, 'text', `${formatNumber(pairsPerS(small))} -> ${formatNumber(pairsPerS(large))} pairs/s`),
    redis: figure('Redis time per call', Number.NaN, 'text', describeGrowth(small, large)),
  };
}

const live = (side: Side) => formatNumber(Math.max(...side.liveBefore));

export const liveLeases: Scenario = {
  name: 'live-leases',
  summary: 'acquire p50 with 100 vs 100 000 live leases in the store (acquire + release pairs, acquire timed)',
  async run(ctx: Context) {
    const { liveLeasesSmall, liveLeases: largeCount } = ctx.sizes;
    const pathOf = (n: number) => `tenants/t-${n % 1000}/instances/m-${n}`;
    const small: Side = { phases: [], liveBefore: [] };
    const large: Side = { phases: [], liveBefore: [] };
    await ctx.resetStore();
    await ctx.ensureFiller(liveLeasesSmall);
    await measureInto(small, ctx, `acquire with ${formatNumber(liveLeasesSmall)} live leases`, pathOf);
    ctx.progress(`  filling the store to ${formatNumber(largeCount)} live leases`);
    await ctx.ensureFiller(largeCount);
    await measureInto(large, ctx, `acquire with ${formatNumber(largeCount)} live leases`, pathOf);
    const figures = comparison(small, large, `${live(small)} live`, `${live(large)} live`);
    ctx.progress(`  ${figures.redis!.text}`);
    return { figures, details: { small, large } };
  },
};

export const belowParent: Scenario = {
  name: 'below-parent',
  summary:
    'acquire p50 of instances/quiet/x-N (0 below its parent) vs instances/big/x-N (10 000 live leases below instances/big), ' +
    'same store, alternated A B B A (acquire + release pairs, acquire timed)',
  async run(ctx: Context) {
    const count = ctx.sizes.belowParent;
    const quiet: Side = { phases: [], liveBefore: [] };
    const big: Side = { phases: [], liveBefore: [] };
    const quietPath = (n: number) => `instances/quiet/x-${n}`;
    const bigPath = (n: number) => `instances/big/x-${n}`;
    await ctx.resetStore();
    await ctx.fillOther(`leases below instances/big`, count, (i) => ({
      holder: `conductor-${i % 64}`,
      resources: [{ path: `instances/big/volumes/v-${i}` }],
      ttlMs: LONG_TTL_MS,
    }));
    const half = ctx.options.durationS / 2;
    await measureInto(quiet, ctx, 'A: instances/quiet/x-N, nothing below its parent', quietPath, { durationS: half });
    await measureInto(big, ctx, `B: instances/big/x-N, ${formatNumber(count)} below its parent`, bigPath, { durationS: half, warmup: false });
    await measureInto(big, ctx, 'B again', bigPath, { durationS: half, warmup: false });
    await measureInto(quiet, ctx, 'A again', quietPath, { durationS: half, warmup: false });
    const figures = comparison(quiet, big, '0 below', `${formatNumber(count)} below`);
    ctx.progress(`  ${figures.redis!.text}`);
    return { figures, details: { quiet, big, below: count, liveInStore: Math.max(...big.liveBefore) } };
  },
};
