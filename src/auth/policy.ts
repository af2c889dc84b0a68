// Who may call what: each /v1 route names its access (in its route config), and this table
// says which roles have it and which holder, if any, a conductor must be allowed to act as.
// The README's access matrix and each operation's OpenAPI description are made from it.
import type { Role } from './grants.js';

/**
 * Where a route's holder is, for a conductor: in the body (acquire, claim), the path (holder
 * renew), the query (a listing must name one of its holders), or the lease the route acts
 * on (checked by the script that would change it, or after a read).
 */
export type HolderSource = 'body' | 'params' | 'query' | 'lease';

export interface AccessRule {
  roles: readonly Role[];
  /** Where a conductor's holder is checked; absent when conductors may not call at all. */
  holder?: HolderSource;
  /** One line for the matrix. */
  what: string;
}

export const ACCESS = {
  acquire: { roles: ['conductor', 'operator'], holder: 'body', what: 'acquire (POST /leases)' },
  renew: { roles: ['conductor', 'operator'], holder: 'lease', what: 'renew, with progress (POST /leases/{id}/renew)' },
  release: { roles: ['conductor', 'operator'], holder: 'lease', what: 'release (POST /leases/{id}/release)' },
  'read-lease': { roles: ['conductor', 'operator', 'reader'], holder: 'lease', what: 'read a lease (GET /leases/{id})' },
  'list-leases': { roles: ['conductor', 'operator', 'reader'], holder: 'query', what: 'list leases (GET /leases; a conductor names holder=)' },
  revoke: { roles: ['operator'], what: 'revoke (DELETE /leases/{id})' },
  'renew-holder': { roles: ['conductor', 'operator'], holder: 'params', what: 'renew a holder\'s leases (POST /holders/{holder}/renew)' },
  'read-resource': { roles: ['operator', 'reader'], what: 'read what holds a path (GET /resources/{path})' },
  'check-fencing': { roles: ['operator', 'resource-server'], what: 'check a fencing token (POST /fencing/check)' },
  'read-orphans': { roles: ['operator', 'reader'], what: 'list and read orphans (GET /orphans, /orphans/{id})' },
  claim: { roles: ['conductor', 'operator'], holder: 'body', what: 'claim an orphan (POST /orphans/claim; a conductor: of its kinds)' },
  resolve: { roles: ['operator'], what: 'resolve an orphan (POST /orphans/{id}/resolve)' },
  events: { roles: ['operator', 'reader'], what: 'read the event stream (GET /events)' },
} as const satisfies Record<string, AccessRule>;

export type Access = keyof typeof ACCESS;

/** What a route's OpenAPI description says about who may call it. */
export function describeAccess(access: Access): string {
  const rule: AccessRule = ACCESS[access];
  const conductor = rule.holder === undefined || !rule.roles.includes('conductor') ? '' : ' (a conductor: only as one of its holders)';
  return `With access control on: roles ${rule.roles.join(', ')}${conductor}; others get 403 forbidden.`;
}
