// `npm run lint`'s check of the Dockerfile (or of the files named as arguments), with
// dockerfile-utils' validator, the one behind the Docker language server's diagnostics in
// editors. It reports what `docker build` would refuse (an unknown instruction or flag, a
// missing argument, a bad duration, port or escape directive) and the style problems below.
// No machine here has a Docker engine, so this is the check a Dockerfile gets before a build.
// Its own CLI fails only on errors and has no configuration file: here every rule below is
// an error, and a rule wrong for our Dockerfile would be set to IGNORE with the reason.
import { readFileSync } from 'node:fs';
import { validate, ValidationSeverity } from 'dockerfile-utils';

const { ERROR } = ValidationSeverity;

/** dockerfile-utils' configurable rules (the others are errors always). */
const SETTINGS = {
  deprecatedMaintainer: ERROR,
  directiveCasing: ERROR,
  emptyContinuationLine: ERROR,
  instructionCasing: ERROR,
  instructionCmdMultiple: ERROR,
  instructionEntrypointMultiple: ERROR,
  instructionHealthcheckMultiple: ERROR,
  instructionJSONInSingleQuotes: ERROR,
  instructionWorkdirRelative: ERROR,
};

const files = process.argv.length > 2 ? process.argv.slice(2) : ['Dockerfile'];
let problems = 0;
for (const file of files) {
  const diagnostics = validate(readFileSync(file, 'utf8'), SETTINGS).sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  for (const { range, message } of diagnostics) {
    problems++;
    console.log(`${file}:${range.start.line + 1}:${range.start.character + 1}: ${message}`);
  }
}
if (problems > 0) {
  console.log(`${problems} problem(s) in ${files.join(', ')} (dockerfile-utils; a line may opt out with a "# dockerfile-utils: ignore" comment above it, with the reason)`);
  process.exitCode = 1;
}
