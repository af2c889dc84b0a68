// The SDK's transport: a typed client of the lease service's HTTP API, one method per
// operation. Calls that are safe to repeat (acquire, which always carries a requestId; renew;
// release; reads) are retried with backoff and jitter when the service or its Redis is
// unavailable; revoke and claimOrphan are not (a repeated revoke answers 410, a repeated claim
// takes another orphan). It knows nothing of the helpers built on it (held-lease, with-lease,
// conductor): they take the narrow interface of the calls they make, and LeaseClient
// (lease-client.ts) adds withLease on top.
import { randomUUID } from 'node:crypto';
import { BackendUnavailableError, errorFromAnswer } from './errors.js';
import { DEFAULT_RETRY, withRetries, type RetryPolicy } from './backoff.js';
import { streamEvents, type EventQuery, type EventStreamOptions, type LeaseEvent } from './events.js';
import type {
  AcquireRequest,
  Claim,
  FencingCheck,
  HolderRenewal,
  HolderRenewRequest,
  Lease,
  LeasePage,
  ListLeasesQuery,
  ListOrphansQuery,
  Orphan,
  OrphanPage,
  ReleaseOutcome,
  RenewRequest,
  ResolveRequest,
  ResourceView,
  Tombstone,
} from './types.js';

export interface LeaseClientOptions {
  /** Where the service answers, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  /** How long one HTTP request may take before it counts as unavailable (waitMs is added). Default 5000. */
  requestTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export class LeaseTransport {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(options: LeaseClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.requestTimeoutMs ?? 5000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  /**
   * Acquires a lease; throws ConflictError when the resources are taken (after waitMs, if
   * given). A requestId is generated when none is given, so a retry after a lost answer
   * returns the lease that was granted rather than conflicting with it.
   */
  async acquire(request: AcquireRequest, options: CallOptions = {}): Promise<Lease> {
    const body = { ...request, requestId: request.requestId ?? randomUUID() };
    return this.retried(() => this.call<Lease>('POST', '/v1/leases', body, options, body.waitMs ?? 0), options);
  }

  /** The heartbeat; throws LeaseLostError once the lease has ended. */
  async renew(id: string, request: RenewRequest = {}, options: CallOptions = {}): Promise<Lease> {
    return this.retried(() => this.call<Lease>('POST', `/v1/leases/${encodeURIComponent(id)}/renew`, request, options), options);
  }

  /**
   * One heartbeat for the active leases of `holder` (a conductor holding many): one call
   * renews at most HOLDER_RENEW_MAX of them; when `nextCursor` is not null, call again with
   * it as `cursor` (renewHolderAll does).
   */
  async renewHolder(holder: string, request: HolderRenewRequest = {}, options: CallOptions = {}): Promise<HolderRenewal> {
    return this.retried(() => this.call<HolderRenewal>('POST', `/v1/holders/${encodeURIComponent(holder)}/renew`, request, options), options);
  }

  /** Every active lease of `holder` renewed, following nextCursor; returns what was renewed. */
  async renewHolderAll(holder: string, request: Omit<HolderRenewRequest, 'cursor'> = {}, options: CallOptions = {}): Promise<HolderRenewal['renewed']> {
    const renewed: HolderRenewal['renewed'] = [];
    let cursor: string | null = null;
    do {
      const answer: HolderRenewal = await this.renewHolder(holder, cursor === null ? request : { ...request, cursor }, options);
      renewed.push(...answer.renewed);
      cursor = answer.nextCursor;
    } while (cursor !== null);
    return renewed;
  }

  async release(id: string, outcome: ReleaseOutcome = 'completed', options: CallOptions = {}): Promise<Tombstone> {
    return this.retried(() => this.call<Tombstone>('POST', `/v1/leases/${encodeURIComponent(id)}/release`, { outcome }, options), options);
  }

  /** An operator's force-end. Not retried: a repeat after a lost answer would say 410. */
  async revoke(id: string, options: CallOptions = {}): Promise<Tombstone> {
    return this.call<Tombstone>('DELETE', `/v1/leases/${encodeURIComponent(id)}`, undefined, options);
  }

  /** An active or orphaned lease; throws LeaseLostError for an ended one. */
  async get(id: string, options: CallOptions = {}): Promise<Lease> {
    return this.retried(() => this.call<Lease>('GET', `/v1/leases/${encodeURIComponent(id)}`, undefined, options), options);
  }

  /** One page of leases; pass the returned nextCursor as cursor for the next. */
  async list(query: ListLeasesQuery = {}, options: CallOptions = {}): Promise<LeasePage> {
    const path = `/v1/leases${queryString(query)}`;
    return this.retried(() => this.call<LeasePage>('GET', path, undefined, options), options);
  }

  /**
   * What is held at a resource path: the first 100 leases covering it and below it, and how
   * many there are. Payloads and progress are null unless `include: 'payload'`.
   */
  async resource(path: string, options: CallOptions & { include?: 'payload' } = {}): Promise<ResourceView> {
    const url = `/v1/resources/${path.split('/').map(encodeURIComponent).join('/')}${options.include ? `?include=${options.include}` : ''}`;
    return this.retried(() => this.call<ResourceView>('GET', url, undefined, options), options);
  }

  /**
   * Claims the oldest pending orphan of these kinds, waiting up to waitMs for one; null when
   * none came. Not retried: a claim whose answer was lost has taken an orphan (it comes back
   * when that claim's lease expires), and a repeat would take another.
   */
  async claimOrphan(request: { holder: string; kinds?: string[]; ttlMs?: number; waitMs?: number }, options: CallOptions = {}): Promise<Claim | null> {
    return this.call<Claim | null>('POST', '/v1/orphans/claim', request, options, request.waitMs ?? 0);
  }

  /**
   * Chubby's CheckSequencer, for the resource server a conductor writes to: is this fencing
   * token valid for this path right now? Refuse the write when `valid` is false.
   */
  async checkFencing(path: string, fencingToken: number, options: CallOptions = {}): Promise<FencingCheck> {
    return this.retried(() => this.call<FencingCheck>('POST', '/v1/fencing/check', { path, fencingToken }, options), options);
  }

  /**
   * The lifecycle event stream (GET /v1/events) as an async iterator: `for await (const
   * event of client.events({ prefix: 'instances/i-42' }))`. Reconnects with Last-Event-ID
   * until `options.signal` aborts; a refusal (4xx) is thrown.
   */
  events(query: EventQuery = {}, options: EventStreamOptions = {}): AsyncGenerator<LeaseEvent> {
    return streamEvents(this.baseUrl, query, options);
  }

  async getOrphan(id: string, options: CallOptions = {}): Promise<Orphan> {
    return this.retried(() => this.call<Orphan>('GET', `/v1/orphans/${encodeURIComponent(id)}`, undefined, options), options);
  }

  async listOrphans(query: ListOrphansQuery = {}, options: CallOptions = {}): Promise<OrphanPage> {
    const path = `/v1/orphans${queryString(query)}`;
    return this.retried(() => this.call<OrphanPage>('GET', path, undefined, options), options);
  }

  /** An operator gives an orphan up. Retried: resolving again the same way answers the same orphan. */
  async resolveOrphan(id: string, request: ResolveRequest, options: CallOptions = {}): Promise<Orphan> {
    return this.retried(() => this.call<Orphan>('POST', `/v1/orphans/${encodeURIComponent(id)}/resolve`, request, options), options);
  }

  private retried<T>(call: () => Promise<T>, options: CallOptions): Promise<T> {
    return withRetries(this.retry, call, options.signal);
  }

  private async call<T>(method: string, path: string, body: unknown, options: CallOptions, waitMs = 0): Promise<T> {
    const timeout = AbortSignal.timeout(this.timeoutMs + waitMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let response: globalThis.Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        signal,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      // The caller's own abort is not the service's fault: let it through as it is.
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      throw new BackendUnavailableError(0, `The lease service at ${this.baseUrl} did not answer: ${(error as Error).message}`);
    }
    if (response.status === 204) return null as T;
    const text = await response.text();
    if (!response.ok) throw errorFromAnswer(response.status, text, response.headers.get('retry-after'));
    return JSON.parse(text) as T;
  }
}

function queryString(query: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) search.set(key, String(value));
  return search.size > 0 ? `?${search}` : '';
}
