// The demo's output: what happened, when (ms since the demo started, on the wall clock the
// conductor processes and Redis share with it), and who did it, one line each:
//
//   +  1044 ms  conductor-a     201 acquired instances/i-42 for resize (token 1795577464126883, attempt 1)
//
// Lines are printed when the story gets to them, with the time they happened: a
// conductor's report may reach the demo a little after the fact, and the story reads its
// reports in story order rather than arrival order.
import { paint, type Tone } from './colour.js';
import { wallClock } from './protocol.js';

/** How a line reads: a refusal the story expects is `refused`, not an error. */
export type Mood = 'plain' | 'granted' | 'refused' | 'violent';

const MOODS: Record<Mood, Tone[]> = { plain: [], granted: ['green'], refused: ['red'], violent: ['red', 'bold'] };
const ACTOR_TONES: Tone[] = ['cyan', 'magenta', 'blue', 'yellow', 'green', 'bold'];
const WHO_WIDTH = 15;

export class Timeline {
  readonly startedAt = wallClock();
  private readonly actorTones = new Map<string, Tone>();
  /** The act being played, for a failure to say where the story broke. */
  current = 'setting up';

  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  /** Milliseconds since the demo started. */
  since(at: number): number {
    return at - this.startedAt;
  }

  /** Something `who` did or saw at `at` (a wallClock() reading, or epoch ms from Redis). */
  event(at: number, who: string, text: string, mood: Mood = 'plain'): void {
    const time = `+${Math.round(this.since(at)).toString().padStart(6)} ms`;
    this.write(`${paint(time, 'dim')}  ${paint(who.padEnd(WHO_WIDTH), this.toneOf(who))} ${paint(text, ...MOODS[mood])}`);
  }

  /** A remark on the lines above it (no time of its own). */
  note(text: string): void {
    this.write(paint(`${' '.repeat(11 + WHO_WIDTH)} ${text}`, 'dim'));
  }

  /** Gives these actors their colours in this order, so a run's colours do not depend on who spoke first. */
  introduce(...actors: string[]): void {
    for (const actor of actors) this.toneOf(actor);
  }

  /** Starts an act: a heading, and where a failure from now on happened. */
  act(title: string, number?: number): void {
    this.current = number === undefined ? title : `act ${number} (${title})`;
    this.write('');
    this.write(paint(number === undefined ? title : `${number}. ${title}`, 'bold'));
  }

  say(text: string, ...tones: Tone[]): void {
    this.write(paint(text, ...tones));
  }

  private toneOf(who: string): Tone {
    if (who === 'demo') return 'dim';
    let tone = this.actorTones.get(who);
    if (!tone) this.actorTones.set(who, (tone = ACTOR_TONES[this.actorTones.size % ACTOR_TONES.length]!));
    return tone;
  }
}

/** Sub-millisecond times, where the story is about them (the race). */
export function preciseMs(ms: number): string {
  return `${ms.toFixed(3)} ms`;
}
