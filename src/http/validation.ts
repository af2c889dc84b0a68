// Request validation with one Ajv per part of the request. Bodies are strict: a JSON body
// with ttlMs "1000" or holder 42 is a client bug and gets a 400, not a silent coercion.
// Query strings and path parameters are text on the wire, so those are coerced.
import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

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

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = compilers[httpPart ?? 'body'] ?? compilers.body!;
  return ajv.compile(schema as object);
};
