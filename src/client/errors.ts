// What a call to the lease service can fail with, as classes a conductor can catch by
// meaning: the resources are taken (ConflictError), the lease is gone and the work that
// needs it must stop (LeaseLostError), or the service or its Redis cannot answer now and
// the call may be retried (BackendUnavailableError).
import type { Conflict, Problem, Tombstone } from './types.js';

/** Any problem+json answer; `code` is the service's stable error code. */
export class LeaseServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problem: Partial<Problem> & Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 409 conflict: leases (or earlier waiting requests) hold a resource of the request. */
export class ConflictError extends LeaseServiceError {
  get conflicts(): Conflict[] {
    return (this.problem.conflicts as Conflict[] | undefined) ?? [];
  }
}

/**
 * The lease has ended (410: expired, released or revoked; or 404: not even its tombstone is
 * left): stop the work that needs it, its fencing token is stale.
 */
export class LeaseLostError extends LeaseServiceError {
  /** The ended lease, when the service still had its tombstone. */
  get tombstone(): Tombstone | undefined {
    return this.status === 410 ? (this.problem as unknown as Tombstone) : undefined;
  }
}

/**
 * The service answered 503 (Redis cannot be reached or did not answer in time, or too few
 * replicas confirmed a change), or could not be reached at all (status 0). Do not read it as
 * "nothing changed": a 503 because fewer than REDIS_MIN_REPLICAS replicas confirmed the change
 * in time (Redis WAIT), or because the Redis connection broke while the call was in flight,
 * may leave the change applied, as may a call whose answer was lost or never came (status 0).
 * Retrying is safe all the same: an acquire retried with the same requestId returns the same
 * lease, a release or resolve retried answers as a repeat of it does, and a renew renews again.
 */
export class BackendUnavailableError extends LeaseServiceError {
  constructor(
    status: number,
    message: string,
    problem: Record<string, unknown> = {},
    /** Retry-After, in ms, when the service sent one. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(status, status === 0 ? 'unreachable' : 'backend_unavailable', message, problem);
  }
}

/** Turns a problem+json answer into the error class its status and code mean. */
export function errorFromProblem(status: number, problem: Record<string, unknown>, retryAfter: string | null): LeaseServiceError {
  const code = typeof problem.code === 'string' ? problem.code : `http_${status}`;
  const message = typeof problem.detail === 'string' ? problem.detail : `HTTP ${status}`;
  if (status === 409 && code === 'conflict') return new ConflictError(status, code, message, problem);
  if (status === 410 || code === 'lease_not_found') return new LeaseLostError(status, code, message, problem);
  // 502 and 504: a proxy in front could not reach the service; as retryable as a 503.
  if (status === 503 || status === 502 || status === 504) {
    const seconds = Number(retryAfter);
    return new BackendUnavailableError(status, message, problem, Number.isFinite(seconds) && retryAfter !== null ? seconds * 1000 : null);
  }
  return new LeaseServiceError(status, code, message, problem);
}

/** The error for an answer that is not 2xx, from its body text (a problem+json, or a proxy's page). */
export function errorFromAnswer(status: number, text: string, retryAfter: string | null): LeaseServiceError {
  let problem: Record<string, unknown>;
  try {
    problem = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    // Not the service's own answer (a proxy's error page, say).
    problem = { detail: `HTTP ${status}: ${text.slice(0, 200)}` };
  }
  return errorFromProblem(status, problem, retryAfter);
}
