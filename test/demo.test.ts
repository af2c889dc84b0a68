// `npm run demo` from source (tests have no build): the demo starts the service with its own
// Redis and access control on, and real conductor processes with their own tokens, plays the
// design list's story, and checks it itself. Here its printed timeline is read back: every
// act's lines, in the story's order, the claimer's fencing token above the killed
// conductor's, the killed conductor's token refused a revoke, and nothing left running after.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { isAlive } from '../src/redis/embedded.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

function runDemo(): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/demo/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

/** The lines of the section whose heading starts with `heading`, up to the next heading. */
function section(lines: string[], heading: string): string[] {
  const start = lines.findIndex((line) => line.startsWith(heading));
  assert.ok(start >= 0, `no section "${heading}"`);
  const end = lines.findIndex((line, i) => i > start && /^(\d\. |The )/.test(line));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** Each pattern matches a line after the previous pattern's line; returns the matches. */
function inOrder(lines: string[], patterns: RegExp[]): RegExpMatchArray[] {
  let from = 0;
  return patterns.map((pattern) => {
    const index = lines.findIndex((line, i) => i >= from && pattern.test(line));
    assert.ok(index >= 0, `no line matching ${pattern} after line ${from} of:\n${lines.join('\n')}`);
    from = index + 1;
    return lines[index]!.match(pattern)!;
  });
}

test('the demo plays the seed story with real processes and access control on: one lease and one 409 naming the holder, the volume delete held off, the kill, the takeover with a greater token, the late write fenced off and the late revoke forbidden, the finish', { timeout: 120_000 }, async () => {
  const { code, output } = await runDemo();
  assert.equal(code, 0, output);
  assert.match(output, /The story happened as told/);
  // eslint-disable-next-line no-control-regex -- the escape character is what is looked for: ANSI colour codes start with it
  assert.doesNotMatch(output, /\x1b\[/, 'no colour when the output is not a terminal');
  assert.match(output, /access control on \(AUTH=on\)/);
  const lines = output.split('\n');

  const headings = lines.filter((line) => /^(\d\. |The cast|The service stops)/.test(line)).map((line) => line.split(/[.:]/)[0]);
  assert.deepEqual(headings, ['The cast', '1', '2', '3', '4', '5', '6', 'The service stops as an operator would stop it']);

  const race = section(lines, '1. ');
  for (const racer of ['conductor-a', 'conductor-b']) {
    inOrder(race, [new RegExp(`^\\+ *\\d+ ms  ${racer} +sends POST /v1/leases: resize instances/i-42`)]);
  }
  const [[, winner, winnerToken]] = inOrder(race, [/(conductor-[ab]) +201 acquired instances\/i-42 for resize \(token (\d+), attempt 1\)/]) as [RegExpMatchArray];
  const loser = winner === 'conductor-a' ? 'conductor-b' : 'conductor-a';
  inOrder(race, [new RegExp(`${loser} +409 conflict: instances/i-42 is held by ${winner} \\(exclusive, active`), /sent [\d.]+ ms apart/]);

  inOrder(section(lines, '2. '), [new RegExp(`volume-deleter +409 conflict: instances/i-42 \\(above instances/i-42/volumes/v-7\\) is held by ${winner} \\(exclusive, active\\)`)]);

  inOrder(section(lines, '3. '), [
    new RegExp(`${winner} +snapshot done: the hypervisor accepted it with token ${winnerToken}`),
    new RegExp(`${winner} +disk-copied done`),
    new RegExp(`${winner} +checkpoint "disk-copied" confirmed`),
    new RegExp(`demo +kill -9 ${winner} \\(pid \\d+\\) halfway through flavor-switched`),
  ]);

  const [, [, claimerToken]] = inOrder(section(lines, '4. '), [
    new RegExp(`lease-service +orphan \\w+ published: ${winner}'s lease ran out`),
    new RegExp(`conductor-c +claimed it: token (\\d+) \\(> ${winnerToken}\\), attempt 2, last checkpoint "disk-copied": resumes at flavor-switched`),
  ]) as [RegExpMatchArray, RegExpMatchArray];
  assert.ok(Number(claimerToken) > Number(winnerToken), `the claimer's token ${claimerToken} > the killed conductor's ${winnerToken}`);

  inOrder(section(lines, '5. '), [
    new RegExp(`demo +replays ${winner}'s write of flavor-switched with its old token ${winnerToken}`),
    new RegExp(`hypervisor +409 refused: the fencing check says token ${winnerToken} is not valid; instances/i-42 is held by conductor-c \\(token ${claimerToken}, active\\)`),
    new RegExp(`lease-service +410 lease_expired to ${winner}'s late renew`),
    new RegExp(`lease-service +403 forbidden to ${winner}'s revoke of conductor-c's lease`),
  ]);

  inOrder(section(lines, '6. '), [
    new RegExp(`conductor-c +flavor-switched done: the hypervisor accepted it with token ${claimerToken}`),
    new RegExp(`conductor-c +restarted done: the hypervisor accepted it with token ${claimerToken}`),
    /conductor-c +released its lease: completed/,
    /lease-service +orphan \w+ resolved \(completed\): instances\/i-42 is free/,
    /volume-deleter +201 acquired instances\/i-42\/volumes\/v-7 for delete-volume/,
    new RegExp(`the hypervisor accepted snapshot and disk-copied with token ${winnerToken}, flavor-switched and restarted with token ${claimerToken}`),
  ]);

  inOrder(section(lines, 'The service stops'), [/demo +SIGTERM to the lease service/, /lease-service +stopped \(exit code 0\), and its redis-server/]);

  // Nothing is left behind: the service's redis-server has stopped and its data folder is gone.
  const [, redisPid, dataDir] = output.match(/its own redis-server \(pid (\d+)\) in (\S+)/)!;
  assert.equal(isAlive(Number(redisPid)), false, `redis-server ${redisPid} still runs`);
  assert.equal(existsSync(dataDir!), false, `${dataDir} is still there`);
});
