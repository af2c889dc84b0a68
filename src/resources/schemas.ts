// Schemas of the resource routes' requests. Like the lease schemas, they validate, type the
// handlers and become OpenAPI.
import { Type } from '@sinclair/typebox';
import { LEASE_EXAMPLE } from '../http/examples.js';
import { ref } from '../http/schemas/components.js';
import { ResourcePath } from '../http/schemas/paths.js';

export const FencingCheckBody = Type.Object(
  {
    path: ref(ResourcePath),
    fencingToken: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The token the writer presented.' }),
  },
  {
    additionalProperties: false,
    description: 'A write a resource server is about to accept: the path it touches and the token that came with it.',
    examples: [{ path: 'instances/i-42', fencingToken: LEASE_EXAMPLE.fencingToken }],
  },
);
