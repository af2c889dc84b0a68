// The single description of the lease API: these TypeBox schemas validate requests, type
// the handlers, shape responses, and become the OpenAPI document. Limits come from the
// configuration, so the document states the bounds the running service enforces.
import { Type, type TSchema } from '@sinclair/typebox';
import type { Config } from '../config.js';
import { LEASE_EXAMPLE, pageExample, PROBLEM_EXAMPLES, TOMBSTONE_EXAMPLE } from '../http/examples.js';
import { describeStatus, type Problem } from '../errors.js';

/** 1..16 segments; a segment starts with a letter or digit, so "." and ".." never match. */
export const RESOURCE_PATH_PATTERN =
  '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?:/[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}){0,15}$';
export const RESOURCE_PATH_MAX = 512;
/** Printable: no control, format or unassigned characters. */
export const PRINTABLE_PATTERN = '^[^\\p{C}]+$';

export const ResourcePath = Type.String({
  minLength: 1,
  maxLength: RESOURCE_PATH_MAX,
  pattern: RESOURCE_PATH_PATTERN,
  description:
    'A resource path: 1 to 16 segments joined by "/", each matching ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$, at most 512 characters. ' +
    'A lease on a path covers that path and every path below it. Nothing is normalised: anything else is 400 invalid_resource.',
  examples: ['instances/i-42'],
});

export const Mode = Type.Union([Type.Literal('exclusive'), Type.Literal('shared')], {
  description: 'exclusive conflicts with any lease on a covering or covered path; two shared leases never conflict.',
});

export const Holder = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: PRINTABLE_PATTERN,
  description: 'Who holds the lease, e.g. a conductor id: 1 to 128 printable characters.',
  examples: ['conductor-z'],
});

export const LeaseId = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9_-]+$',
  description: 'Opaque, URL-safe lease id (128 random bits).',
  examples: ['3q2-7wEjQ9mCkBq9xY1fSg'],
});

export const Resource = Type.Object(
  { path: ResourcePath, mode: Mode },
  { additionalProperties: false, description: 'One resource of a lease and the mode it is held in.' },
);

export const Timestamp = (description: string) => Type.String({ format: 'date-time', description, examples: ['2026-11-24T10:00:00.000Z'] });

const JsonValue = (description: string) => Type.Unknown({ description, examples: [{ flavor: 'm1.large' }] });

export const ActionView = Type.Object(
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
);

const leaseFields = {
  id: LeaseId,
  holder: Holder,
  resources: Type.Array(Resource, { description: 'The resources, in the order they were requested.' }),
  fencingToken: Type.Integer({
    description:
      'Strictly greater than the token of every lease granted before it that conflicted with it, also across Redis restarts ' +
      'and failover. Resource servers reject writes with a token below the largest they have seen.',
    examples: [1764000000000001],
  }),
};

export const LeaseView = Type.Object(
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
    action: Type.Union([ActionView, Type.Null()]),
    orphanId: Type.Union([Type.String(), Type.Null()], { description: 'The orphan its action became, once orphaned.' }),
  },
  { description: 'A lease that holds its resources.', examples: [LEASE_EXAMPLE] },
);

/** A listing page: items and the cursor of the next page. */
export function Page<T extends TSchema>(item: T, description: string, exampleItem: unknown) {
  return Type.Object(
    {
      items: Type.Array(item),
      nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last.' }),
    },
    { description, examples: [pageExample(exampleItem)] },
  );
}

export const EndStateView = Type.Union([Type.Literal('released'), Type.Literal('expired'), Type.Literal('revoked')]);
export const OutcomeView = Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('abandoned')]);

const tombstoneFields = {
  ...leaseFields,
  state: EndStateView,
  outcome: Type.Optional(OutcomeView),
  endedAt: Timestamp('When it ended: its expiresAt for an expired lease, else the time of the release or revocation.'),
  action: Type.Union([ActionView, Type.Null()]),
  orphanId: Type.Optional(Type.String({ description: 'The orphan its action became, if it had one.' })),
};

export const TombstoneView = Type.Object(tombstoneFields, {
  description: 'What an ended lease answers, for at least an hour after it ended (TOMBSTONE_TTL_MS).',
  examples: [TOMBSTONE_EXAMPLE],
});

export const ConflictView = Type.Object({
  path: ResourcePath,
  leaseId: LeaseId,
  holder: Holder,
  mode: Mode,
  state: Type.Union([Type.Literal('active'), Type.Literal('orphaned'), Type.Literal('lock_delay'), Type.Literal('waiting')], {
    description:
      'lock_delay: an expired or revoked lease still blocking for its lockDelayMs. waiting: an earlier acquire with waitMs still queued ' +
      'for an overlapping resource (leaseId is the id its lease will have); requests are served in arrival order.',
  }),
});

