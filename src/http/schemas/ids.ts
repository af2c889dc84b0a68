// Who holds a lease and which lease it is: the identifiers every route shares.
import { Type } from '@sinclair/typebox';
import { named } from './components.js';

/** Printable: no control, format or unassigned characters. */
export const PRINTABLE_PATTERN = '^[^\\p{C}]+$';

export const Holder = named(
  'Holder',
  Type.String({
    minLength: 1,
    maxLength: 128,
    pattern: PRINTABLE_PATTERN,
    description: 'Who holds the lease, e.g. a conductor id: 1 to 128 printable characters.',
    examples: ['conductor-z'],
  }),
);

export const LeaseId = named(
  'LeaseId',
  Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[A-Za-z0-9_-]+$',
    description: 'Opaque, URL-safe lease id (128 random bits).',
    examples: ['3q2-7wEjQ9mCkBq9xY1fSg'],
  }),
);
