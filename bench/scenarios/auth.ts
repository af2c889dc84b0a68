// What access control (AUTH=on) costs against none, measured side by side in the same run.
//
// Three lease services in child processes, started one after the other the same way as the
// bench's own (`node --import tsx src/main.ts`, LOG_LEVEL=warn) on its private Redis, each with
// a KEY_PREFIX of its own: one without access control (AUTH unset), one with AUTH=on and
// the default AUTH_CACHE_MS=0 (every request looks its service token up in Redis, one HGET,
// before its script), one with AUTH=on and AUTH_CACHE_MS=60000 (a checked token is
// remembered, so a request costs no lookup). Each side gets an operator service token for
// every namespace, made in its own prefix as `lease tokens create` makes one, and sends it as
// `Authorization: Bearer <token>` on every request, the side without access control too (it
// ignores the header), so the three read and parse the same bytes and differ only in what the
// service does with them.
//
// All three run the cycle scenario's workload, acquire + release pairs on new paths from the
// run's connections, warmed up each, then measured alternately in rounds of A B C C B A
// (replica-acks' A B B A with a third side: two rounds, a quarter of --duration per phase;
// smoke: one round, same), so a machine that gets busier or quieter meanwhile weighs on every
// side alike. The ratios of each round are printed too: how far apart they are tells how noisy
// the machine was. Each measured phase starts right after an AOF rewrite (Context.compactAof).
//
// The table gives pairs/s, acquire p50/p99 and HGET calls per request (Redis' commandstats)
// of each side, and the ratios on / off (COMPARISONS in index.ts); the targets are ratios,
// never assertions. A side that answers anything but 201/200 fails the scenario, and so does
// a side whose HGETs say it is not configured as described (the figures would not mean what
// they say): any HGET while the side without access control is measured (the idle services
// send none), fewer than 0.9 per request on the uncached side (one each, in fact), or more
// than one lookup and 0.1 per request on the cached side.
//
// The services are this scenario's alone (started and stopped here, whatever happens); the
// shared service child is left alone. They run without --profile's CPU profiler.
import { ServiceTokens, tokenKeys } from '../../src/auth/service-tokens.js';
import type { Context, Phase } from '../lib/context.js';
import { checkLoad, pooledLatency, rateOf, runLoad, type LoadSpec } from '../lib/http-load.js';
import { startChildServer, type ChildServer } from '../lib/service-process.js';
import { roundsOf, warmUpSides } from '../lib/side-by-side.js';
import { formatMs, formatNumber } from '../lib/stats.js';
import { describeUsage, takeUsage, usageBetween, type Usage } from '../lib/usage.js';
import { acquireThenRelease } from './cycle.js';
import { figure, type Figure, type Scenario } from './types.js';

/** A B C C B A rounds of a full run (smoke: one); each side is measured --duration seconds in all (smoke: half). */
const ROUNDS = 2;
/** AUTH_CACHE_MS of the cached side: longer than the scenario runs, so each token is looked up once. */
const CACHE_MS = 60_000;

interface SideConfig {
  /** "AUTH=on, cache 60 s": short, for the table's rows. */
  label: string;
  /** Figure keys end with it: pairsOff, pairsOn, pairsCached. */
  suffix: 'Off' | 'On' | 'Cached';
  /** The service's variables beyond the bench's own; AUTH '' is unset even if this environment sets it. */
  env: { AUTH: '' | 'on'; AUTH_CACHE_MS: string };
}

interface Side extends SideConfig {
  service: ChildServer;
  spec: LoadSpec;
  phases: Phase[];
}

const SIDES: SideConfig[] = [
  { label: 'AUTH off', suffix: 'Off', env: { AUTH: '', AUTH_CACHE_MS: '0' } },
  { label: 'AUTH=on', suffix: 'On', env: { AUTH: 'on', AUTH_CACHE_MS: '0' } },
  { label: `AUTH=on, cache ${CACHE_MS / 1000} s`, suffix: 'Cached', env: { AUTH: 'on', AUTH_CACHE_MS: String(CACHE_MS) } },
];

const keyPrefixOf = (side: SideConfig) => `bench-auth-${side.suffix.toLowerCase()}`;

