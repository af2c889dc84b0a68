// GET /v1/events: the lifecycle stream as Server-Sent Events. Each client reads the Redis
// stream from its own cursor (the SSE id is the stream entry id), so a client that
// reconnects with Last-Event-ID gets every event it missed that the capped stream still
// holds, in order, exactly once.
//
// Each stream's cost is bounded: streams are capped per replica and per client address, a
// stream reads nothing more from Redis while its client has not taken what was sent, and a
// client that does not read is dropped rather than buffered for.
import { setImmediate } from 'node:timers/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.js';
import { problem, ProblemError } from '../errors.js';
import { Slots } from '../http/slots.js';
import { covers } from '../http/paths.js';
import { ResourcePath } from '../http/schemas/paths.js';
import { problemResponse, problemResponses } from '../http/schemas/problems.js';
import { isBackendUnavailable } from '../redis/connection.js';
import type { EventStream, StreamBounds } from '../store/event-stream.js';
import type { EventRecord } from '../store/records.js';
import type { ServiceMetrics } from '../observability/metrics.js';
import type { StreamWatchers } from './stream-watchers.js';
import { namespaceOf } from '../namespaces/routing.js';
import type { LeaseEvent } from './schemas.js';

export interface EventRoutesOptions {
  config: Config;
  /** The events stream of a namespace. */
  eventsOf: (namespace: string) => EventStream;
  watchers: StreamWatchers;
  /** Open streams, in all and per client address (eventStreamSlots). */
  slots: Slots;
  metrics: ServiceMetrics;
}

export const EVENT_TYPES = [
  'granted',
  'renewed',
  'released',
  'expired',
  'revoked',
  'orphaned',
  'dead_lettered',
  'claimed',
  'resolved',
] as const;

/** A comment line this often keeps proxies from closing a quiet stream. */
const HEARTBEAT_MS = 15000;
/** Stream entries read per XRANGE while catching up. */
const READ_BATCH = 200;
/** While Redis cannot be read, an open stream tries again this often. */
const READ_RETRY_MS = 1000;
const STREAM_ID = '^\\d{1,20}-\\d{1,20}$';
const MAX_ID_PART = 2n ** 64n - 1n;
/**
 * How long a stream waits for its client to take what was sent before it is dropped. A
 * client that reads, however slowly, drains its buffer well within it.
 */
const DRAIN_WAIT_MS = 30000;
/** Streams free their slots only as clients leave; a client over a cap tries again after this. */
const RETRY_AFTER_SECONDS = 5;

/**
 * The replica's budget of open event streams, in all and per client address: one for every
 * namespace, so it is made once and given to both registrations of the routes.
 */
