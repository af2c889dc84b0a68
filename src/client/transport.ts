// The SDK's transport: a typed client of the lease service's HTTP API, one method per
// operation. Calls that are safe to repeat (acquire, which always carries a requestId; renew;
// release; reads) are retried with backoff and jitter when the service or its Redis is
// unavailable; revoke and claimOrphan are not (a repeated revoke answers 410, a repeated claim
// takes another orphan). It knows nothing of the helpers built on it (held-lease, with-lease,
// conductor): they take the narrow interface of the calls they make, and LeaseClient
// (lease-client.ts) adds withLease on top. Every call works in one namespace and carries the
// client's bearer token (endpoint.ts builds both, for the event stream too).
import { randomUUID } from 'node:crypto';
import { BackendUnavailableError, errorFromAnswer } from './errors.js';
import { DEFAULT_RETRY, withRetries, type RetryPolicy } from './backoff.js';
import { authorization, checkNamespace, checkToken, namespacedPath } from './endpoint.js';
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
  /**
   * The namespace (a tenant, a cell or a region) every call works in: its leases, orphans,
   * events and fencing tokens never meet another's, and an id of another namespace is 404.
   * Unset or "default": the routes as they are; otherwise every /v1/... path becomes
   * /v1/namespaces/<namespace>/.... 1 to 63 lower-case letters, digits and dashes, starting
   * with a letter or a digit (^[a-z0-9][a-z0-9-]{0,62}$); another name throws a TypeError here.
   */
  namespace?: string;
  /**
   * Sent as `Authorization: Bearer <token>` on every request, the event stream included, for
   * a service with access control on (its 401 and 403 are LeaseServiceErrors, not retried).
   * Visible ASCII without spaces; another value throws a TypeError here.
   */
  token?: string;
  /** How long one HTTP request may take before it counts as unavailable (waitMs is added). Default 5000. */
  requestTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export class LeaseTransport {
  readonly baseUrl: string;
  /** The namespace every call works in: "default" when none was given. */
  readonly namespace: string;
  /** A # field, so that logging or inspecting the client does not show the token. */
  readonly #token: string | undefined;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  /** Throws TypeError for a namespace or token the service could not take (see LeaseClientOptions). */
  constructor(options: LeaseClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.namespace = checkNamespace(options.namespace);
    this.#token = checkToken(options.token);
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
    const path = `/v1/leases${queryString(query)}` as const;
    return this.retried(() => this.call<LeasePage>('GET', path, undefined, options), options);
  }

  /**
   * What is held at a resource path: the first 100 leases covering it and below it, and how
   * many there are. Payloads and progress are null unless `include: 'payload'`.
   */
  async resource(path: string, options: CallOptions & { include?: 'payload' } = {}): Promise<ResourceView> {
    const url = `/v1/resources/${path.split('/').map(encodeURIComponent).join('/')}${options.include ? `?include=${options.include}` : ''}` as const;
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
   * The lifecycle event stream (GET /v1/events) of the client's namespace, with its token, as
   * an async iterator: `for await (const event of client.events({ prefix: 'instances/i-42' }))`.
   * Reconnects with Last-Event-ID until `options.signal` aborts; a refusal (4xx) is thrown.
   */
  events(query: EventQuery = {}, options: EventStreamOptions = {}): AsyncGenerator<LeaseEvent> {
    return streamEvents(this.baseUrl, query, { ...options, namespace: this.namespace, token: this.#token });
  }

  async getOrphan(id: string, options: CallOptions = {}): Promise<Orphan> {
    return this.retried(() => this.call<Orphan>('GET', `/v1/orphans/${encodeURIComponent(id)}`, undefined, options), options);
  }

  async listOrphans(query: ListOrphansQuery = {}, options: CallOptions = {}): Promise<OrphanPage> {
    const path = `/v1/orphans${queryString(query)}` as const;
    return this.retried(() => this.call<OrphanPage>('GET', path, undefined, options), options);
  }

  /** An operator gives an orphan up. Retried: resolving again the same way answers the same orphan. */
  async resolveOrphan(id: string, request: ResolveRequest, options: CallOptions = {}): Promise<Orphan> {
    return this.retried(() => this.call<Orphan>('POST', `/v1/orphans/${encodeURIComponent(id)}/resolve`, request, options), options);
  }

  private retried<T>(call: () => Promise<T>, options: CallOptions): Promise<T> {
    return withRetries(this.retry, call, options.signal);
  }

  /** One request to `path` (as the default namespace names it) in the client's namespace, with its token. */
  private async call<T>(method: string, path: `/v1/${string}`, body: unknown, options: CallOptions, waitMs = 0): Promise<T> {
    const timeout = AbortSignal.timeout(this.timeoutMs + waitMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let response: globalThis.Response;
    try {
      response = await fetch(this.baseUrl + namespacedPath(this.namespace, path), {
        method,
        signal,
        headers: { ...authorization(this.#token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
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
