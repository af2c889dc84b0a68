import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { buildOpenApiDocument, formatDocument, OPENAPI_FILE } from '../src/openapi-document.js';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Document = { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };

test('the committed openapi/openapi.json is what the route schemas generate (run npm run openapi)', async () => {
  const generated = formatDocument(await buildOpenApiDocument());
  assert.equal(readFileSync(OPENAPI_FILE, 'utf8'), generated);
});

test('the document describes every route of the contract with its success and error statuses', async () => {
  const doc = (await buildOpenApiDocument()) as Document;
  const expected: [string, string, string[]][] = [
    ['/v1/leases', 'post', ['201', '200', '400', '409', '503']],
    ['/v1/leases', 'get', ['200', '400']],
    ['/v1/leases/{id}', 'get', ['200', '404', '410']],
    ['/v1/leases/{id}', 'delete', ['200', '404', '410']],
    ['/v1/leases/{id}/renew', 'post', ['200', '404', '410']],
    ['/v1/leases/{id}/release', 'post', ['200', '404', '410']],
    ['/v1/holders/{holder}/renew', 'post', ['200', '400']],
    ['/v1/fencing/check', 'post', ['200', '400']],
    ['/healthz', 'get', ['200']],
    ['/readyz', 'get', ['200', '503']],
  ];
  for (const [path, method, statuses] of expected) {
    const operation = doc.paths[path]?.[method];
    assert.ok(operation, `${method.toUpperCase()} ${path} is documented`);
    for (const status of statuses) assert.ok(operation.responses[status], `${method.toUpperCase()} ${path} documents ${status}`);
  }
  assert.ok(Object.keys(doc.paths).some((p) => p.startsWith('/v1/resources/')), 'the resource view is documented');
});

type Json = Record<string, unknown>;
type Media = { schema?: Json; example?: unknown; examples?: Record<string, { value: unknown }> };
type Operation = {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: { name: string; in: string; description?: string; example?: unknown; schema?: Json }[];
  requestBody?: { description?: string; content: Record<string, Media> };
  responses: Record<string, { description?: string; content?: Record<string, Media> }>;
};

function committedDocument(): { paths: Record<string, Record<string, Operation>>; tags: { name: string }[] } {
  return JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'));
}

/** The committed document with every $ref replaced by what it names (components.schemas). */
async function dereferencedDocument(): Promise<{ paths: Record<string, Record<string, Operation>>; tags: { name: string }[] }> {
  return (await SwaggerParser.dereference(committedDocument() as never)) as never;
}

async function operations(): Promise<[string, Operation][]> {
  return Object.entries((await dereferencedDocument()).paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]): [string, Operation] => [`${method.toUpperCase()} ${path}`, op]),
  );
}

const mediaExamples = (media: Media): unknown[] => [
  ...(media.example !== undefined ? [media.example] : []),
  ...Object.values(media.examples ?? {}).map((named) => named.value),
];

test('the committed document is valid OpenAPI, by a maintained validator (@apidevtools/swagger-parser)', async () => {
  // validate() dereferences in place: give it a copy.
  await assert.doesNotReject(SwaggerParser.validate(committedDocument() as never));
});

test('every operation, parameter, request body and response has a description and an example', async () => {
  const tags = new Set(committedDocument().tags.map((tag) => tag.name));
  const missing: string[] = [];
  for (const [name, op] of await operations()) {
    if (!op.summary) missing.push(`${name}: summary`);
    if (!op.description) missing.push(`${name}: description`);
    for (const tag of op.tags ?? []) if (!tags.has(tag)) missing.push(`${name}: tag ${tag} is not described`);
    for (const param of op.parameters ?? []) {
      if (!param.description && !param.schema?.description) missing.push(`${name}: ${param.in} ${param.name} description`);
      const examples = param.schema?.examples as unknown[] | undefined;
      if (param.example === undefined && param.schema?.example === undefined && !examples?.length) missing.push(`${name}: ${param.in} ${param.name} example`);
    }
    if (op.requestBody) {
      if (!op.requestBody.description) missing.push(`${name}: body description`);
      for (const [type, media] of Object.entries(op.requestBody.content)) if (!mediaExamples(media).length) missing.push(`${name}: body ${type} example`);
    }
    for (const [status, response] of Object.entries(op.responses)) {
      if (!response.description || response.description === 'Default Response') missing.push(`${name}: ${status} description`);
      for (const [type, media] of Object.entries(response.content ?? {})) {
        if (!mediaExamples(media).length && (media.schema?.examples as unknown[] | undefined)?.length === undefined) missing.push(`${name}: ${status} ${type} example`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

test('every example in the document is valid by the schema it illustrates', async () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const failures: string[] = [];
  let checked = 0;
  const check = (where: string, schema: Json | undefined, example: unknown) => {
    if (!schema) return;
    checked++;
    const validate = ajv.compile(schema);
    if (!validate(example)) failures.push(`${where}: ${ajv.errorsText(validate.errors)}`);
  };
  // Examples inside schemas (a lease inside a page, a path inside a conflict), at any depth.
  const walk = (where: string, node: unknown) => {
    if (Array.isArray(node)) return node.forEach((item, i) => walk(`${where}/${i}`, item));
    if (node === null || typeof node !== 'object') return;
    const schema = node as Json;
    if (Array.isArray(schema.examples) && (schema.type !== undefined || schema.anyOf !== undefined)) {
      schema.examples.forEach((example, i) => check(`${where}/examples/${i}`, schema, example));
    }
    for (const [key, value] of Object.entries(schema)) if (key !== 'examples' && key !== 'example') walk(`${where}/${key}`, value);
  };
  for (const [name, op] of await operations()) {
    for (const param of op.parameters ?? []) if (param.example !== undefined) check(`${name} ${param.name}`, param.schema, param.example);
    const media = [
      ...Object.entries(op.requestBody?.content ?? {}).map(([type, m]) => [`${name} body ${type}`, m] as const),
      ...Object.entries(op.responses).flatMap(([status, r]) => Object.entries(r.content ?? {}).map(([type, m]) => [`${name} ${status} ${type}`, m] as const)),
    ];
    for (const [where, m] of media) for (const example of mediaExamples(m)) check(where, m.schema, example);
    walk(name, op);
  }
  assert.deepEqual(failures, []);
  assert.ok(checked > 100, `checked ${checked} examples`);
});

test('the SDK\'s generated types (src/client/api-types.ts) are what openapi-typescript makes of the committed document', () => {
  const generated = spawnSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', OPENAPI_FILE], { encoding: 'utf8' });
  assert.equal(generated.status, 0, generated.stderr);
  assert.equal(readFileSync('src/client/api-types.ts', 'utf8'), generated.stdout, 'run npm run openapi');
});
