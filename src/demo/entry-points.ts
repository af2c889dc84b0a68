// Where the programs the demo starts are, found from the demo's own location so that the
// same code runs built (dist/demo/main.js, `npm run demo`) and from source
// (`node --import tsx src/demo/main.ts`, what the test does, as tests have no build): the
// service's entry and the conductor sit next to it with the same extension, and TypeScript
// sources need tsx loaded into the child node too.
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Program {
  /** The node executable and its arguments before the script's own. */
  command: string;
  args: string[];
  /** The repository root: `--import tsx` is resolved from the working directory. */
  cwd: string;
}

const here = import.meta.url;
const extension = extname(fileURLToPath(here));
const nodeArgs = extension === '.ts' ? ['--import', 'tsx'] : [];

function program(relative: string, ...args: string[]): Program {
  return {
    command: process.execPath,
    args: [...nodeArgs, fileURLToPath(new URL(`${relative}${extension}`, here)), ...args],
    cwd: fileURLToPath(new URL('../../', here)),
  };
}

/** The lease service, as `npm start` runs it. */
export const serviceProgram = (): Program => program('../main');

/** One conductor process; it reads its orders on stdin (protocol.ts). */
export const conductorProgram = (): Program => program('./conductor');
