import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { buildOpenApiDocument, formatDocument, OPENAPI_FILE } from '../src/http/openapi-document.js';

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
