// The README's access matrix, made from src/auth/policy.ts (the table the service enforces).
// test/readme.test.ts fails when the README's matrix is not this; `npx tsx scripts/access-table.ts` prints it.
import { ROLES } from '../src/auth/grants.js';
import { ACCESS, type AccessRule } from '../src/auth/policy.js';

export function accessTableRows(): string[] {
  const head = `| call | ${ROLES.join(' | ')} |`;
  const rule = `|---|${ROLES.map(() => '---').join('|')}|`;
  const rows = (Object.values(ACCESS) as AccessRule[]).map((access) => {
    const cells = ROLES.map((role) => (!access.roles.includes(role) ? '' : role === 'conductor' && access.holder !== undefined ? 'its holders' : 'yes'));
    return `| ${access.what} | ${cells.join(' | ')} |`;
  });
  return [head, rule, ...rows];
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  process.stdout.write(`${accessTableRows().join('\n')}\n`);
}
