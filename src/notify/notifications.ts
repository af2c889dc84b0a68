// What the scripts announce on Redis pub/sub, for requests that wait: "freed" (paths that
// may have stopped being blocked) wakes waiting acquires, "pending" (the kind of a newly
// pending orphan) wakes waiting claims. One subscriber connection per replica, for every
// namespace: the namespace "default"'s channels by name, the others' by one pattern each.
// Pub/sub delivers at most once, and only while subscribed: a notice is lost only while the
// subscriber is disconnected (Redis also disconnects a subscriber that falls behind). So
// each time the subscription is confirmed again, every waiter is woken ("resync") to look
// again. There is no polling: a waiter costs Redis work only when what it waits on changes.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { subscriberOf } from '../redis/connection.js';
import { DEFAULT_NAMESPACE, namespaceKeyPrefix, namespaceOfKey } from '../namespaces/names.js';
import { storeKeys } from '../store/keys.js';

/** How long start() waits for the subscription before going on without it. */
const SUBSCRIBE_WAIT_MS = 2000;

/** A notice of one namespace, or a resync (which concerns every waiter). */
export type Wakeup = { type: 'freed'; namespace: string; paths: string[] } | { type: 'pending'; namespace: string; kind: string } | { type: 'resync' };

export class Notifications {
  private readonly events = new EventEmitter();
  private subscriber: Redis | undefined;
  private closed = false;

  private readonly channels: string[];
  private readonly patterns: string[];

  constructor(
    private readonly redis: Redis,
    /** KEY_PREFIX: the channels are "{KEY_PREFIX}:freed" and "{KEY_PREFIX/<namespace>}:freed" (and :pending). */
    private readonly keyPrefix: string,
  ) {
    // One listener per waiting request; thousands may wait at once.
    this.events.setMaxListeners(0);
    const defaults = storeKeys(namespaceKeyPrefix(keyPrefix, DEFAULT_NAMESPACE));
    this.channels = [defaults.freedChannel, defaults.pendingChannel];
    // Every other namespace's, by "*" in its place: KEY_PREFIX holds no glob character
    // ([A-Za-z0-9._:-]), so the pattern matches only these.
    const others = storeKeys(namespaceKeyPrefix(keyPrefix, '*'));
    this.patterns = [others.freedChannel, others.pendingChannel];
  }

  async start(): Promise<void> {
    const subscriber = subscriberOf(this.redis);
    this.subscriber = subscriber;
    // ioredis says 'ready' before its own resubscription is sent: subscribe here too (the
    // same SUBSCRIBE twice is harmless) and wake the waiters only once Redis confirmed it,
    // so that a change made before that moment is seen by the look it triggers.
    subscriber.on('ready', () => {
      this.subscribe(subscriber)
        .then(() => this.events.emit('wake', { type: 'resync' } satisfies Wakeup))
        .catch(() => undefined);
    });
    subscriber.on('message', (channel: string, message: string) => this.deliver(channel, message));
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => this.deliver(channel, message));
    // Starting must not hang while Redis is down: the SUBSCRIBE waits in the offline queue,
    // and waiters are woken when it lands (above).
    const subscribed = this.subscribe(subscriber).catch(() => undefined);
    await Promise.race([subscribed, new Promise((resolve) => setTimeout(resolve, SUBSCRIBE_WAIT_MS).unref())]);
  }

  private async subscribe(subscriber: Redis): Promise<void> {
    await Promise.all([subscriber.subscribe(...this.channels), subscriber.psubscribe(...this.patterns)]);
  }

  private deliver(channel: string, message: string): void {
    const namespace = namespaceOfKey(this.keyPrefix, channel);
    if (namespace === undefined) return;
    if (channel.endsWith(':freed')) this.events.emit('wake', { type: 'freed', namespace, paths: parsePaths(message) } satisfies Wakeup);
    else if (channel.endsWith(':pending')) this.events.emit('wake', { type: 'pending', namespace, kind: message } satisfies Wakeup);
  }

  /** Wakes every waiter (they answer with what they have) and closes the subscriber. */
  async stop(): Promise<void> {
    this.closed = true;
    this.events.emit('wake', { type: 'resync' } satisfies Wakeup);
    this.subscriber?.disconnect();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Starts listening for wakeups that `matches` (and resyncs). Take the watch *before* asking
   * Redis whether to wait: a notice published between Redis' answer and the wait is then
   * kept, not lost. Close it when done.
   */
  watch(matches: (wakeup: Wakeup) => boolean): Watch {
    return new Watch(this.events, matches, () => this.closed);
  }
}

/** Wakeups seen since a watch was taken; wait() returns at once if one came already. */
export class Watch {
  private woken = false;
  private notify: (() => void) | undefined;
  private readonly onWake = (wakeup: Wakeup) => {
    if (wakeup.type !== 'resync' && !this.matches(wakeup)) return;
    this.woken = true;
    this.notify?.();
  };

  constructor(
    private readonly events: EventEmitter,
    private readonly matches: (wakeup: Wakeup) => boolean,
    private readonly closed: () => boolean,
  ) {
    events.on('wake', this.onWake);
  }

  /**
   * Resolves on a matching wakeup since the watch was taken, after `timeoutMs`, or when
   * `signal` aborts, whichever comes first; then the watch starts afresh.
   */
  async wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (!this.woken && !this.closed() && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, timeoutMs));
        signal.addEventListener('abort', done, { once: true });
        this.notify = done;
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
      });
      this.notify = undefined;
    }
    this.woken = false;
  }

  close(): void {
    this.events.off('wake', this.onWake);
  }
}

function parsePaths(message: string): string[] {
  try {
    const paths: unknown = JSON.parse(message);
    return Array.isArray(paths) ? paths.filter((p): p is string => typeof p === 'string') : [];
  } catch {
    return [];
  }
}
