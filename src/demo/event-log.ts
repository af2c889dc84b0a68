// A list of things that happened, which the story can wait on: "the first X that matches,
// within this long". It is how the demo waits on a conductor's report or a service event
// without sleeping and hoping, and fails at once, saying why, when the source has ended.
import { StoryError } from './checks.js';

export class EventLog<T> {
  readonly items: T[] = [];
  private endedBecause: string | null = null;
  private readonly listeners = new Set<() => void>();

  push(item: T): void {
    this.items.push(item);
    for (const listener of this.listeners) listener();
  }

  /** No more items will come; waits still pending fail with `why`. */
  end(why: string): void {
    this.endedBecause ??= why;
    for (const listener of this.listeners) listener();
  }

  get ended(): boolean {
    return this.endedBecause !== null;
  }

  /** The first item (already there or still to come) that matches. */
  next(match: (item: T) => boolean, what: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (): void => {
        const found = this.items.find(match);
        if (found === undefined && this.endedBecause === null) return;
        clearTimeout(timer);
        this.listeners.delete(settle);
        if (found !== undefined) resolve(found);
        else reject(new StoryError(`${what} never came: ${this.endedBecause}`));
      };
      const timer = setTimeout(() => {
        this.listeners.delete(settle);
        reject(new StoryError(`${what} did not come within ${timeoutMs} ms`));
      }, timeoutMs);
      this.listeners.add(settle);
      settle();
    });
  }
}
