// A closed-loop driver for the baselines that are not HTTP (a Redis round trip, a redlock
// acquire + release): `concurrency` callers, each starting its next operation when the last
// one finished, exactly the shape autocannon gives the HTTP phases with as many connections.
// The first `warmupS` are run and discarded, then `durationS` are measured: an operation
// counts when it finishes inside the measured window.
import { latencySummary, type LatencySummary } from './stats.js';

export interface ClosedLoopOptions {
  concurrency: number;
  warmupS: number;
  durationS: number;
  op: () => Promise<unknown>;
}

export interface ClosedLoopResult {
  durationS: number;
  ops: number;
  opsPerS: number;
  latency: LatencySummary;
  errors: number;
  firstError?: string;
}

export async function runClosedLoop({ concurrency, warmupS, durationS, op }: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const started = performance.now();
  const measureFrom = started + warmupS * 1000;
  const measureTo = measureFrom + durationS * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;

  const worker = async () => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= measureTo) return;
      try {
        await op();
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
        continue;
      }
      const t1 = performance.now();
      if (t1 >= measureFrom && t1 < measureTo) latencies.push(t1 - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return {
    durationS,
    ops: latencies.length,
    opsPerS: latencies.length / durationS,
    latency: latencySummary(latencies),
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  };
}