/** Starts a lease service on the bench's Redis with the side's settings and key prefix. */
function startAuthService(ctx: Context, side: SideConfig): Promise<ChildServer> {
  return startChildServer({
    name: `lease service (${side.label})`,
    script: 'src/main.ts',
    env: { ...ctx.serverEnv, REDIS_URL: ctx.redis.url, KEY_PREFIX: keyPrefixOf(side), ...side.env, LOG_LEVEL: 'warn' },
    readyPath: '/readyz',
  });
}

/** HGET calls per response in a phase (Redis' commandstats; scripts' inner commands count too). */
function hgetsPerOp(usage: Usage): number {
  return usage.commands.hget?.callsPerOp ?? 0;
}

/** Why a phase's HGETs say the side is not configured as this scenario says; undefined when they fit. */
function misconfigured(side: SideConfig, usage: Usage): string | undefined {
  const calls = usage.commands.hget?.calls ?? 0;
  const perOp = hgetsPerOp(usage);
  // Exactly one per request uncached (a little more: requests in flight when the phase ends
  // are not counted); none cached once warm, but one for a token whose memory ran out.
  if (side.suffix === 'Off' && calls > 0) return `${calls} HGET calls while it was measured (access control looks tokens up; it should be off)`;
  if (side.suffix === 'On' && perOp < 0.9) return `${perOp.toFixed(2)} HGET calls per request (each should look its token up)`;
  if (side.suffix === 'Cached' && calls > 1 && perOp > 0.1) return `${perOp.toFixed(2)} HGET calls per request (its tokens should be remembered)`;
  return undefined;
}

function pairsPerS(phases: Phase[]): number {
  const seconds = phases.reduce((total, p) => total + p.load.durationS, 0);
  return phases.reduce((total, p) => total + rateOf(p.load, 200) * p.load.durationS, 0) / seconds;
}

/** A per-response average over a side's phases, weighted by their responses. */
function pooledPerOp(side: Side, of: (p: Phase) => number): number {
  const responses = side.phases.reduce((total, p) => total + p.load.responses, 0);
  return side.phases.reduce((total, p) => total + of(p) * p.load.responses, 0) / responses;
}

function sideFigures(side: Side): Record<string, Figure> {
  const loads = side.phases.map((p) => p.load);
  const acquire = pooledLatency(loads, 201);
  const release = pooledLatency(loads, 200);
  const hgets = pooledPerOp(side, (p) => hgetsPerOp(p.usage));
  const us = (of: (p: Phase) => number) => pooledPerOp(side, of).toFixed(0);
  const cpu = `service ${us((p) => p.usage.perOpUs.server)}, redis ${us((p) => p.usage.perOpUs.redis)}, client ${us((p) => p.usage.perOpUs.client)} µs CPU/op`;
  const s = side.suffix;
  return {
    [`pairs${s}`]: figure(`acquire+release pairs/s, ${side.label}`, pairsPerS(side.phases), 'pairs/s'),
    [`p50${s}`]: figure(`acquire p50, ${side.label}`, acquire.p50, 'ms'),
    [`p99${s}`]: figure(`acquire p99, ${side.label}`, acquire.p99, 'ms'),
    [`releaseP50${s}`]: figure(`release p50, ${side.label}`, release.p50, 'ms'),
    [`hget${s}`]: figure(`HGET calls per request, ${side.label}`, hgets, 'text', `${hgets.toFixed(2)}/op`),
    [`cpu${s}`]: figure(`CPU per request, ${side.label}`, Number.NaN, 'text', cpu),
  };
}

