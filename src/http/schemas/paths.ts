// Resource paths and the modes they are held in: the schemas every route that names a
// resource shares.
import { Type } from '@sinclair/typebox';
import { named, ref } from './components.js';

/** 1..16 segments; a segment starts with a letter or digit, so "." and ".." never match. */
export const RESOURCE_PATH_PATTERN =
  '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?:/[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}){0,15}$';
export const RESOURCE_PATH_MAX = 512;

export const ResourcePath = named(
  'ResourcePath',
  Type.String({
    minLength: 1,
    maxLength: RESOURCE_PATH_MAX,
    pattern: RESOURCE_PATH_PATTERN,
    description:
      'A resource path: 1 to 16 segments joined by "/", each matching ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$, at most 512 characters. ' +
      'A lease on a path covers that path and every path below it. Nothing is normalised: anything else is 400 invalid_resource.',
    examples: ['instances/i-42'],
  }),
);

export const Mode = named(
  'Mode',
  Type.Union([Type.Literal('exclusive'), Type.Literal('shared')], {
    description: 'exclusive conflicts with any lease on a covering or covered path; two shared leases never conflict.',
  }),
);

export const Resource = named(
  'Resource',
  Type.Object(
    { path: ref(ResourcePath), mode: ref(Mode) },
    { additionalProperties: false, description: 'One resource of a lease and the mode it is held in.' },
  ),
);
