// Tells the replica's event-stream clients when the lifecycle stream has grown. One
// blocking XREAD per replica, on its own connection, from start to stop; the clients then
// read what is new from their own cursors. Its own cursor never jumps ahead, so every entry
// appended after start() is signalled, and a client that subscribes before its first read
// misses nothing.
import { EventEmitter } from 'node:events';
import { duplicateClient, type RedisClient } from '../redis/connection.js';

/** How long one XREAD blocks before it is sent again (it also notices stop() then). */
const BLOCK_MS = 5000;

export class StreamWatcher {
  private readonly events = new EventEmitter();
  private connection: RedisClient | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly streamKey: string,
  ) {
    this.events.setMaxListeners(0);
  }

  start(): void {
    this.loop ??= this.watch();
  }

  /** Calls `onGrowth` whenever entries are appended; returns the function that stops it. */
  subscribe(onGrowth: () => void): () => void {
    this.events.on('growth', onGrowth);
    return () => this.events.off('growth', onGrowth);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.connection?.disconnect();
    // A read already on its way may only fail at its timeout; no need to wait for that.
    await Promise.race([this.loop, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
  }

  private async watch(): Promise<void> {
    // Blocking reads need a connection of their own, and a timeout longer than they block:
    // an XREAD sent just before Redis went away then fails and is sent again, rather than
    // waiting for ever (a read is safe to resend).
    const connection = duplicateClient(this.redis, {
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResendUnfulfilledCommands: true,
      commandTimeout: BLOCK_MS + 2000,
      enableAutoPipelining: false,
    });
    connection.on('error', () => {}); // reported by the request client and /readyz
    this.connection = connection;
    // The newest entry when watching began, not "$": an entry appended between two XREADs
    // must still count as growth.
    let lastId: string | undefined;
    while (!this.stopped) {
      try {
        if (lastId === undefined) {
          lastId = (await connection.xrevrange(this.streamKey, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
          // A client that subscribed before this read may have missed an entry appended meanwhile.
          this.events.emit('growth');
        }
        const reply = await connection.xread('COUNT', 100, 'BLOCK', BLOCK_MS, 'STREAMS', this.streamKey, lastId);
        const entries = reply?.[0]?.[1] ?? [];
        if (entries.length > 0) {
          lastId = entries[entries.length - 1]![0];
          this.events.emit('growth');
        }
      } catch {
        if (this.stopped) return;
        // Redis is away: clients keep their cursors; look again in a moment.
        await new Promise((resolve) => setTimeout(resolve, 500));
        this.events.emit('growth');
      }
    }
  }
}
