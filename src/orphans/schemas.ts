// Schemas of the orphan queue: the orphan object, and the claim, resolve and listing
// requests. Like the lease schemas, they validate, type the handlers and become OpenAPI.
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.js';
import { named, ref } from '../http/schemas/components.js';
import { Holder, LeaseId, PRINTABLE_PATTERN } from '../http/schemas/ids.js';
import { LeaseView } from '../http/schemas/lease-view.js';
import { Cursor, IncludePayload, Limit } from '../http/schemas/paging.js';
import { Resource } from '../http/schemas/paths.js';
import { Timestamp } from '../http/schemas/values.js';
import { CLAIM_EXAMPLE, ORPHAN_EXAMPLE } from './examples.js';

export const OrphanId = named(
  'OrphanId',
  Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[A-Za-z0-9_-]+$',
    description: 'Opaque, URL-safe orphan id. It stays the same through every attempt of the action.',
    examples: ['9f86d081884c7d659a2feaa0c55ad015'],
  }),
);

export const ActionKind = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: PRINTABLE_PATTERN,
  description: 'An action kind, e.g. resize.',
  examples: ['resize'],
});

export const OrphanStateView = Type.Union(
  [Type.Literal('pending'), Type.Literal('claimed'), Type.Literal('dead_letter'), Type.Literal('resolved')],
  {
    description:
      'pending: waiting to be claimed. claimed: a conductor holds a lease for it. dead_letter: attempted maxAttempts times; never ' +
      'handed out again, its resources stay reserved until an operator resolves it. resolved: over (completed or failed under a claim, or discarded).',
  },
);

export const OrphanView = named(
  'Orphan',
  Type.Object(
    {
      id: ref(OrphanId),
      state: OrphanStateView,
      reason: Type.Union([Type.Literal('expired'), Type.Literal('abandoned'), Type.Literal('revoked')], {
        description: 'How its last lease ended: expired (its holder stopped renewing), abandoned (released so), revoked (by an operator).',
      }),
      resources: Type.Array(ref(Resource), { description: 'The resources it keeps reserved while pending, claimed or dead_letter.' }),
      action: Type.Object(
        {
          kind: Type.String(),
          payload: Type.Unknown({
            description: 'The action\'s parameters, as given at the first acquire; null in listings without include=payload, and once resolved.',
          }),
          attempt: Type.Integer({ minimum: 1, description: 'The attempt that was running when it was (last) orphaned.' }),
          maxAttempts: Type.Integer({ minimum: 1 }),
        },
        { description: 'The action left half-done.' },
      ),
      progress: Type.Unknown({
        description:
          'The last progress checkpoint its holders reported (null if none): a claimer resumes from it, after checking the resource, since the ' +
          'effect of the step running at the death is unknown. Null in listings without include=payload, and once resolved.',
      }),
      lastLeaseId: ref(LeaseId),
      lastHolder: ref(Holder),
      lastFencingToken: Type.Integer({ description: 'The token of the lease that died or gave up; a claim\'s lease always carries a greater one.' }),
      orphanedAt: Timestamp('When its last lease ended (its expiresAt for an expiry), Redis clock.'),
      claimedBy: Type.Union([ref(Holder), Type.Null()], { description: 'The holder of the claim, while claimed (and after a claim completed).' }),
      claimedLeaseId: Type.Union([ref(LeaseId), Type.Null()], { description: 'The claim\'s lease, while claimed (and after a claim completed).' }),
      resolution: Type.Optional(
        Type.Union([Type.Literal('discard'), Type.Literal('completed'), Type.Literal('failed')], {
          description: 'For a resolved orphan: discarded by an operator, or the outcome its claim\'s lease was released with.',
        }),
      ),
      resolvedAt: Type.Optional(Timestamp('For a resolved orphan: when (Redis clock). It is listed for TOMBSTONE_TTL_MS more, then dropped.')),
    },
    { description: 'An action whose holder died, gave up or was revoked before finishing it.', examples: [ORPHAN_EXAMPLE] },
  ),
);

export function orphanRequestSchemas(config: Config) {
  const ClaimBody = Type.Object(
    {
      holder: ref(Holder),
      ttlMs: Type.Optional(
        Type.Integer({
          minimum: config.TTL_MIN_MS,
          maximum: config.TTL_MAX_MS,
          description: `ttlMs of the claim's lease, ${config.TTL_MIN_MS}..${config.TTL_MAX_MS}, default ${config.TTL_DEFAULT_MS}. Its maxHoldMs is the default, ${config.MAX_HOLD_DEFAULT_MS}.`,
        }),
      ),
      kinds: Type.Optional(
        Type.Array(ActionKind, { minItems: 1, maxItems: 32, uniqueItems: true, description: 'Only orphans of these action kinds. Omitted: any kind.' }),
      ),
      waitMs: Type.Optional(
        Type.Integer({
          minimum: 0,
          maximum: config.WAIT_MAX_MS,
          description:
            'Long poll: with none pending, wait up to this long for one (woken by Redis pub/sub when an orphan becomes pending, not by polling). ' +
            'Default 0. Claimers waiting on one replica are served in arrival order.',
        }),
      ),
    },
    {
      additionalProperties: false,
      description: 'Who claims, for which kinds of action, and how long to wait for one.',
      examples: [{ holder: 'conductor-w', kinds: ['resize'], ttlMs: 30000, waitMs: 2000 }],
    },
  );
  const ResolveBody = Type.Object(
    {
      resolution: Type.Literal('discard', {
        description: 'discard: give the action up; the orphan\'s resources are freed at once. Whatever the action left half-done is the operator\'s to clean.',
      }),
    },
    { additionalProperties: false, description: 'How the operator resolves it.', examples: [{ resolution: 'discard' }] },
  );
  const OrphanListQuery = Type.Object(
    {
      kind: Type.Optional({ ...ActionKind, description: 'Only orphans of this action kind.' }),
      state: Type.Optional({ ...OrphanStateView, examples: ['pending'] }),
      limit: Type.Optional(Limit(config)),
      cursor: Type.Optional(Cursor('nextCursor of the previous page. Pages are oldest first (first orphaned).')),
      include: Type.Optional(IncludePayload),
    },
    { additionalProperties: false },
  );
  return { ClaimBody, ResolveBody, OrphanListQuery };
}

export const OrphanIdParams = Type.Object({ id: OrphanId }, { additionalProperties: false });

export const ClaimView = Type.Object(
  {
    orphan: ref(OrphanView),
    lease: ref(LeaseView),
  },
  {
    description:
      'The orphan (now claimed) and the new lease on its resources: a greater fencing token, action.attempt one more than the orphan\'s, ' +
      'and action.progress the last checkpoint of the attempt that died.',
    examples: [CLAIM_EXAMPLE],
  },
);
