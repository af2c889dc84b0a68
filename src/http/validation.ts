// Request validation with one Ajv per part of the request. Bodies are strict: a JSON body
// with ttlMs "1000" or holder 42 is a client bug and gets a 400, not a silent coercion.
// Query strings and path parameters are text on the wire, so those are coerced.
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
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

/** How a number is written in a query string, path or header: decimal digits, a sign and a fraction at most. */
const DECIMAL = /^-?\d+(\.\d+)?$/;

/** The texts of a coerced part (a flat object of values or lists), before Ajv coerces them in place. */
function textsOf(data: unknown): Map<string, unknown[]> {
  const texts = new Map<string, unknown[]>();
  if (data === null || typeof data !== 'object') return texts;
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) texts.set(key, Array.isArray(value) ? [...(value as unknown[])] : [value]);
  return texts;
}

/** The JSON pointer of the first value Ajv made a number of that was not written as a decimal number, or null. */
function oddNumberAt(data: unknown, texts: Map<string, unknown[]>): string | null {
  if (data === null || typeof data !== 'object') return null;
  for (const [key, value] of Object.entries(data)) {
    // (A key that was not sent holds its default, which Ajv put there.)
    const written = texts.get(key);
    if (!written) continue;
    const values: unknown[] = Array.isArray(value) ? value : [value];
    if (values.some((v, i) => typeof v === 'number' && !(typeof written[i] === 'string' && DECIMAL.test(written[i])))) return `/${key}`;
  }
  return null;
}

/**
 * Ajv's coercion reads a number the way JavaScript does: "Infinity" and "1e309" become
 * Infinity, which then passes type integer and skips minimum and maximum (limit=Infinity
 * reached Lua and failed there, a 500); "0x10", " 1", "+1" and "1e2" pass as 16, 1, 1 and
 * 100. A coerced part with a number not written in decimal digits is refused as Ajv would
 * refuse a word, so the answer is the usual 400.
 */
function refusingOddNumbers(validate: ValidateFunction): ValidateFunction {
  const wrapped = ((data: unknown) => {
    const texts = textsOf(data);
    const valid = validate(data);
    wrapped.errors = validate.errors;
    if (!valid) return false;
    const at = oddNumberAt(data, texts);
    if (at === null) return true;
    const error: ErrorObject = { instancePath: at, schemaPath: '#/type', keyword: 'type', params: { type: 'number' }, message: 'must be a number in decimal digits' };
    wrapped.errors = [error];
    return false;
  }) as ValidateFunction;
  return wrapped;
}

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const part = httpPart ?? 'body';
  const ajv = compilers[part] ?? compilers.body!;
  const validate = ajv.compile(schema as object);
  return ajv === compilers.body ? validate : refusingOddNumbers(validate);
};
