// The README's configuration table, made from the schema in src/config.ts (the one source of
// every variable, its default, range and meaning). test/readme.test.ts fails when the table
// in the README is not this; `npx tsx scripts/config-table.ts` prints it.
import type { TSchema } from '@sinclair/typebox';
import { ConfigSchema } from '../src/config.js';

function defaultAndRange(schema: TSchema): string {
  if (schema.default === undefined) return '(unset)';
  if (schema.type === 'integer') return `\`${schema.default}\` (${schema.minimum}..${schema.maximum})`;
  if (Array.isArray(schema.anyOf)) return `\`${schema.default}\` (${(schema.anyOf as TSchema[]).map((choice): unknown => choice.const).join(', ')})`;
  return `\`${schema.default}\``;
}

export function configTableRows(): string[] {
  return (Object.entries(ConfigSchema.properties) as [string, TSchema][]).map(
    ([name, schema]) => `| \`${name}\` | ${defaultAndRange(schema)} | ${schema.description} |`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  process.stdout.write(`${configTableRows().join('\n')}\n`);
}
