// The service's lifecycle events (GET /v1/events, Server-Sent Events) as an async iterator.
// Like a browser's EventSource, once connected it reconnects when the stream ends or breaks,
// sending Last-Event-ID so that no event the service still keeps is missed or repeated.
// Unlike EventSource it throws a refusal (a 4xx), and a first connection that fails: a wrong
// URL is an error to report, not something to wait for. Every connection carries the bearer
// token, reconnections included.
import { setTimeout as sleep } from 'node:timers/promises';
import type { components } from './api-types.js';
import { authorization, checkNamespace, checkToken, namespacedPath } from './endpoint.js';
import { BackendUnavailableError, errorFromAnswer } from './errors.js';

/** One event, as the `data:` of a frame: the Event schema GET /v1/events documents. */
export type LeaseEvent = components['schemas']['Event'];

export interface EventQuery {
  /** Only events with a path at or below this one. */
  prefix?: string;
  types?: string[];
  /** Resume after this event; without it, the stream starts with the next event. */
  lastEventId?: string;
}

export interface EventStreamOptions {
  signal?: AbortSignal;
  /** Called each time the service has answered (so every later event will be seen). */
  onOpen?: () => void;
  /** Reconnect when the stream ends or breaks (default true); false: end there. */
  reconnect?: boolean;
  /** Called before each reconnect attempt, with why. */
  onReconnect?: (reason: string) => void;
}

/** Which namespace's stream, and as whom: as LeaseClientOptions says (LeaseClient.events passes its own). */
export interface EventStreamScope {
  /** Unset or "default": GET /v1/events; otherwise GET /v1/namespaces/<namespace>/events. */
  namespace?: string;
  /** Sent as `Authorization: Bearer <token>` on every connection. */
  token?: string;
}

const RECONNECT_MAX_MS = 5000;

/**
 * The event stream of the service at `baseUrl`, in `options.namespace` and with
 * `options.token`. A namespace or token the service could not take throws a TypeError on the
 * first `next()`.
 */
export async function* streamEvents(baseUrl: string, query: EventQuery = {}, options: EventStreamOptions & EventStreamScope = {}): AsyncGenerator<LeaseEvent> {
  const { signal, onOpen, onReconnect, reconnect = true } = options;
  const namespace = checkNamespace(options.namespace);
  const headers = { accept: 'text/event-stream', ...authorization(checkToken(options.token)) };
  let lastEventId = query.lastEventId;
  let failures = 0;
  let opened = false;
  const search = new URLSearchParams();
  if (query.prefix) search.set('prefix', query.prefix);
  if (query.types?.length) search.set('types', query.types.join(','));
  const url = `${baseUrl}${namespacedPath(namespace, '/v1/events')}${search.size > 0 ? `?${search}` : ''}`;

  while (!signal?.aborted) {
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { ...headers, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) return;
      const unreachable = new BackendUnavailableError(0, `The lease service at ${baseUrl} did not answer: ${(error as Error).message}`);
      if (!reconnect || !opened) throw unreachable;
      onReconnect?.(unreachable.message);
      await pause(failures++, signal);
      continue;
    }
    if (response.status !== 200 || !response.body) {
      const error = errorFromAnswer(response.status, await response.text(), response.headers.get('retry-after'));
      if (!(error instanceof BackendUnavailableError) || !reconnect || !opened) throw error;
      onReconnect?.(error.message);
      await pause(failures++, signal);
      continue;
    }
    failures = 0;
    opened = true;
    onOpen?.();
    try {
      for await (const event of frames(response.body)) {
        lastEventId = event.id;
        yield event;
      }
      if (!reconnect) return;
      onReconnect?.('the service ended the stream');
    } catch (error) {
      if (signal?.aborted) return;
      if (!reconnect) throw error;
      onReconnect?.(`the stream broke: ${(error as Error).message}`);
    }
  }
}

/** Parses text/event-stream; only `data:` is read, since it repeats the id and the type. */
async function* frames(body: ReadableStream<Uint8Array>): AsyncGenerator<LeaseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data !== '') yield JSON.parse(data) as LeaseEvent;
    }
  }
}

/** Full jitter, capped: a service that is down is not hammered by its watchers. */
function pause(failures: number, signal: AbortSignal | undefined): Promise<void> {
  const ms = Math.random() * Math.min(RECONNECT_MAX_MS, 100 * 2 ** failures);
  return sleep(ms, undefined, signal ? { signal } : undefined).catch(() => undefined);
}
