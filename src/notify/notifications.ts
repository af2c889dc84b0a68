// What the scripts announce on Redis sharded pub/sub, for requests that wait: "freed" (paths
// that may have stopped being blocked) wakes waiting acquires, "pending" (the kind of a newly
// pending orphan) wakes waiting claims. The scripts SPUBLISH on their namespace's channels,
// which hash to the namespace's slot: in a Redis Cluster a notice travels only to the
// subscribers on that shard. One subscriber per service replica (in Cluster mode one
// connection per primary) SSUBSCRIBEs the channels of the namespaces that have waiters, and
// only while they do (and a little after, so a busy namespace is not subscribed again and
// again).
//
// Pub/sub delivers at most once, and only while subscribed: a notice is lost only while the
// subscriber is disconnected (Redis also disconnects a subscriber that falls behind; in
// Cluster mode a failover moves a shard's subscriber). So each time the subscriptions are
// confirmed again, every waiter is woken ("resync") to look again. There is no polling: a
// waiter costs Redis work only when what it waits on changes.
import { EventEmitter } from 'node:events';
import { onResubscribe, subscriberOf, type RedisClient } from '../redis/connection.js';
import type { StoreKeys } from '../store/keys.js';
import { decodePathList } from '../store/resource-codec.js';

/** How long a watch waits for its namespace's subscription before going on without it. */
const SUBSCRIBE_WAIT_MS = 2000;
/** How long a namespace stays subscribed after its last watch closed. */
const LINGER_MS = 30_000;

/** A notice of one namespace, or a resync (which concerns every waiter). */
export type Wakeup = { type: 'freed'; namespace: string; paths: string[] } | { type: 'pending'; namespace: string; kind: string } | { type: 'resync' };

interface Subscription {
  channels: [freed: string, pending: string];
  watches: number;
  /** Settles once Redis confirmed the SSUBSCRIBE (or it failed). */
  confirmed: Promise<void>;
  linger: NodeJS.Timeout | undefined;
}

export class Notifications {
  private readonly events = new EventEmitter();
  private subscriber: RedisClient | undefined;
  private closed = false;
  private readonly subscriptions = new Map<string, Subscription>();
  /** Channel name to its namespace, for the subscribed ones. */
  private readonly namespaceOfChannel = new Map<string, string>();

  constructor(
    private readonly redis: RedisClient,
    /** The keys (channels included) of a namespace. */
    private readonly keysOf: (namespace: string) => StoreKeys,
  ) {
    // One listener per waiting request; thousands may wait at once.
    this.events.setMaxListeners(0);
  }

  start(): void {
    const subscriber = subscriberOf(this.redis);
    this.subscriber = subscriber;
    // ioredis signals before its own resubscription is confirmed: subscribe here too (the
    // same SSUBSCRIBE twice is harmless) and wake the waiters only once Redis confirmed it,
    // so that a change made before that moment is seen by the look it triggers.
    onResubscribe(subscriber, () => {
      Promise.all([...this.subscriptions.values()].map((s) => subscriber.ssubscribe(...s.channels)))
        .then(() => this.resync())
        .catch(() => undefined);
    });
    subscriber.on('smessage', (channel: string, message: string) => this.deliver(channel, message));
    subscriber.connect().catch(() => undefined);
  }

  private resync(): void {
    this.events.emit('wake', { type: 'resync' } satisfies Wakeup);
  }

  private deliver(channel: string, message: string): void {
    const namespace = this.namespaceOfChannel.get(channel);
    if (namespace === undefined) return;
    if (channel.endsWith(':freed')) this.events.emit('wake', { type: 'freed', namespace, paths: parsePaths(message) } satisfies Wakeup);
    else if (channel.endsWith(':pending')) this.events.emit('wake', { type: 'pending', namespace, kind: message } satisfies Wakeup);
  }

