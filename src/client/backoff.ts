// Retries with exponential backoff and full jitter (AWS' "Exponential Backoff and Jitter"):
// attempt n waits a random time in [0, min(cap, base * 2^n)], or the server's Retry-After
// plus a random part of base when it sent one, so clients that failed together do not come
// back together.
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendUnavailableError } from './errors.js';

export interface RetryPolicy {
  /** Tries in all, the first included (1: no retry). */
  attempts: number;
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 100, maxMs: 2000 };

/**
 * Runs `call` until it succeeds, fails with anything but BackendUnavailableError, runs out
 * of attempts, or `signal` aborts. Only for calls that are safe to repeat.
 */
export async function withRetries<T>(policy: RetryPolicy, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof BackendUnavailableError) || attempt >= policy.attempts || signal?.aborted) throw error;
      const wait =
        error.retryAfterMs !== null
          ? error.retryAfterMs + Math.random() * policy.baseMs
          : Math.random() * Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      await sleep(wait, undefined, signal ? { signal } : undefined).catch(() => {
        throw error;
      });
    }
  }
}
