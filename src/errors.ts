// The problem+json catalogue (RFC 9457). Every error the API answers has a stable `code`
// from this table; titles are for humans and may change, codes may not.

export const PROBLEMS = {
  invalid_request: { status: 400, title: 'The request is malformed' },
  invalid_resource: { status: 400, title: 'A resource path is not valid' },
  overlapping_resources: { status: 400, title: 'Resources of one request cover each other' },
  invalid_cursor: { status: 400, title: 'The cursor is not one this service issued' },
  not_found: { status: 404, title: 'No such route' },
  lease_not_found: { status: 404, title: 'No such lease' },
  orphan_not_found: { status: 404, title: 'No such orphan' },
  conflict: { status: 409, title: 'A conflicting lease holds a resource' },
  request_id_reused: { status: 409, title: 'This requestId was used for a different request' },
  orphan_claimed: { status: 409, title: 'The orphan is claimed by a conductor' },
  orphan_resolved: { status: 409, title: 'The orphan was already resolved otherwise' },
  lease_expired: { status: 410, title: 'The lease has expired' },
  lease_released: { status: 410, title: 'The lease was released' },
  lease_revoked: { status: 410, title: 'The lease was revoked' },
  payload_too_large: { status: 413, title: 'The request or one of its parts is too large' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  request_timeout: { status: 408, title: 'The request was not received in time' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  unauthorized: { status: 401, title: 'Not authorized' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal_error: { status: 500, title: 'Internal error' },
  backend_unavailable: { status: 503, title: 'Redis cannot be reached' },
} as const;

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
