import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { accessTableRows } from '../scripts/access-table.js';
import { configTableRows } from '../scripts/config-table.js';

test('the README\'s configuration table lists every variable of src/config.ts with its default, range and meaning', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const rows = readme.split('\n').filter((line) => /^\| `[A-Z_]+` \|/.test(line));
  assert.deepEqual(rows, configTableRows(), 'regenerate it with: npx tsx scripts/config-table.ts');
});

test('the README\'s access matrix is the one the service enforces (src/auth/policy.ts)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const [head] = accessTableRows();
  const start = readme.split('\n').indexOf(head!);
  assert.ok(start >= 0, 'the README has an access matrix');
  const rows = readme.split('\n').slice(start, start + accessTableRows().length);
  assert.deepEqual(rows, accessTableRows(), 'regenerate it with: npx tsx scripts/access-table.ts');
});
