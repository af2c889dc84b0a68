// GET /v1/events: the lifecycle stream as Server-Sent Events. Each client reads the Redis
// stream from its own cursor (the SSE id is the stream entry id), so a client that
// reconnects with Last-Event-ID gets every event it missed that the capped stream still
// holds, in order, exactly once.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Redis } from 'ioredis';
import { ProblemError } from '../errors.js';
import { covers } from '../leases/paths.js';
import { problemResponses, ResourcePath } from '../leases/schemas.js';
import { fieldMap } from '../store/lease-store.js';
import type { ServiceMetrics } from '../observability/metrics.js';
import type { StreamWatcher } from './stream-watcher.js';
// The SDK's type of an event is the one shape both sides share (the SDK is built on its own).
import type { LeaseEvent } from '../client/events.js';

export interface EventRoutesOptions {
  redis: Redis;
  streamKey: string;
  watcher: StreamWatcher;
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
const STREAM_ID = '^\\d{1,20}-\\d{1,20}$';

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (fastify, { redis, streamKey, watcher, metrics }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const openStreams = new Set<() => void>();
  // A stream never ends by itself: end them all so shutdown does not wait on them.
  app.addHook('preClose', async () => {
    for (const end of openStreams) end();
  });

  app.get(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary: 'Lifecycle events as Server-Sent Events',
        description:
          'Every grant, renewal (one event per renew call), release, expiry, revocation, orphaning (orphaned, or dead_lettered after ' +
          'maxAttempts), claim and resolution, as `text/event-stream`: `id:` is the Redis stream entry id, `event:` the type, `data:` ' +
          'JSON {id, type, at, leaseId?, orphanId?, holder?, paths, fencingToken?}. Without Last-Event-ID the stream starts with the ' +
          'next event; with it, every later event the capped stream still holds (STREAM_MAX_ENTRIES) comes first, so an EventSource ' +
          'that reconnects misses nothing that was kept. An expiry is recorded when it is noticed (by a request or the reaper); its ' +
          '`at` is when it happened. A comment line is sent every 15 s. Redis trouble ends the stream; reconnect with Last-Event-ID.',
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
          ...problemResponses(400, 503),
        },
      },
    },
    async (request, reply) => {
      const wanted = parseTypes(request.query.types);
      const prefix = request.query.prefix;
      const matches = (event: LeaseEvent) =>
        (!wanted || wanted.has(event.type)) && (!prefix || event.paths.some((path) => covers(prefix, path)));
      // Read before answering, so a Redis outage is a 503 rather than an empty stream.
      let cursor = request.headers['last-event-id'] ?? ((await redis.xrevrange(streamKey, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0');

      let grown = true;
      let closed = false;
      let wake: (() => void) | undefined;
      const unsubscribe = watcher.subscribe(() => {
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
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
        connection: 'close',
      });
      res.write('retry: 2000\n\n');
      try {
        while (!closed) {
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
              res.write(': keepalive\n\n');
              continue;
            }
          }
          grown = false;
          for (let caughtUp = false; !caughtUp && !closed; ) {
            const entries = (await redis.xrange(streamKey, `(${cursor}`, '+', 'COUNT', READ_BATCH)) as [string, string[]][];
            for (const [id, fields] of entries) {
              cursor = id;
              const event = toEvent(id, fields);
              if (matches(event)) res.write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
            }
            caughtUp = entries.length < READ_BATCH;
          }
        }
      } catch (error) {
        request.log.warn({ err: (error as Error).message }, 'event stream ended: Redis trouble');
      } finally {
        unsubscribe();
        openStreams.delete(end);
        metrics.eventStreamClients.dec();
        res.end();
      }
    },
  );
};

function parseTypes(types: string | undefined): Set<string> | null {
  if (types === undefined) return null;
  const list = types.split(',');
  const unknown = list.filter((type) => !(EVENT_TYPES as readonly string[]).includes(type));
  if (unknown.length > 0) throw new ProblemError('invalid_request', `Unknown event type ${unknown.join(', ')}; known: ${EVENT_TYPES.join(', ')}.`);
  return new Set(list);
}

function toEvent(id: string, flat: string[]): LeaseEvent {
  const f = fieldMap(flat);
  return {
    id,
    type: f.type ?? 'unknown',
    at: new Date(Number(f.at ?? 0)).toISOString(),
    ...(f.leaseId ? { leaseId: f.leaseId } : {}),
    ...(f.orphanId ? { orphanId: f.orphanId } : {}),
    ...(f.holder ? { holder: f.holder } : {}),
    paths: f.paths ? (JSON.parse(f.paths) as string[]) : [],
    ...(f.fencingToken ? { fencingToken: Number(f.fencingToken) } : {}),
  };
}
