// The single description of the lease API: these TypeBox schemas validate requests, type
// the handlers, shape responses, and become the OpenAPI document. Limits come from the
// configuration, so the document states the bounds the running service enforces. What other
// routes share with these (paths, ids, pages, problems, the lease view) is in http/schemas/.
import { Type, type TSchema } from '@sinclair/typebox';
import type { Config } from '../config.js';
import { describeStatus } from '../errors.js';
import type { CommonProblemStatus } from '../http/examples.js';
import { named, ref, refResponse } from '../http/schemas/components.js';
import { Holder, LeaseId, PRINTABLE_PATTERN } from '../http/schemas/ids.js';
import { ActionView, leaseFields } from '../http/schemas/lease-view.js';
import { Cursor, IncludePayload, Limit } from '../http/schemas/paging.js';
import { Mode, ResourcePath } from '../http/schemas/paths.js';
import { problemFields, problemResponse, problemResponses } from '../http/schemas/problems.js';
import { JsonValue, Timestamp } from '../http/schemas/values.js';
import { LEASE_PROBLEM_EXAMPLES, TOMBSTONE_EXAMPLE } from './examples.js';
import { MAX_JSON_DEPTH } from './json-limits.js';

/** What becomes of numbers in client JSON, said where payloads and progress are taken. */
const JSON_NUMBERS =
  'Numbers are read as IEEE-754 doubles, as JSON.parse reads them: one too large for a double (such as 1e309) is 400, and an integer past 2^53 comes back rounded (send such ids as strings).';

type LeaseProblemStatus = keyof typeof LEASE_PROBLEM_EXAMPLES;

export const EndStateView = Type.Union([Type.Literal('released'), Type.Literal('expired'), Type.Literal('revoked')]);
export const OutcomeView = Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('abandoned')]);

const tombstoneFields = {
  ...leaseFields,
  state: EndStateView,
  outcome: Type.Optional(OutcomeView),
  endedAt: Timestamp('When it ended: its expiresAt for an expired lease, else the time of the release or revocation.'),
  action: Type.Union([ref(ActionView), Type.Null()]),
  orphanId: Type.Optional(Type.String({ description: 'The orphan its action became, if it had one.' })),
  acquiredBy: Type.Optional(Type.String({ description: 'With access control on: the id of the token that acquired (or claimed) it.' })),
};

export const TombstoneView = named(
  'Tombstone',
  Type.Object(tombstoneFields, {
    description: 'What an ended lease answers, for at least an hour after it ended (TOMBSTONE_TTL_MS).',
    examples: [TOMBSTONE_EXAMPLE],
  }),
);

export const ConflictView = named(
  'Conflict',
  Type.Object({
    path: ref(ResourcePath),
    leaseId: ref(LeaseId),
    holder: ref(Holder),
    mode: ref(Mode),
    state: Type.Union([Type.Literal('active'), Type.Literal('orphaned'), Type.Literal('lock_delay'), Type.Literal('waiting')], {
      description:
        'lock_delay: an expired or revoked lease still blocking for its lockDelayMs. waiting: an earlier acquire with waitMs still queued ' +
        'for an overlapping resource (leaseId is the id its lease will have); requests are served in arrival order.',
    }),
  }),
);

export const ConflictProblemView = named(
  'ConflictProblem',
  Type.Object(
    {
      ...problemFields,
      conflicts: Type.Optional(Type.Array(ref(ConflictView), { description: 'The leases in the way (the first few).' })),
    },
    { description: 'code conflict, with the leases in the way; or request_id_reused.', examples: [LEASE_PROBLEM_EXAMPLES[409]] },
  ),
);

export const GoneProblemView = named(
  'GoneProblem',
  Type.Object(
    { ...problemFields, ...tombstoneFields },
    {
      description: 'code lease_expired, lease_released or lease_revoked, with the lease\'s tombstone as extension members.',
      examples: [LEASE_PROBLEM_EXAMPLES[410]],
    },
  ),
);

