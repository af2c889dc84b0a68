// A resource's mode is one type (src/mode.ts), which the store, the lease view and the
// metrics use; the HTTP schema that validates it (http/schemas/paths.ts) is a description of
// its own, for Ajv and the OpenAPI document. This holds the two to the same values: the types
// when this file is compiled (npm run typecheck), the values the store encodes when it runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Static } from '@sinclair/typebox';
import { Mode as ModeSchema } from '../src/http/schemas/paths.js';
import type { Mode } from '../src/mode.js';
import { decodeResources, encodeResources } from '../src/store/resource-codec.js';

/** True exactly when A and B are the same type, not merely one assignable to the other. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Compiles only when A and B are the same type. */
function sameType<A, B>(proof: Equal<A, B>): boolean {
  return proof;
}

test('the HTTP schema of a mode accepts exactly the modes the store holds, and each is stored and read back as itself', () => {
  assert.ok(sameType<Static<typeof ModeSchema>, Mode>(true));
  const accepted = ModeSchema.anyOf.map((literal) => literal.const);
  assert.deepEqual([...accepted].sort(), ['exclusive', 'shared'] satisfies Mode[]);
  for (const mode of accepted) {
    const claims = [{ path: 'zone/a', mode }];
    assert.deepEqual(decodeResources(encodeResources(claims)), claims, mode);
  }
});
