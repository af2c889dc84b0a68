// Reads the lifecycle events stream (the scripts append to it, includes/events.lua) for
// GET /v1/events: where it starts and ends, and the entries after a client's cursor. Plain
// reads with no script, on the request client; a failure reaches the caller as it came, so
// the route can tell a Redis outage (wait it out) from anything else.
import type { RedisClient } from '../redis/connection.js';
import { toEvent } from './decoders.js';
import type { StoreKeys } from './keys.js';
import type { EventRecord } from './records.js';

export interface StreamBounds {
  /** The id of the last entry ever appended (0-0 for a stream that never had one). */
  lastId: string;
  /** The oldest entry still kept, if any. */
  firstId: string | undefined;
  /** Whether entries were ever removed (by trimming): unknown before Redis 7, so assumed. */
  trimmed: boolean;
}

export class EventStream {
  private readonly key: string;

  constructor(
    private readonly redis: RedisClient,
    keys: StoreKeys,
  ) {
    this.key = keys.events;
  }

  /** One XINFO STREAM: the stream's id range and whether it has been trimmed. */
  async bounds(): Promise<StreamBounds> {
    let reply: unknown[];
    try {
      reply = (await this.redis.xinfo('STREAM', this.key)) as unknown[];
    } catch (error) {
      if (/no such key/i.test((error as Error).message)) return { lastId: '0-0', firstId: undefined, trimmed: false };
      throw error;
    }
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < reply.length; i += 2) info.set(String(reply[i]), reply[i + 1]);
    const added = info.get('entries-added');
    return {
      lastId: (info.get('last-generated-id') as string | undefined) ?? '0-0',
      firstId: (info.get('first-entry') as [string, string[]] | null | undefined)?.[0],
      trimmed: added === undefined || Number(added) > Number(info.get('length') ?? 0),
    };
  }

  /** One XRANGE: up to `count` entries after the entry `cursor`, oldest first. */
  async after(cursor: string, count: number): Promise<EventRecord[]> {
    const entries = await this.redis.xrange(this.key, `(${cursor}`, '+', 'COUNT', count);
    return entries.map(toEvent);
  }
}
