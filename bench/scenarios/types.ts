// What a scenario is and what it reports. A scenario measures one thing and returns named
// figures (absolute numbers); the targets (bench/scenarios/index.ts) divide one figure by
// another measured in the same run, so a slower machine moves both sides of a ratio.
import type { Context } from '../lib/context.js';

export type Unit = 'req/s' | 'ops/s' | 'pairs/s' | 'leases/s' | 'ms' | 'B' | '%' | 'count' | 'text';

export interface Figure {
  label: string;
  value: number;
  unit: Unit;
  /** For unit 'text' (and as a remark beside a number). */
  text?: string;
}

export interface ScenarioResult {
  figures: Record<string, Figure>;
  /** Raw measurements for the JSON record (phases, CPU, Redis commands, sizes). */
  details: Record<string, unknown>;
}

export interface Scenario {
  name: string;
  /** One line: what it measures and how. */
  summary: string;
  /** Scenarios whose figures this one's targets divide by; they run too when this one is picked. */
  needs?: string[];
  run(ctx: Context): Promise<ScenarioResult>;
}

export const figure = (label: string, value: number, unit: Unit, text?: string): Figure => ({ label, value, unit, ...(text === undefined ? {} : { text }) });
