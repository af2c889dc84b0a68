// The service's own account of what happens, read as an operator would: GET /v1/events
// (Server-Sent Events, through the SDK's iterator), with an operator's token. The demo shows
// the orphan being published and resolved from here, since no conductor sees those moments itself.
import { streamEvents, type LeaseEvent } from '../client/index.js';
import { EventLog } from './event-log.js';

export type ServiceEvent = LeaseEvent;

export interface EventStream {
  next(match: (event: ServiceEvent) => boolean, what: string, timeoutMs: number): Promise<ServiceEvent>;
  close(): void;
}

/** Resolves once the service has answered, so every later event is seen. */
export async function watchEvents(baseUrl: string, query: { prefix: string; types: string[] }, token: string): Promise<EventStream> {
  const stopped = new AbortController();
  const events = new EventLog<ServiceEvent>();
  let resolveOpen!: () => void;
  let rejectOpen!: (error: unknown) => void;
  const opened = new Promise<void>((resolve, reject) => ((resolveOpen = resolve), (rejectOpen = reject)));
  // No reconnecting: in the demo a broken stream is a failure to report, not to hide.
  const stream = streamEvents(baseUrl, query, { token, signal: stopped.signal, onOpen: () => resolveOpen(), reconnect: false });
  void (async () => {
    for await (const event of stream) events.push(event);
    events.end(stopped.signal.aborted ? 'the demo stopped watching' : 'the service ended the event stream');
  })().catch((error: unknown) => {
    const why = `the event stream failed: ${(error as Error).message}`;
    events.end(why);
    rejectOpen(error);
  });
  await opened;
  return {
    next: (match, what, timeoutMs) => events.next(match, what, timeoutMs),
    close: () => stopped.abort(),
  };
}
