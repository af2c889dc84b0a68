// The lease as every route answers it (http/present-lease.ts makes it): the lease routes,
// an orphan's claim and a resource view.
import { Type } from '@sinclair/typebox';
import { LEASE_EXAMPLE } from '../examples.js';
import { named, ref } from './components.js';
import { Holder, LeaseId } from './ids.js';
import { Resource } from './paths.js';
import { JsonValue, Timestamp } from './values.js';

export const ActionView = named(
  'Action',
  Type.Object(
    {
      kind: Type.String({ description: 'What the action does, e.g. resize.' }),
      payload: JsonValue(
        'The action\'s parameters, as given at acquire (null when none). Also null in listings without include=payload, in ' +
          'tombstones, and for an orphaned lease: its orphan (orphanId) holds the payload and progress until it is resolved.',
      ),
      attempt: Type.Integer({ minimum: 1, description: 'Which attempt of the action this lease runs (1 for the first).' }),
      maxAttempts: Type.Integer({ minimum: 1, description: 'After this many attempts an orphaned action goes to dead_letter.' }),
      progress: JsonValue('The last progress checkpoint a renew reported (null until one did; null where payload is, for the same reasons).'),
    },
    { description: 'The long action this lease protects; an expired, abandoned or revoked lease with an action becomes an orphan.' },
  ),
);

/** The fields a lease and its tombstone share. */
export const leaseFields = {
  id: ref(LeaseId),
  holder: ref(Holder),
  resources: Type.Array(ref(Resource), { description: 'The resources, in the order they were requested.' }),
  fencingToken: Type.Integer({
    description:
      'Strictly greater than the token of every lease granted before it that conflicted with it, also across Redis restarts ' +
      'and failover. Resource servers reject writes with a token below the largest they have seen.',
    examples: [1764000000000001],
  }),
};

export const LeaseView = named(
  'Lease',
  Type.Object(
    {
      ...leaseFields,
      state: Type.Union([Type.Literal('active'), Type.Literal('orphaned')], {
        description: 'active: held by its holder. orphaned: its holder lost it while it carried an action; its resources stay reserved.',
      }),
      ttlMs: Type.Integer({ description: 'The time to live each renewal grants.' }),
      acquiredAt: Timestamp('When it was granted (Redis clock).'),
      renewedAt: Timestamp('When it was last granted or renewed (Redis clock).'),
      expiresAt: Timestamp('When it expires unless renewed (Redis clock). Never later than holdDeadline.'),
      expiresInMs: Type.Integer({
        description: 'expiresAt minus Redis\' clock when this answer was made (0 once passed). A holder measures its own deadline from when it sent the request.',
      }),
      holdDeadline: Timestamp('acquiredAt + maxHoldMs: the lease ends then even if renewed.'),
      lockDelayMs: Type.Integer({ description: 'How long its resources stay blocked after it expires or is revoked (leases without an action).' }),
      action: Type.Union([ref(ActionView), Type.Null()]),
      orphanId: Type.Union([Type.String(), Type.Null()], { description: 'The orphan its action became, once orphaned.' }),
      acquiredBy: Type.Optional(
        Type.String({ description: 'With access control on: the id of the token that acquired (or claimed) it, a service token\'s id or jwt:<sub>.' }),
      ),
    },
    { description: 'A lease that holds its resources.', examples: [LEASE_EXAMPLE] },
  ),
);
