// What the side-by-side scenarios (replica-acks, auth) share: services measured in turn, in
// rounds such as A B B A, so that a machine that gets busier or quieter meanwhile weighs on
// every side alike. Each side is warmed up first, then measured twice a round.
import type { Context } from './context.js';
import { checkLoad, runLoad, type LoadSpec } from './http-load.js';

/** Warms every side up for --warmup seconds, one after the other. */
export async function warmUpSides(ctx: Context, sides: readonly { label: string; spec: LoadSpec }[]): Promise<void> {
  for (const side of sides) {
    ctx.progress(`  warm-up ${side.label}: ${ctx.options.warmupS} s at ${side.spec.connections} connections`);
    checkLoad(`${side.label} (warm-up)`, side.spec, await runLoad(side.spec, { durationS: ctx.options.warmupS }));
  }
}

/**
 * How many rounds, and how long each measured phase: each side is measured --duration
 * seconds in all, twice a round. Smoke: one round of quarter phases (each side measured
 * half of --duration); the numbers mean little there.
 */
export function roundsOf(ctx: Context, fullRounds: number): { rounds: number; phaseS: number } {
  const rounds = ctx.options.smoke ? 1 : fullRounds;
  return { rounds, phaseS: ctx.options.durationS / (ctx.options.smoke ? 4 : 2 * rounds) };
}
