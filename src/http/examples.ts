// The examples of the OpenAPI document, all from one story: conductor-z resizes instance
// i-42, dies, and conductor-w takes the action over. They are made by the same presenters
// and error catalogue as real answers, so an example cannot show a field the service does
// not send; a test validates each against its schema. This module holds the story's lease
// and the examples of the shared vocabulary; each feature makes its own from them
// (leases/examples.ts, orphans/examples.ts, resources/examples.ts).
import { problem, type Problem } from '../errors.js';
import { encodeCursor } from './cursor.js';
import { leaseView, type LeaseFacts } from './present-lease.js';

/** When the story starts. */
export const T0 = Date.parse('2026-11-24T10:00:00.000Z');

/** conductor-z's lease on instance i-42 for a resize, renewed once, with a checkpoint. */
export const RESIZE_LEASE: LeaseFacts = {
  id: '3q2-7wEjQ9mCkBq9xY1fSg',
  holder: 'conductor-z',
  resources: [{ path: 'instances/i-42', mode: 'exclusive' }],
  fencingToken: '1795520400000001',
  state: 'active',
  ttlMs: 30000,
  acquiredAt: T0,
  renewedAt: T0 + 20000,
  expiresAt: T0 + 50000,
  holdDeadline: T0 + 3600000,
  lockDelayMs: 0,
  action: { kind: 'resize', payload: { flavor: 'm1.large' }, attempt: 1, maxAttempts: 3 },
  progress: { step: 'disk-migrated', done: 2, of: 5 },
  orphanId: null,
  acquiredBy: null,
};

export const LEASE_EXAMPLE = leaseView(RESIZE_LEASE, T0 + 21000);

/** A listing page of one item, with the cursor of the next page. */
export function pageExample<T>(item: T) {
  return { items: [item], nextCursor: encodeCursor('1795520400000001') };
}

/** The problem each error status that any route may answer shows by default, as the service words it. */
export const PROBLEM_EXAMPLES = {
  400: problem(
    'invalid_resource',
    'body/resources/0/path must match pattern "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?:/[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}){0,15}$"',
  ),
  413: problem('payload_too_large', 'action.payload is 70000 bytes of JSON; at most 65536 are allowed.'),
  415: problem('unsupported_media_type', 'Send the body as application/json.'),
  429: problem('rate_limited', 'This replica already holds 100 waiting requests of holder conductor-z (WAITERS_MAX_PER_HOLDER); retry later.'),
  503: problem(
    'backend_unavailable',
    'Redis cannot be reached (it is down, restarting or failing over). A request sent while it was unreachable changed nothing; ' +
      'one whose connection broke on the way may have been applied. Retry shortly: an acquire with the same requestId returns ' +
      'the lease if it was granted after all.',
  ),
} satisfies Record<number, Problem>;

/** A status with a default example in PROBLEM_EXAMPLES. */
export type CommonProblemStatus = keyof typeof PROBLEM_EXAMPLES;