export function requestSchemas(config: Config) {
  const ttlMs = Type.Integer({
    minimum: config.TTL_MIN_MS,
    maximum: config.TTL_MAX_MS,
    description: `Time to live in ms, ${config.TTL_MIN_MS}..${config.TTL_MAX_MS}, default ${config.TTL_DEFAULT_MS}. Renew at about a third of it.`,
  });
  const AcquireBody = Type.Object(
    {
      holder: ref(Holder),
      resources: Type.Array(
        Type.Object(
          { path: ref(ResourcePath), mode: Type.Optional({ ...Mode, default: 'exclusive' }) },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: 64, description: 'All granted together or none. Two that cover each other are 400 overlapping_resources.' },
      ),
      ttlMs: Type.Optional(ttlMs),
      waitMs: Type.Optional(
        Type.Integer({
          minimum: 0,
          maximum: config.WAIT_MAX_MS,
          description: `How long to wait for a conflict to clear, 0..${config.WAIT_MAX_MS} ms, default 0 (answer 409 at once). The request keeps its place in the queue of overlapping requests meanwhile.`,
        }),
      ),
      action: Type.Optional(
        Type.Object(
          {
            kind: Type.String({ minLength: 1, maxLength: 128, pattern: PRINTABLE_PATTERN, description: 'What the action does, e.g. resize.' }),
            payload: Type.Optional(JsonValue(`Any JSON, at most ${config.PAYLOAD_LIMIT_BYTES} bytes, nested at most ${MAX_JSON_DEPTH} deep. ${JSON_NUMBERS}`)),
            maxAttempts: Type.Optional(
              Type.Integer({ minimum: 1, maximum: config.MAX_ATTEMPTS_MAX, description: `Default ${config.MAX_ATTEMPTS_DEFAULT}.` }),
            ),
          },
          { additionalProperties: false, description: 'The long action this lease protects.' },
        ),
      ),
      requestId: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 128,
          pattern: PRINTABLE_PATTERN,
          description:
            'Makes the acquire safe to retry: the same holder and requestId while that lease is active answers the same lease with 200. ' +
            'Reusing it for other resources (in any order), another action or other ttlMs/maxHoldMs/lockDelayMs is 409 request_id_reused. Once that lease has ended, the requestId grants anew.',
        }),
      ),
      maxHoldMs: Type.Optional(
        Type.Integer({
          minimum: config.MAX_HOLD_MIN_MS,
          maximum: config.MAX_HOLD_MAX_MS,
          description: `The lease ends this long after it was granted, however often renewed. Default ${config.MAX_HOLD_DEFAULT_MS}.`,
        }),
      ),
      lockDelayMs: Type.Optional(
        Type.Integer({
          minimum: 0,
          maximum: config.LOCK_DELAY_MAX_MS,
          description: 'For a lease without an action: how long its resources stay blocked after it expires or is revoked (not released). Default 0.',
        }),
      ),
    },
    {
      additionalProperties: false,
      description: 'What to lease, for how long, and the action it protects.',
      // Named examples: Swagger UI offers them in a list and "Try it out" starts with the first.
      'x-examples': {
        instance: {
          summary: 'An instance, exclusively, for 30 s',
          value: { holder: 'conductor-z', resources: [{ path: 'instances/i-42', mode: 'exclusive' }], ttlMs: 30000 },
        },
        resize: {
          summary: 'A resize: an action that becomes an orphan if the conductor dies; safe to retry by requestId',
          value: {
            holder: 'conductor-z',
            resources: [{ path: 'instances/i-43', mode: 'exclusive' }],
            ttlMs: 30000,
            action: { kind: 'resize', payload: { flavor: 'm1.large' }, maxAttempts: 3 },
            requestId: 'resize-i-43-7f3a',
          },
        },
        volumeDelete: {
          summary: 'A volume delete that waits up to 10 s for an action on its instance to finish',
          value: { holder: 'conductor-y', resources: [{ path: 'instances/i-44/volumes/v-7', mode: 'exclusive' }], waitMs: 10000 },
        },
        shared: {
          summary: 'Two resources in one grant, one shared (readers of the network do not exclude each other)',
          value: {
            holder: 'conductor-x',
            resources: [
              { path: 'instances/i-45', mode: 'exclusive' },
              { path: 'networks/n-1', mode: 'shared' },
            ],
          },
        },
      },
    },
  );
  const RenewBody = Type.Object(
    {
      ttlMs: Type.Optional({ ...ttlMs, description: `${ttlMs.description} Omitted: the lease's own ttlMs.` }),
      progress: Type.Optional(
        JsonValue(
          `A checkpoint of how far the action got (any JSON, at most ${config.PROGRESS_LIMIT_BYTES} bytes, nested at most ${MAX_JSON_DEPTH} deep); replaces the last one and goes to whoever claims the orphan. Only for leases with an action. ${JSON_NUMBERS}`,
        ),
      ),
    },
    {
      additionalProperties: false,
      description: 'Optional: a new ttlMs, and a progress checkpoint. An empty body (or none) renews for the lease\'s own ttlMs.',
      examples: [{ progress: { step: 'disk-migrated', done: 2, of: 5 } }],
    },
  );
  const ReleaseBody = Type.Object(
    {
      outcome: Type.Optional({
        ...OutcomeView,
        default: 'completed',
        description: 'completed (default) or failed: the resources are free at once. abandoned: a lease with an action becomes an orphan for someone else.',
      }),
    },
    { additionalProperties: false, description: 'How the work ended. An empty body (or none) means completed.', examples: [{ outcome: 'completed' }] },
  );
  const HolderRenewBody = Type.Object(
    {
      ttlMs: Type.Optional({ ...ttlMs, description: `${ttlMs.description} Omitted: each lease's own ttlMs.` }),
      cursor: Type.Optional(Cursor('nextCursor of the previous answer: renew the leases after those it renewed.')),
    },
    {
      additionalProperties: false,
      description: `Optional: one ttlMs for every lease renewed, and where to go on. One call renews at most ${config.HOLDER_RENEW_MAX} leases (HOLDER_RENEW_MAX). An empty body (or none) is fine.`,
      examples: [{ ttlMs: 30000 }],
    },
  );
  const ListQuery = Type.Object(
    {
      holder: Type.Optional(Holder),
      prefix: Type.Optional({ ...ResourcePath, description: 'Only leases holding this path or something below it.' }),
      state: Type.Optional(
        Type.Union([Type.Literal('active'), Type.Literal('orphaned')], {
          description: 'Only active leases, or only orphaned ones (their holder lost them; they await a claim).',
          examples: ['active'],
        }),
      ),
      limit: Type.Optional(Limit(config)),
      cursor: Type.Optional(Cursor('nextCursor of the previous page. Pages are in grant order and stay put while leases renew.')),
      include: Type.Optional(IncludePayload),
    },
    { additionalProperties: false },
  );
  return { AcquireBody, RenewBody, ReleaseBody, HolderRenewBody, ListQuery };
}

export const LeaseIdParams = Type.Object({ id: LeaseId }, { additionalProperties: false });
export const HolderParams = Type.Object({ holder: Holder }, { additionalProperties: false });

/** Response map for the errors a lease route may answer: those of any route, and the lease's own. */
export function leaseProblemResponses(...statuses: (CommonProblemStatus | LeaseProblemStatus)[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) {
    if (status === 409) responses[status] = refResponse(ConflictProblemView);
    else if (status === 410) responses[status] = refResponse(GoneProblemView);
    else if (status === 404) responses[status] = problemResponse(describeStatus(status), LEASE_PROBLEM_EXAMPLES[status]);
    else Object.assign(responses, problemResponses(status));
  }
  return responses;
}
