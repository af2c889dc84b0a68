// A scenario that measured what it could but must still fail the run (a request answered
// 5xx, say) throws this: run.ts records the scenario as failed and keeps its figures and
// details, so the numbers that were measured still reach the table and the JSON record.
import type { ScenarioResult } from '../scenarios/types.js';

export class ScenarioFailure extends Error {
  constructor(
    message: string,
    readonly result: ScenarioResult,
  ) {
    super(message);
    this.name = 'ScenarioFailure';
  }
}