export function eventStreamSlots(config: Config): Slots {
  return new Slots({
    max: config.EVENT_STREAMS_MAX,
    maxPerOwner: config.EVENT_STREAMS_MAX_PER_CLIENT,
    retryAfterSeconds: RETRY_AFTER_SECONDS,
    full: (open) => `This replica serves ${open} event streams, as many as it may (EVENT_STREAMS_MAX); retry later, or on another replica.`,
    ownerFull: (_client, open) =>
      `This client address has ${open} event streams open, the most one address may have (EVENT_STREAMS_MAX_PER_CLIENT); close one, or share one stream.`,
  });
}

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (fastify, { config, eventsOf, watchers, slots, metrics }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const openStreams = new Set<() => void>();
  // A stream never ends by itself: end them all so shutdown does not wait on them.
  app.addHook('preClose', async () => {
    for (const end of openStreams) end();
  });

  app.get(
    '/events',
    {
      config: { access: 'events' },
      schema: {
        tags: ['events'],
        summary: 'Lifecycle events as Server-Sent Events',
        description:
          'Every grant, renewal (one event per renew call), release, expiry, revocation, orphaning (orphaned, or dead_lettered after ' +
          'maxAttempts), claim and resolution, as `text/event-stream`: `id:` is the Redis stream entry id, `event:` the type, `data:` ' +
          'JSON {id, type, at, leaseId?, orphanId?, holder?, paths, fencingToken?} (the Event schema). Without Last-Event-ID the stream starts with the ' +
          'next event; with it, every later event the capped stream still holds (STREAM_MAX_ENTRIES) comes first, so an EventSource ' +
          'that reconnects misses nothing that was kept. A Last-Event-ID after the newest event is 400 invalid_request (the stream ' +
          'did not issue it). One older than the oldest event still kept, once the stream has been trimmed, is 400 invalid_request ' +
          'too: events after it were dropped, so read the current state again and reconnect without Last-Event-ID. An expiry is ' +
          'recorded when it is noticed (by a request or the reaper); its `at` is when it happened. A comment line is sent every 15 s. ' +
          'One replica serves at most EVENT_STREAMS_MAX streams, and EVENT_STREAMS_MAX_PER_CLIENT per client address; more are 429 ' +
          'rate_limited with Retry-After. Nothing more is read for a client that has not taken what it was sent; one that does not ' +
          `read is dropped once more than EVENT_STREAM_BUFFER_BYTES wait for it, or when it takes nothing for ${DRAIN_WAIT_MS / 1000} s. ` +
          'Redis trouble ends the stream too. Either way, reconnect with Last-Event-ID. Events that prefix or types leave out still ' +
          'move the stream\'s id: after each batch read, a frame with only an `id:` line (an EventSource dispatches nothing for it, ' +
          'but resumes from it), so a filter that matches nothing for long does not resume from an id trimmed since. With access ' +
          'control on, a stream whose token is revoked or expires ends within 15 s.',
        querystring: Type.Object(
          {
            prefix: Type.Optional({ ...ResourcePath, description: 'Only events with a path at or below this one.' }),
            types: Type.Optional(
              Type.String({
                pattern: '^[a-z_]+(,[a-z_]+)*$',
                description: `Comma-separated event types to keep: ${EVENT_TYPES.join(', ')}.`,
                examples: ['orphaned,dead_lettered,resolved'],
              }),
            ),
          },
          { additionalProperties: false },
        ),
        headers: Type.Object({
          'last-event-id': Type.Optional(
            Type.String({ pattern: STREAM_ID, description: 'The id of the last event received; the stream resumes after it.', examples: ['1795570469037-0'] }),
          ),
        }),
        response: {
          200: {
            description: 'The event stream; it does not end by itself (Swagger UI waits for the end, so use curl -N or an EventSource).',
            content: {
              'text/event-stream': {
                schema: Type.String({
                  examples: [
                    'id: 1795570469037-0\nevent: granted\ndata: {"id":"1795570469037-0","type":"granted","at":"2026-11-24T10:00:00.000Z","leaseId":"3q2-7wEjQ9mCkBq9xY1fSg","holder":"conductor-z","paths":["instances/i-42"],"fencingToken":1795520400000001}\n\n',
                  ],
                }),
              },
            },
          },
          ...problemResponses(400),
          429: problemResponse(
            'rate_limited: this replica (EVENT_STREAMS_MAX) or this client address (EVENT_STREAMS_MAX_PER_CLIENT) has as many streams open as it may. Retry after Retry-After seconds.',
            problem('rate_limited', 'This client address has 16 event streams open, the most one address may have (EVENT_STREAMS_MAX_PER_CLIENT); close one, or share one stream.'),
          ),
          ...problemResponses(503),
        },
      },
    },
    async (request, reply) => {
      // HEAD (Fastify answers it with this handler): the headers a stream would start with,
      // and the end. A stream opened for it would never send them (a HEAD response has no
      // body to flush them with) and would hold a slot of EVENT_STREAMS_MAX_PER_CLIENT.
      if (request.method === 'HEAD') {
        return reply.code(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').send();
      }
      const wanted = parseTypes(request.query.types);
      const prefix = request.query.prefix;
      const matches = (event: LeaseEvent) =>
        (!wanted || wanted.has(event.type)) && (!prefix || event.paths.some((path) => covers(prefix, path)));
      const namespace = namespaceOf(request);
      const events = eventsOf(namespace);
      // One budget per token with access control on, else per client address.
      const releaseSlot = slots.take(request.grant ? `token ${request.grant.actor}` : request.ip);
      let cursor: string;
      try {
        // Read before answering, so a Redis outage is a 503 rather than an empty stream.
        cursor = resumeCursor(await events.bounds(), request.headers['last-event-id']);
      } catch (error) {
        releaseSlot();
        throw error;
      }

      let grown = true;
      let closed = false;
      // The last id the client was sent (an event's, or an id-only frame's).
      let sentId = cursor;
      // A revoked or expired token's stream ends within a heartbeat, idle or busy: its grant is
      // asked again (one cached lookup) at each idle heartbeat, and between batches once a
      // heartbeat has passed since it was last asked.
      let grantCheckedAt = Date.now();
      const stillGranted = async (atHeartbeat = false): Promise<boolean> => {
        if (!atHeartbeat && Date.now() - grantCheckedAt < HEARTBEAT_MS) return true;
        grantCheckedAt = Date.now();
        if (await request.grantStillValid()) return true;
        request.log.info('event stream ended: its token no longer grants it');
        return false;
      };
      // Ends the wait in progress, if any: for new entries (when idle) or for 'drain'.
      let wake: (() => void) | undefined;
      const unsubscribe = watchers.subscribe(namespace, () => {
        grown = true;
        wake?.();
      });
      const end = () => {
        closed = true;
        wake?.();
      };
      openStreams.add(end);
      metrics.eventStreamClients.inc();

      reply.hijack();
      const res = reply.raw;
      res.on('close', end);
      /** Ends the stream of a client that does not read: it reconnects with Last-Event-ID if it ever does. */
      const drop = (why: string) => {
        request.log.warn({ buffered: res.socket?.writableLength ?? 0 }, `event stream dropped: ${why}`);
        end();
        res.destroy();
      };
      /**
       * After write() said false: whether the client took it all the same. write() says false as
       * soon as what this tick wrote passes the socket's high-water mark, even when the kernel
       * then takes all of it (the response corks the socket until the next tick), so look once
       * it was offered. Past EVENT_STREAM_BUFFER_BYTES still queued, the client is dropped.
       */
      const tookIt = async (): Promise<boolean> => {
        await setImmediate();
        if (closed) return false;
        if (!res.writableNeedDrain) return true;
        if ((res.socket?.writableLength ?? 0) > config.EVENT_STREAM_BUFFER_BYTES) {
          drop(`the client does not read, and more than EVENT_STREAM_BUFFER_BYTES=${config.EVENT_STREAM_BUFFER_BYTES} wait for it`);
        }
        return false;
      };
      /** Waits until the client has taken what is queued; drops it if it takes nothing for DRAIN_WAIT_MS. */
      const caughtUp = async (): Promise<boolean> => {
        const drained = await new Promise<boolean>((resolve) => {
          if (closed || !res.writableNeedDrain) return resolve(!closed);
          const finish = (ok: boolean) => {
            clearTimeout(timer);
            res.off('drain', onDrain);
            wake = undefined;
            resolve(ok);
          };
          const onDrain = () => finish(!closed);
          const timer = setTimeout(() => finish(false), DRAIN_WAIT_MS);
          res.on('drain', onDrain);
          // New entries do not matter while the client is behind; only the end does.
          wake = () => {
            if (closed) finish(false);
          };
        });
        if (!drained && !closed) drop(`the client took nothing for ${DRAIN_WAIT_MS} ms`);
        return drained;
      };

      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
        connection: 'close',
      });
      try {
        // True while the client has not taken what it was sent: nothing more is read from
        // Redis for it then, and what was read but not sent is let go (read again later), so a
        // stalled stream holds no more than its socket's buffer.
        let blocked = !res.write('retry: 2000\n\n') && !(await tookIt());
        while (!closed) {
          if (blocked) {
            if (!(await caughtUp())) break;
            blocked = false;
          }
          if (!grown) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, HEARTBEAT_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            wake = undefined;
            if (closed) break;
            if (!grown) {
              if (!(await stillGranted(true))) break;
              blocked = !res.write(': keepalive\n\n') && !(await tookIt());
              continue;
            }
          }
          if (!(await stillGranted())) break;
          grown = false;
          let entries: EventRecord[];
          try {
            entries = await events.after(cursor, READ_BATCH);
          } catch (error) {
            if (!isBackendUnavailable(error)) throw error;
            // Redis is away (restarting, failing over): the client keeps its stream and its
            // place, and reading resumes on the new primary. Heartbeats go on meanwhile.
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, READ_RETRY_MS);
              wake = () => {
                if (!closed) return;
                clearTimeout(timer);
                resolve();
              };
            });
            wake = undefined;
            grown = true;
            blocked = !res.write(': keepalive\n\n') && !(await tookIt());
            continue;
          }
          for (const entry of entries) {
            if (closed) break;
            cursor = entry.id;
            const event = eventView(entry);
            if (!matches(event)) continue;
            sentId = entry.id;
            if (!res.write(`id: ${entry.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`) && !(await tookIt())) {
              blocked = true;
              break;
            }
          }
          // Past events the filters left out: a frame with only an id moves the client's
          // Last-Event-ID without an event (the SSE rules), so a filter that matches nothing
          // for a long time does not resume from an id the stream has trimmed since.
          if (!blocked && !closed && cursor !== sentId) {
            sentId = cursor;
            blocked = !res.write(`id: ${cursor}\n\n`) && !(await tookIt());
          }
          // More may wait behind a full batch, or one cut short, whether or not the watcher says so.
          if (blocked || entries.length === READ_BATCH) grown = true;
        }
      } catch (error) {
        request.log.warn({ err: (error as Error).message }, 'event stream ended: Redis trouble');
      } finally {
        unsubscribe();
        openStreams.delete(end);
        releaseSlot();
        metrics.eventStreamClients.dec();
        // A client that is behind would hold the end (and a shutdown) for as long as it does not read.
        if (res.writableNeedDrain) res.destroy();
        else if (!res.destroyed) res.end();
      }
    },
  );
};

