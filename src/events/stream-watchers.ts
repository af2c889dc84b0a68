// One StreamWatcher per namespace that has event-stream clients on this replica, started by
// its first client and stopped when its last one leaves. Each is one blocking connection,
// so their number is bounded by the replica's open streams (EVENT_STREAMS_MAX).
import type { RedisClient } from '../redis/connection.js';
import { StreamWatcher } from './stream-watcher.js';

interface Watched {
  watcher: StreamWatcher;
  clients: number;
}

export class StreamWatchers {
  private readonly watched = new Map<string, Watched>();

  constructor(
    private readonly redis: RedisClient,
    /** The events stream's key of a namespace. */
    private readonly streamKeyOf: (namespace: string) => string,
  ) {}

  /** Calls `onGrowth` whenever the namespace's stream grows; returns the function that stops it. */
  subscribe(namespace: string, onGrowth: () => void): () => void {
    let entry = this.watched.get(namespace);
    if (!entry) {
      entry = { watcher: new StreamWatcher(this.redis, this.streamKeyOf(namespace)), clients: 0 };
      this.watched.set(namespace, entry);
      // Subscribed before it starts: its first read signals growth, so nothing is missed.
      const unsubscribe = entry.watcher.subscribe(onGrowth);
      entry.watcher.start();
      entry.clients++;
      return this.leaver(namespace, entry, unsubscribe);
    }
    entry.clients++;
    return this.leaver(namespace, entry, entry.watcher.subscribe(onGrowth));
  }

  async stop(): Promise<void> {
    const all = [...this.watched.values()];
    this.watched.clear();
    await Promise.all(all.map(({ watcher }) => watcher.stop()));
  }

  private leaver(namespace: string, entry: Watched, unsubscribe: () => void): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      unsubscribe();
      if (--entry.clients > 0) return;
      if (this.watched.get(namespace) === entry) this.watched.delete(namespace);
      void entry.watcher.stop();
    };
  }
}