const problemFields = {
  type: Type.String({ description: 'A URI naming the problem type.' }),
  title: Type.String({ description: 'A short human summary of the problem type.' }),
  status: Type.Integer({ description: 'The HTTP status.' }),
  detail: Type.String({ description: 'What went wrong with this request, for humans.' }),
  code: Type.String({ description: 'Stable machine-readable code.', examples: ['invalid_request'] }),
};

export const ProblemView = Type.Object(problemFields, {
  additionalProperties: true,
  description: 'An RFC 9457 problem (application/problem+json).',
});

export const ConflictProblemView = Type.Object(
  {
    ...problemFields,
    conflicts: Type.Optional(Type.Array(ConflictView, { description: 'The leases in the way (the first few).' })),
  },
  { description: 'code conflict, with the leases in the way; or request_id_reused.', examples: [PROBLEM_EXAMPLES[409]] },
);

export const GoneProblemView = Type.Object(
  { ...problemFields, ...tombstoneFields },
  {
    description: 'code lease_expired, lease_released or lease_revoked, with the lease\'s tombstone as extension members.',
    examples: [PROBLEM_EXAMPLES[410]],
  },
);

export function requestSchemas(config: Config) {
  const ttlMs = Type.Integer({
    minimum: config.TTL_MIN_MS,
    maximum: config.TTL_MAX_MS,
    description: `Time to live in ms, ${config.TTL_MIN_MS}..${config.TTL_MAX_MS}, default ${config.TTL_DEFAULT_MS}. Renew at about a third of it.`,
  });
  const AcquireBody = Type.Object(
    {
      holder: Holder,
      resources: Type.Array(
        Type.Object(
          { path: ResourcePath, mode: Type.Optional({ ...Mode, default: 'exclusive' }) },
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
            payload: Type.Optional(JsonValue(`Any JSON, at most ${config.PAYLOAD_LIMIT_BYTES} bytes.`)),
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
          `A checkpoint of how far the action got (any JSON, at most ${config.PROGRESS_LIMIT_BYTES} bytes); replaces the last one and goes to whoever claims the orphan. Only for leases with an action.`,
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
  const FencingCheckBody = Type.Object(
    {
      path: ResourcePath,
      fencingToken: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The token the writer presented.' }),
    },
    {
      additionalProperties: false,
      description: 'A write a resource server is about to accept: the path it touches and the token that came with it.',
      examples: [{ path: 'instances/i-42', fencingToken: LEASE_EXAMPLE.fencingToken }],
    },
  );
  return { AcquireBody, RenewBody, ReleaseBody, HolderRenewBody, ListQuery, FencingCheckBody };
}

/** A listing's page size. */
export function Limit(config: Config) {
  return Type.Integer({
    minimum: 1,
    maximum: config.LIST_LIMIT_MAX,
    default: config.LIST_LIMIT_DEFAULT,
    description: `Page size, 1..${config.LIST_LIMIT_MAX}, default ${config.LIST_LIMIT_DEFAULT}.`,
    examples: [50],
  });
}

/**
 * Listings leave each action's payload and progress out (null) unless asked: a page then
 * costs the same whatever the payloads hold. With them, a page holds at most
 * PAYLOAD_PAGE_MAX items.
 */
export const PAYLOAD_PAGE_MAX = 100;
export const IncludePayload = Type.Literal('payload', {
  description:
    `payload: answer with each action's payload and progress; without it they are null. With it, a page holds at most ${PAYLOAD_PAGE_MAX} ` +
    `items (a larger limit gives pages of ${PAYLOAD_PAGE_MAX}).`,
  examples: ['payload'],
});

/** The page size of a listing: `limit`, or the default, never more than the payload cap allows. */
export function pageSize(config: Config, limit: number | undefined, include: string | undefined): number {
  const size = limit ?? config.LIST_LIMIT_DEFAULT;
  return include === 'payload' ? Math.min(size, PAYLOAD_PAGE_MAX) : size;
}

/** A listing's cursor: the nextCursor of the page before. */
export function Cursor(description: string) {
  return Type.String({ minLength: 1, maxLength: 200, description, examples: [pageExample(null).nextCursor] });
}

export const LeaseIdParams = Type.Object({ id: LeaseId }, { additionalProperties: false });
export const HolderParams = Type.Object({ holder: Holder }, { additionalProperties: false });

/** Response map for the errors every lease route may answer. */
export function problemResponses(...statuses: number[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) {
    if (status === 409) responses[status] = ConflictProblemView;
    else if (status === 410) responses[status] = GoneProblemView;
    else responses[status] = problemResponse(describeStatus(status), PROBLEM_EXAMPLES[status]!);
  }
  return responses;
}

/** A problem+json response with its own description and example. */
export function problemResponse(description: string, example: Problem): TSchema {
  return { ...ProblemView, description, examples: [example] };
}


