// The error catalogue, held as Fastify's test/internals/errors.test.js holds its own: the
// count is pinned (a new code is a decision, not an accident), every code is answered
// somewhere in the service or reserved with a reason, and the OpenAPI document names every
// code the service answers.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROBLEMS } from '../src/errors.js';

const SRC = new URL('../src/', import.meta.url).pathname;
/** Codes in the catalogue that nothing answers yet, and why. */
const RESERVED: Record<string, string> = {};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'client' ? [] : sources(path);
    return path.endsWith('.ts') && !path.endsWith('errors.ts') ? [readFileSync(path, 'utf8')] : [];
  });
}

test('the catalogue has 23 codes, each with a status, a title and a meaning', () => {
  assert.equal(Object.keys(PROBLEMS).length, 23, 'a code was added or removed: update this count on purpose');
  for (const [code, entry] of Object.entries(PROBLEMS)) {
    assert.match(code, /^[a-z]+(_[a-z]+)*$/, code);
    assert.ok(entry.status >= 400 && entry.status < 600, code);
    assert.ok(entry.title.length > 0 && entry.meaning.length > 0, code);
  }
});

test('every code is answered somewhere in the service, or reserved with a reason', () => {
  const code = sources(SRC).join('\n');
  for (const name of Object.keys(PROBLEMS)) {
    if (RESERVED[name]) {
      assert.ok(!code.includes(`'${name}'`), `${name} is reserved (${RESERVED[name]}) but answered: take it out of RESERVED`);
      continue;
    }
    assert.ok(code.includes(`'${name}'`), `${name} is in the catalogue but nothing answers it`);
  }
});

test('the OpenAPI document names every code the service answers', () => {
  const document = readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8');
  for (const name of Object.keys(PROBLEMS)) {
    if (RESERVED[name] || name === 'internal_error') continue;
    assert.ok(document.includes(name), `${name} is not in openapi/openapi.json`);
  }
});
