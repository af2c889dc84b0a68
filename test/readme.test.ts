import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { configTableRows } from '../scripts/config-table.js';

test('the README\'s configuration table lists every variable of src/config.ts with its default, range and meaning', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const rows = readme.split('\n').filter((line) => /^\| `[A-Z_]+` \|/.test(line));
  assert.deepEqual(rows, configTableRows(), 'regenerate it with: npx tsx scripts/config-table.ts');
});