  /** Wakes every waiter (they answer with what they have) and closes the subscriber. */
  async stop(): Promise<void> {
    this.closed = true;
    this.resync();
    for (const subscription of this.subscriptions.values()) clearTimeout(subscription.linger);
    this.subscriber?.disconnect();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Starts listening for wakeups of `namespace` that `matches` (and resyncs). Take the watch,
   * and wait for its subscription (subscribedWithin), *before* asking Redis whether to wait: a notice
   * published between Redis' answer and the wait is then kept, not lost. Close it when done.
   */
  watch(namespace: string, matches: (wakeup: Wakeup) => boolean): Watch {
    const subscription = this.subscribe(namespace);
    return new Watch(this.events, matches, () => this.closed, subscription.confirmed, () => this.release(namespace, subscription));
  }

  private subscribe(namespace: string): Subscription {
    let subscription = this.subscriptions.get(namespace);
    if (!subscription) {
      const keys = this.keysOf(namespace);
      const channels: [string, string] = [keys.freedChannel, keys.pendingChannel];
      for (const channel of channels) this.namespaceOfChannel.set(channel, namespace);
      const created: Subscription = { channels, watches: 0, confirmed: Promise.resolve(), linger: undefined };
      created.confirmed = this.confirm(channels, () => {
        // Refused: the next watch of this namespace subscribes afresh.
        if (this.subscriptions.get(namespace) === created) this.subscriptions.delete(namespace);
      });
      subscription = created;
      this.subscriptions.set(namespace, subscription);
    }
    clearTimeout(subscription.linger);
    subscription.linger = undefined;
    subscription.watches++;
    return subscription;
  }

  /**
   * Sends the SSUBSCRIBE (queued while disconnected) and settles once Redis confirmed it, or
   * after SUBSCRIBE_WAIT_MS: a waiter does not hang on a Redis that is away (its first look
   * then fails anyway). Confirmed later, it wakes everyone to look again.
   */
  private confirm(channels: [string, string], refused: () => void): Promise<void> {
    if (!this.subscriber || this.closed) return Promise.resolve();
    let late = false;
    let timer: NodeJS.Timeout | undefined;
    const subscribed = this.subscriber.ssubscribe(...channels).then(
      () => {
        if (late) this.resync();
      },
      refused,
    );
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        late = true;
        resolve();
      }, SUBSCRIBE_WAIT_MS);
      timer.unref();
    });
    return Promise.race([subscribed, timeout]).finally(() => clearTimeout(timer));
  }

  private release(namespace: string, subscription: Subscription): void {
    if (--subscription.watches > 0 || this.subscriptions.get(namespace) !== subscription) return;
    subscription.linger = setTimeout(() => {
      if (subscription.watches > 0 || this.subscriptions.get(namespace) !== subscription) return;
      this.subscriptions.delete(namespace);
      for (const channel of subscription.channels) this.namespaceOfChannel.delete(channel);
      if (!this.closed) this.subscriber?.sunsubscribe(...subscription.channels).catch(() => undefined);
    }, LINGER_MS);
    subscription.linger.unref();
  }
}

/** Wakeups seen since a watch was taken; wait() returns at once if one came already. */
export class Watch {
  private woken = false;
  private notify: (() => void) | undefined;
  private closedAlready = false;
  private readonly onWake = (wakeup: Wakeup) => {
    if (wakeup.type !== 'resync' && !this.matches(wakeup)) return;
    this.woken = true;
    this.notify?.();
  };

  constructor(
    private readonly events: EventEmitter,
    private readonly matches: (wakeup: Wakeup) => boolean,
    private readonly closed: () => boolean,
    /** Settles once the namespace's channels are subscribed (or that was given up on). */
    readonly subscribed: Promise<void>,
    private readonly onClose: () => void,
  ) {
    events.on('wake', this.onWake);
  }

  /**
   * Resolves once the namespace's channels are subscribed, after `timeoutMs`, or when
   * `signal` aborts: a request that may wait 100 ms does not wait longer for its subscription.
   */
  async subscribedWithin(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        this.subscribed,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, timeoutMs));
          onAbort = resolve;
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
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
    if (this.closedAlready) return;
    this.closedAlready = true;
    this.events.off('wake', this.onWake);
    this.onClose();
  }
}

function parsePaths(message: string): string[] {
  try {
    return decodePathList(message);
  } catch {
    return [];
  }
}