export const auth: Scenario = {
  name: 'auth',
  summary:
    'acquire + release pairs (instances/au-N, new paths) through three services on the private Redis: ' +
    `AUTH off, AUTH=on (a token lookup per request), AUTH=on with AUTH_CACHE_MS=${CACHE_MS}; bearer token on every request, rounds of A B C C B A`,
  async run(ctx: Context) {
    const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    // Their leases' records and events stay behind in their own prefixes, with the tokens.
    ctx.store.extra = true;
    const tokens = await Promise.all(
      SIDES.map(async (side) => (await new ServiceTokens(ctx.probe, tokenKeys(keyPrefixOf(side))).create({ role: 'operator', namespaces: '*' }, { description: 'bench auth' })).token),
    );
    ctx.progress(`  starting three lease services (AUTH unset; AUTH=on; AUTH=on, AUTH_CACHE_MS=${CACHE_MS})`);
    let t0 = performance.now();
    const services: ChildServer[] = [];
    try {
      // One after the other: three starting at once on a small, busy machine share its cores
      // and each can miss the start timeout (seen at load 20 on 2 cores); alone, none does.
      for (const side of SIDES) services.push(await startAuthService(ctx, side));
      const sides: Side[] = SIDES.map((config, i) => ({
        ...config,
        service: services[i]!,
        spec: {
          url: services[i]!.url,
          connections: ctx.options.connections,
          requests: acquireThenRelease((n) => `instances/au-${n}`),
          expect: [201, 200],
          headers: { authorization: `Bearer ${tokens[i]!}` },
        },
        phases: [],
      }));
      const [off, on, cached] = sides as [Side, Side, Side];
      ctx.progress(`    ready in ${since(t0)}`);

      await warmUpSides(ctx, sides);
      const { rounds, phaseS } = roundsOf(ctx, ROUNDS);
      const measure = async (side: Side, name: string) => {
        ctx.progress(`  ${name} ${side.label}: ${phaseS} s at ${side.spec.connections} connections`);
        await ctx.compactAof();
        const before = await takeUsage(ctx.probe, side.service);
        const load = await runLoad(side.spec, { durationS: phaseS });
        const usage = usageBetween(before, await takeUsage(ctx.probe, side.service), load.responses);
        checkLoad(`${name} ${side.label}`, side.spec, load);
        const wrong = misconfigured(side, usage);
        if (wrong) throw new Error(`${name} ${side.label}: ${wrong}; the service is not configured as this scenario says`);
        const acquire = pooledLatency([load], 201);
        ctx.progress(
          `    ${formatNumber(rateOf(load, 200))} pairs/s, acquire p50 ${formatMs(acquire.p50)} p99 ${formatMs(acquire.p99)}; ` +
            `${describeUsage(usage)}; hget ${hgetsPerOp(usage).toFixed(2)}/op`,
        );
        side.phases.push({ load, usage });
      };
      /** pairs/s of each AUTH=on side / AUTH off in each round: how much the ratios moved with the machine's noise. */
      const roundRatios: { on: number; cached: number }[] = [];
      for (let round = 1; round <= rounds; round++) {
        const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
        await measure(off, `A${tag}`);
        await measure(on, `B${tag}`);
        await measure(cached, `C${tag}`);
        await measure(cached, `C again${tag}`);
        await measure(on, `B again${tag}`);
        await measure(off, `A again${tag}`);
        const last = (side: Side) => pairsPerS(side.phases.slice(-2));
        roundRatios.push({ on: last(on) / last(off), cached: last(cached) / last(off) });
      }

      const figures: Record<string, Figure> = {
        ...sideFigures(off),
        ...sideFigures(on),
        ...sideFigures(cached),
        rounds: figure(
          'pairs/s ratio on / off per A B C C B A round',
          Number.NaN,
          'text',
          roundRatios.map((r) => `uncached ${r.on.toFixed(2)}, cached ${r.cached.toFixed(2)}`).join('; '),
        ),
      };
      const ratio = (key: string, suffix: string) => (figures[`${key}${suffix}`]!.value / figures[`${key}Off`]!.value).toFixed(2);
      ctx.progress(
        `  on / off: pairs/s ${ratio('pairs', 'On')} uncached, ${ratio('pairs', 'Cached')} cached; ` +
          `acquire p50 ${ratio('p50', 'On')} uncached, ${ratio('p50', 'Cached')} cached`,
      );
      return {
        figures,
        details: {
          roundRatios,
          ...Object.fromEntries(sides.map((side) => [side.suffix.toLowerCase(), { env: side.env, keyPrefix: keyPrefixOf(side), phases: side.phases }])),
        },
      };
    } finally {
      t0 = performance.now();
      await Promise.all(services.map((service) => service.stop()));
      ctx.progress(`  stopped the services in ${since(t0)}`);
    }
  },
};
