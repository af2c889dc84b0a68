// Shared schemas by name: each is registered once (app.addSchema and the validators' Ajv) under
// its $id, routes and other schemas refer to it with $ref, and the OpenAPI document lists it
// once under components.schemas instead of inlining it wherever it is used.
import { Type, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

const ComponentName = Symbol('ComponentName');

type Named = TSchema & { [ComponentName]?: string };

/** Names a schema; the schema itself stays $id-free, so it can still be inlined (parameters). */
export function named<T extends TSchema>(name: string, schema: T): T {
  return Object.assign(schema, { [ComponentName]: name });
}

function nameOf(schema: TSchema): string {
  const name = (schema as Named)[ComponentName];
  if (name === undefined) throw new Error('not a named schema');
  return name;
}

/** A $ref to a named schema, typed as the schema it names. */
export function ref<T extends TSchema>(schema: T, options: SchemaOptions = {}): TUnsafe<Static<T>> {
  return Type.Unsafe<Static<T>>({ $ref: `${nameOf(schema)}#`, ...options });
}

/**
 * A response that is a named schema, with its description and examples (the schema's own unless
 * given): OpenAPI takes a response's description and its media example from there.
 * @fastify/swagger drops what stands beside a $ref, so the $ref is wrapped in an allOf.
 */
export function refResponse<T extends TSchema>(schema: T, options: SchemaOptions = {}): TUnsafe<Static<T>> {
  const { description, examples } = schema as { description?: string; examples?: unknown[] };
  return Type.Unsafe<Static<T>>({
    allOf: [{ $ref: `${nameOf(schema)}#` }],
    ...(description === undefined ? {} : { description }),
    ...(examples === undefined ? {} : { examples }),
    ...options,
  });
}

/** What app.addSchema and Ajv register: the schema under its $id. */
export function component(schema: TSchema): TSchema & { $id: string } {
  return { ...schema, $id: nameOf(schema) };
}
