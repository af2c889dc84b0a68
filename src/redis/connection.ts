// The one ioredis client of the service, set up to fail fast: when Redis is gone or stuck,
// a request must get 503 within seconds, not wait in a queue that replays it later.
import { Redis, ReplyError } from 'ioredis';

export interface ConnectionOptions {
  url: string;
  commandTimeoutMs: number;
}

export function createRedisClient({ url, commandTimeoutMs }: ConnectionOptions): Redis {
  return new Redis(url, {
    // No offline queue: a command sent while disconnected fails at once instead of being
    // queued and run, perhaps much later, after the caller was told it failed.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A paused or overloaded Redis keeps the socket open but answers nothing.
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 1000),
    // Reconnect for ever, backing off to one attempt a second.
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    lazyConnect: true,
    // A script that reached Redis is not resent on reconnect: it may already have run.
    autoResendUnfulfilledCommands: false,
    // Commands sent in one event-loop turn (concurrent requests) go out in one socket
    // write; the acquire profile spent a fifth of its time in socket writes.
    enableAutoPipelining: true,
  });
}

const UNAVAILABLE_PATTERNS = [
  /Command timed out/i, // ioredis' commandTimeout, and a script that started after its deadline
  /Connection is closed/i,
  /Stream isn't writeable/i,
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND/,
  /^LOADING /,
  /^BUSY /,
  /^MASTERDOWN /,
  /^READONLY /,
  /^TRYAGAIN /,
  /^CLUSTERDOWN /,
  /MaxRetriesPerRequestError|Reached the max retries/i,
];

/** True when an error means "Redis could not be reached or could not act", not a bug. */
export function isBackendUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (isRedisOutOfMemory(error)) return true;
  return UNAVAILABLE_PATTERNS.some((pattern) => pattern.test(error.message)) || error.name === 'MaxRetriesPerRequestError';
}

/**
 * True when Redis refused a write because it reached its maxmemory (policy noeviction).
 * Nothing was written: Redis refuses a script only at its first write, never half-way.
 */
export function isRedisOutOfMemory(error: unknown): boolean {
  // ioredis types ReplyError as any; the cast gives the message its type back.
  return error instanceof ReplyError && (error as Error).message.startsWith('OOM ');
}

/** Resolves once the client is ready, retrying until `timeoutMs` passes. */
export async function waitUntilReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait') client.connect().catch(() => {});
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis was not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolveReady();
    };
    client.once('ready', onReady);
  });
}
