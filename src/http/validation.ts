// Request validation with one Ajv per part of the request. Bodies are strict: a JSON body
// with ttlMs "1000" or holder 42 is a client bug and gets a 400, not a silent coercion.
// Query strings and path parameters are text on the wire, so those are coerced.
import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import type { FastifySchemaCompiler } from 'fastify';
import { component } from './schemas/components.js';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({
    removeAdditional: false,
    useDefaults: true,
    allErrors: false,
    // OpenAPI annotations (examples, description) are not validation keywords.
    strictSchema: false,
    ...options,
  });
  addFormats(ajv);
  return ajv;
}

const compilers: Record<string, Ajv> = {
  body: makeAjv({ coerceTypes: false }),
  querystring: makeAjv({ coerceTypes: true }),
  params: makeAjv({ coerceTypes: true }),
  headers: makeAjv({ coerceTypes: true }),
};

const registered = new Set<string>();

/**
 * Registers the named schemas (app.addSchema registers them for serialisation and the
 * document) with every part's Ajv too, so that a route schema's $ref resolves. The Ajvs are
 * shared by every app of the process, and the named schemas do not depend on configuration.
 */
export function addSharedSchemas(schemas: TSchema[]): void {
  for (const schema of schemas) {
    const shared = component(schema);
    if (registered.has(shared.$id)) continue;
    registered.add(shared.$id);
    for (const ajv of Object.values(compilers)) ajv.addSchema(shared);
  }
}

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = compilers[httpPart ?? 'body'] ?? compilers.body!;
  return ajv.compile(schema as object);
};
