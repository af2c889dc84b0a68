// The problem+json catalogue (RFC 9457). Every error the API answers has a stable `code`
// from this table; titles are for humans and may change, codes may not.

export const PROBLEMS = {
  invalid_request: { status: 400, title: 'The request is malformed', meaning: 'the body, query or a parameter is not what the schema allows (or not well-formed UTF-8 and Unicode).' },
  invalid_resource: { status: 400, title: 'A resource path is not valid', meaning: 'a resource path breaks the path rules; nothing is normalised.' },
  overlapping_resources: { status: 400, title: 'Resources of one request cover each other', meaning: 'two resources of one request cover each other.' },
  invalid_cursor: { status: 400, title: 'The cursor is not one this service issued', meaning: 'the cursor is not a nextCursor this service returned.' },
  unauthorized: {
    status: 401,
    title: 'A bearer token is needed',
    meaning: 'access control is on and the request carries no token, a malformed one, or one that is unknown, revoked or expired (see WWW-Authenticate).',
  },
  forbidden: { status: 403, title: 'The token does not allow this', meaning: 'the token\'s role, namespaces, holders or orphan kinds do not allow this call; nothing changed.' },
  not_found: { status: 404, title: 'No such route', meaning: 'no route of this API has that method and path.' },
  lease_not_found: { status: 404, title: 'No such lease', meaning: 'no lease, and no tombstone of one (kept TOMBSTONE_TTL_MS).' },
  orphan_not_found: { status: 404, title: 'No such orphan', meaning: 'no orphan, or one resolved more than TOMBSTONE_TTL_MS ago.' },
  request_timeout: { status: 408, title: 'The request was not received in time', meaning: 'the whole request did not arrive within HTTP_REQUEST_TIMEOUT_MS.' },
  conflict: { status: 409, title: 'A conflicting lease holds a resource', meaning: 'a lease (or an earlier waiting request) holds a resource; see conflicts.' },
  request_id_reused: { status: 409, title: 'This requestId was used for a different request', meaning: 'this holder\'s requestId was granted for another request.' },
  orphan_claimed: { status: 409, title: 'The orphan is claimed by a conductor', meaning: 'a conductor holds the orphan; revoke its lease first.' },
  orphan_resolved: { status: 409, title: 'The orphan was already resolved otherwise', meaning: 'the orphan was resolved another way.' },
  lease_expired: { status: 410, title: 'The lease has expired', meaning: 'the lease expired; the tombstone is in the body.' },
  lease_released: { status: 410, title: 'The lease was released', meaning: 'the lease was released; the tombstone is in the body.' },
  lease_revoked: { status: 410, title: 'The lease was revoked', meaning: 'the lease was revoked; the tombstone is in the body.' },
  payload_too_large: { status: 413, title: 'The request or one of its parts is too large', meaning: 'the body, action.payload or progress is over its limit.' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json', meaning: 'send application/json, in UTF-8.' },
  rate_limited: { status: 429, title: 'Too many requests', meaning: 'too many requests of this kind are open on this replica; retry after Retry-After seconds.' },
  headers_too_large: { status: 431, title: 'The request headers are too large', meaning: 'the headers are larger than the server accepts.' },
  internal_error: { status: 500, title: 'Internal error', meaning: 'a bug; it is logged.' },
  backend_unavailable: {
    status: 503,
    title: 'The service cannot serve this now',
    meaning:
      'Redis cannot be reached, is failing over, did not answer in time (a call that reaches Redis after its deadline changes nothing) or is ' +
      'full, or fewer replicas than REDIS_MIN_REPLICAS confirmed the change in time (it was applied on the primary but is not durable), or ' +
      'the service sheds load, or (an acquire) more leases that ended together lie below a requested path than one request reads, awaiting the ' +
      'reaper. A change may have been applied; retrying is safe: an acquire with the same requestId returns the same lease, ' +
      'a release or resolve answers as a repeat does. Retry after Retry-After seconds.',
  },
} as const;

/** What a response of `status` may carry, for the OpenAPI document: each code of it and what it means. */
export function describeStatus(status: number): string {
  return Object.entries(PROBLEMS)
    .filter(([, entry]) => entry.status === status)
    .map(([code, entry]) => `${code}: ${entry.meaning}`)
    .join(' ');
}

export type ProblemCode = keyof typeof PROBLEMS;

export const PROBLEM_TYPE_BASE = 'https://lease-service.dev/problems/';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  [extension: string]: unknown;
}

/** An error a handler throws to answer with a problem; `extensions` become top-level members. */
export class ProblemError extends Error {
  readonly code: ProblemCode;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(code: ProblemCode, detail: string, extensions: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(detail);
    this.code = code;
    this.extensions = extensions;
    this.headers = headers;
  }

  get status(): number {
    return PROBLEMS[this.code].status;
  }

  toProblem(): Problem {
    return problem(this.code, this.message, this.extensions);
  }
}

export function problem(code: ProblemCode, detail: string, extensions: Record<string, unknown> = {}): Problem {
  const { status, title } = PROBLEMS[code];
  return { ...extensions, type: PROBLEM_TYPE_BASE + code, title, status, detail, code };
}
