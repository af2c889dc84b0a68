// The event of GET /v1/events, as the `data:` of each frame: one component of the OpenAPI
// document (Event), which the route builds and the SDK reads (its LeaseEvent).
import { Type, type Static } from '@sinclair/typebox';
import { named, ref } from '../http/schemas/components.js';
import { Holder, LeaseId } from '../http/schemas/ids.js';
import { ResourcePath } from '../http/schemas/paths.js';

export const EventView = named(
  'Event',
  Type.Object(
    {
      id: Type.String({ description: 'The Redis stream entry id; its first part is when the event was recorded (Redis\' clock, ms).' }),
      type: Type.String({
        description: 'granted, renewed, released, expired, revoked, orphaned, dead_lettered, claimed or resolved.',
        examples: ['granted'],
      }),
      at: Type.String({
        format: 'date-time',
        description: 'When it happened (an expiry\'s is when the lease ran out, not when it was noticed).',
        examples: ['2026-11-24T10:00:00.000Z'],
      }),
      leaseId: Type.Optional(ref(LeaseId)),
      orphanId: Type.Optional(Type.String({ description: 'The orphan it concerns, for an orphan\'s events.' })),
      holder: Type.Optional(ref(Holder)),
      paths: Type.Array(ref(ResourcePath), { description: 'The resource paths it concerns.' }),
      fencingToken: Type.Optional(Type.Integer({ description: 'The fencing token of the lease it concerns.' })),
      actor: Type.Optional(
        Type.String({ description: 'With access control on: the id of the token whose request made it (a service token\'s id or jwt:<sub>); absent for expiries.' }),
      ),
    },
    {
      description: 'One lifecycle event, as the data: of a GET /v1/events frame.',
      examples: [
        {
          id: '1795570469037-0',
          type: 'granted',
          at: '2026-11-24T10:00:00.000Z',
          leaseId: '3q2-7wEjQ9mCkBq9xY1fSg',
          holder: 'conductor-z',
          paths: ['instances/i-42'],
          fencingToken: 1795520400000001,
        },
      ],
    },
  ),
);

export type LeaseEvent = Static<typeof EventView>;