/**
 * Where a stream starts reading: after Last-Event-ID, or after the newest entry. Trimming
 * removes the oldest entries, so once the stream was trimmed, an id older than the oldest
 * kept entry may have had events after it that are gone (Redis does not record the newest
 * trimmed id, so one exactly at the boundary is refused too: re-reading the state is safe).
 */
function resumeCursor({ lastId, firstId, trimmed }: StreamBounds, lastEventId: string | undefined): string {
  if (lastEventId === undefined) return lastId;
  // Redis' stream ids are two 64-bit numbers; past them XRANGE refuses the id, and the stream
  // would end as soon as it began.
  if (lastEventId.split('-').some((part) => BigInt(part) > MAX_ID_PART)) {
    throw new ProblemError('invalid_request', `Last-Event-ID ${lastEventId} is not a stream id: each of its two numbers is at most ${MAX_ID_PART}.`);
  }
  if (compareStreamIds(lastEventId, lastId) > 0) {
    throw new ProblemError(
      'invalid_request',
      `Last-Event-ID ${lastEventId} is after the newest event of this stream (${lastId}), so this stream did not issue it (was Redis reset?). Reconnect without Last-Event-ID.`,
    );
  }
  const oldestKept = firstId ?? lastId;
  const lost = firstId === undefined ? compareStreamIds(lastEventId, lastId) < 0 : compareStreamIds(lastEventId, firstId) < 0;
  if (trimmed && lost) {
    throw new ProblemError(
      'invalid_request',
      `Events after Last-Event-ID ${lastEventId} were trimmed from the stream (it keeps about STREAM_MAX_ENTRIES; the oldest kept is ${oldestKept}), ` +
        'so some were lost. Read the current state again (GET /v1/leases, /v1/orphans) and reconnect without Last-Event-ID.',
    );
  }
  return lastEventId;
}

/** Orders two stream ids (ms-seq) numerically; they may exceed 2^53. */
function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function parseTypes(types: string | undefined): Set<string> | null {
  if (types === undefined) return null;
  const list = types.split(',');
  const unknown = list.filter((type) => !(EVENT_TYPES as readonly string[]).includes(type));
  if (unknown.length > 0) throw new ProblemError('invalid_request', `Unknown event type ${unknown.join(', ')}; known: ${EVENT_TYPES.join(', ')}.`);
  return new Set(list);
}

/** An entry of the stream as the `data:` of its frame (the Event schema). */
function eventView(entry: EventRecord): LeaseEvent {
  return {
    id: entry.id,
    type: entry.type,
    at: new Date(entry.at).toISOString(),
    ...(entry.leaseId !== null ? { leaseId: entry.leaseId } : {}),
    ...(entry.orphanId !== null ? { orphanId: entry.orphanId } : {}),
    ...(entry.holder !== null ? { holder: entry.holder } : {}),
    paths: entry.paths,
    ...(entry.fencingToken !== null ? { fencingToken: Number(entry.fencingToken) } : {}),
    ...(entry.actor !== null ? { actor: entry.actor } : {}),
  };
}
