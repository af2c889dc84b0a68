// The `lease` command line against the real service and a real Redis, run as a child
// process the way a shell runs it: what it prints, its exit codes, and `lease run`'s promise
// that the command is gone before its lease can pass to anyone else.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Lease, LeasePage, Orphan, Tombstone } from '../src/client/types.js';
import { useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';
import { running } from './helpers/processes.js';

const { t, redis } = useTestApp({ env: { REDIS_COMMAND_TIMEOUT_MS: '300' } });

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The exit code (128+N for a signal N). */
  exited: Promise<number>;
}

const started: ChildProcess[] = [];
after(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * Starts `lease --url <service> ...args` as a shell would (without building: through tsx),
 * with `env` added to ours (less the CLI's namespace and token, which only `env` may set).
 */
function start(args: string[], { url = t.baseUrl, env = {} }: { url?: string; env?: Record<string, string> } = {}): Running {
  const { LEASE_NAMESPACE: _namespace, LEASE_TOKEN: _token, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--url', url, ...args], {
    cwd: ROOT,
    env: { ...inherited, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function lease(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = start(args);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** `lease ...args`, which must succeed: its stdout. */
async function ok(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await lease(...args);
  assert.equal(code, 0, `lease ${args.join(' ')} exited ${code}: ${stderr}`);
  return stdout;
}


let n = 0;
const unique = (name: string) => `cli/${name}-${++n}-${Date.now().toString(36)}`;

async function leasesOf(holder: string): Promise<Lease[]> {
  return (await t.get(`/v1/leases?holder=${encodeURIComponent(holder)}`)).json<LeasePage>().items;
}

/** The tombstone of an ended lease (GET answers 410 with it). */
async function tombstoneOf(id: string): Promise<Tombstone> {
  const res = await t.get(`/v1/leases/${id}`);
  assert.equal(res.statusCode, 410, res.body);
  return res.json<Tombstone>();
}

describe('lease acquire, ls, show, release', () => {
  test('--json prints the API\'s objects: the lease, the page, the resource view and the tombstone', async () => {
    const path = unique('json');
    const acquired = await lease('--json', 'acquire', `${path}/i-1`, '--holder', 'cli-json', '--ttl', '60000', '--action-kind', 'resize', '--payload', '{"flavor":"m1.large"}');
    assert.equal(acquired.code, 0, acquired.stderr);
    const granted = JSON.parse(acquired.stdout) as Lease;
    assert.equal(granted.state, 'active');
    assert.equal(granted.holder, 'cli-json');
    assert.equal(granted.ttlMs, 60000);
    assert.deepEqual(granted.action?.payload, { flavor: 'm1.large' });

    const listed = await lease('--json', 'ls', '--holder', 'cli-json');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as LeasePage).items.map((l) => l.id), [granted.id]);

    const shown = await lease('show', granted.id, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal((JSON.parse(shown.stdout) as Lease).fencingToken, granted.fencingToken);

    const view = await lease('--json', 'show', path);
    assert.equal(view.code, 0, view.stderr);
    const resource = JSON.parse(view.stdout) as { path: string; coveredBy: Lease[]; below: { count: number; items: Lease[] } };
    assert.equal(resource.path, path);
    assert.deepEqual(resource.below.items.map((l) => l.id), [granted.id]);

    const released = await lease('--json', 'release', granted.id);
    assert.equal(released.code, 0, released.stderr);
    const tombstone = JSON.parse(released.stdout) as Tombstone;
    assert.equal(tombstone.state, 'released');
    assert.equal(tombstone.outcome, 'completed');

    const gone = await lease('--json', 'show', granted.id);
    assert.equal(gone.code, 3, 'an ended lease is exit 3');
    assert.equal(gone.stdout, '');
    const problem = JSON.parse(gone.stderr) as { code: string; state: string };
    assert.equal(problem.code, 'lease_released');
    assert.equal(problem.state, 'released');
  });

  test('human output: a table that names the holder, a tree of what is held below a path, the tombstone on release', async () => {
    const path = unique('human');
    const acquired = await lease('acquire', `${path}/i-1/volumes/v-7`, '--holder', 'cli-human', '--mode', 'shared', '--ttl', '60000');
    assert.equal(acquired.code, 0, acquired.stderr);
    const id = /^id:\s+(\S+)$/m.exec(acquired.stdout)?.[1];
    assert.ok(id, acquired.stdout);
    assert.match(acquired.stdout, /^holder:\s+cli-human$/m);

    const listed = await lease('ls', '--prefix', path);
    assert.equal(listed.code, 0, listed.stderr);
    const [head, row] = listed.stdout.trim().split('\n');
    assert.match(head!, /\bID\s+HOLDER\s+STATE\b/);
    assert.match(row!, new RegExp(`^${id}\\s+cli-human\\s+active\\s+${path}/i-1/volumes/v-7 \\(shared\\)`));

    const tree = await lease('show', path);
    assert.equal(tree.code, 0, tree.stderr);
    assert.equal(tree.stdout.split('\n')[0], path);
    assert.match(tree.stdout, /└── i-1\/volumes\/v-7\n\s+• cli-human {2}active {2}shared {2}lease /);

    const released = await lease('release', id, '--outcome', 'failed');
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, /^state:\s+released \(failed\)$/m);
    assert.equal((await lease('ls', '--prefix', path)).stdout.trim(), 'No leases.');
  });

  test('a conflict exits 2 and names the holder in the way on stderr (with --json, the problem itself)', async () => {
    const path = unique('conflict');
    await ok('acquire', `${path}/i-1`, '--holder', 'cli-first', '--ttl', '60000');

    const human = await lease('acquire', `${path}/i-1/volumes/v-7`, '--holder', 'cli-second');
    assert.equal(human.code, 2);
    assert.equal(human.stdout, '');
    assert.match(human.stderr, /^error: conflict: /);
    assert.match(human.stderr, new RegExp(`${path}/i-1 is held by cli-first \\(lease \\S+, exclusive, active\\)`));

    const json = await lease('--json', 'acquire', `${path}/i-1/volumes/v-7`, '--holder', 'cli-second');
    assert.equal(json.code, 2);
    const problem = JSON.parse(json.stderr) as { code: string; status: number; conflicts: { holder: string; path: string }[] };
    assert.equal(problem.code, 'conflict');
    assert.equal(problem.status, 409);
    assert.deepEqual(problem.conflicts.map((c) => [c.holder, c.path]), [['cli-first', `${path}/i-1`]]);
  });

  test('exit codes: an invalid path is 2, an unknown lease 3 (also one whose id starts with "-"), an unreachable service 4, a usage error 1', async () => {
    const invalid = await lease('acquire', '../etc', '--holder', 'cli-x');
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /invalid_resource/);
    const unknown = await lease('renew', 'no-such-lease');
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /lease_not_found/);
    // Lease ids are base64url: one in 64 starts with "-", and is still an id, not an option.
    const dashed = await lease('release', '-AAAAAAAAAAAAAAAAAAAAA', '--outcome', 'failed');
    assert.equal(dashed.code, 3, dashed.stderr);
    assert.match(dashed.stderr, /lease_not_found: No lease -AAAAAAAAAAAAAAAAAAAAA/);
    const unreachable = await lease('--url', 'http://127.0.0.1:1', 'ls');
    assert.equal(unreachable.code, 4);
    assert.match(unreachable.stderr, /unreachable/);
    const usage = await lease('acquire', 'cli/usage');
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /--holder/);
    const help = await lease('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes:[\s\S]*\n {2}75 {3}run: the lease was lost/);
  });
});

describe('lease --namespace', () => {
  test('--namespace and LEASE_NAMESPACE put the lease in that namespace (the option wins), and a bad name is a usage error', async () => {
    const path = unique('namespace');
    const flagged = JSON.parse(await ok('--json', '--namespace', 'tenant-x', 'acquire', path, '--holder', 'cli-ns')) as Lease;
    assert.equal((await t.get(`/v1/namespaces/tenant-x/leases/${flagged.id}`)).statusCode, 200);
    assert.equal((await t.get(`/v1/leases/${flagged.id}`)).statusCode, 404);

    // The same path, free in another namespace, named by the environment.
    const fromEnv = start(['--json', 'acquire', path, '--holder', 'cli-ns'], { env: { LEASE_NAMESPACE: 'tenant-y' } });
    assert.equal(await fromEnv.exited, 0, fromEnv.stderr());
    const envLease = JSON.parse(fromEnv.stdout()) as Lease;
    assert.equal((await t.get(`/v1/namespaces/tenant-y/leases/${envLease.id}`)).statusCode, 200);
    assert.equal((await t.get(`/v1/leases/${envLease.id}`)).statusCode, 404);
    assert.equal((await t.get(`/v1/namespaces/tenant-x/leases/${envLease.id}`)).statusCode, 404);

    const overridden = start(['--json', '--namespace', 'tenant-x', 'release', flagged.id], { env: { LEASE_NAMESPACE: 'tenant-y' } });
    assert.equal(await overridden.exited, 0, overridden.stderr());
    assert.equal((JSON.parse(overridden.stdout()) as Tombstone).state, 'released');

    const bad = await lease('--namespace', 'Tenant_X', 'ls');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /usage: Invalid namespace "Tenant_X"/);
  });
});

describe('lease orphans', () => {
  test('a revoked action is listed as an orphan, resolving it frees its resources, and claiming with none left exits 3', async () => {
    const path = unique('orphan');
    const kind = `cli-kind-${n}`;
    const acquired = JSON.parse(await ok('--json', 'acquire', path, '--holder', 'cli-o', '--action-kind', kind)) as Lease;
    await ok('revoke', acquired.id);

    const listed = await lease('--json', 'orphans', 'ls', '--kind', kind, '--state', 'pending');
    assert.equal(listed.code, 0, listed.stderr);
    const [orphan] = (JSON.parse(listed.stdout) as { items: Orphan[] }).items;
    assert.ok(orphan, listed.stdout);
    assert.equal(orphan.lastLeaseId, acquired.id);
    assert.equal(orphan.reason, 'revoked');
    const table = await lease('orphans', 'ls', '--kind', kind);
    assert.match(table.stdout, new RegExp(`^${orphan.id}\\s+pending\\s+revoked\\s+${kind}\\s+1/3\\s+${path}\\s+cli-o\\b`, 'm'));

    assert.equal((await lease('acquire', path, '--holder', 'cli-p')).code, 2, 'the orphan keeps its resources reserved');
    const resolved = await lease('--json', 'orphans', 'resolve', orphan.id, '--resolution', 'discard');
    assert.equal(resolved.code, 0, resolved.stderr);
    assert.equal((JSON.parse(resolved.stdout) as Orphan).state, 'resolved');
    assert.equal((await lease('acquire', path, '--holder', 'cli-p')).code, 0, 'resolving freed the resources');

    const none = await lease('orphans', 'claim', '--holder', 'cli-q', '--kinds', kind);
    assert.equal(none.code, 3);
    assert.match(none.stderr, /no_orphan/);
  });
});

describe('lease watch', () => {
  test('prints a line for a grant on its prefix, with the path, holder and lease, and exits 0 on Ctrl-C', async () => {
    const path = unique('watch');
    const watch = start(['watch', '--prefix', path]);
    await waitFor(() => watch.stderr().includes('Watching'), { what: 'the watch to connect', timeoutMs: 20000 });
    const res = await t.post('/v1/leases', { holder: 'cli-watched', resources: [{ path: `${path}/i-1` }] });
    assert.equal(res.statusCode, 201, res.body);
    const { id } = res.json<Lease>();
    const line = await waitFor(() => watch.stdout().split('\n').find((l) => l.includes(' granted ')), { what: 'the granted event' });
    assert.match(line, new RegExp(`^\\S+Z {2}granted {2,}${path}/i-1 {2}holder=cli-watched {2}lease=${id} {2}token=\\d+$`));
    watch.child.kill('SIGINT');
    assert.equal(await watch.exited, 0);
  });
});

describe('lease run', () => {
  test('the command gets the fencing token and lease id; lease run exits with its code and releases the lease', async () => {
    const path = unique('run');
    const script = 'console.log(JSON.stringify({ token: process.env.LEASE_FENCING_TOKEN, id: process.env.LEASE_ID })); process.exit(7)';
    const failed = await lease('run', '--holder', 'cli-run', path, '--', process.execPath, '-e', script);
    assert.equal(failed.code, 7, failed.stderr);
    const seen = JSON.parse(failed.stdout) as { token: string; id: string };
    const tombstone = await tombstoneOf(seen.id);
    assert.equal(String(tombstone.fencingToken), seen.token);
    assert.equal(tombstone.holder, 'cli-run');
    assert.deepEqual([tombstone.state, tombstone.outcome], ['released', 'failed']);

    const ok = await lease('run', '--holder', 'cli-run', path, '--', process.execPath, '-e', 'console.log(process.env.LEASE_ID)');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual([(await tombstoneOf(ok.stdout.trim())).outcome], ['completed']);
    assert.deepEqual(await leasesOf('cli-run'), []);
  });

  test('a grace of 2/3 of the ttl or more is refused before anything is acquired', async () => {
    const refused = await lease('run', '--holder', 'cli-grace', '--ttl', '3000', '--grace', '2000', unique('grace'), '--', 'true');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--grace 2000 must be less than 2\/3 of --ttl 3000/);
    assert.deepEqual(await leasesOf('cli-grace'), []);
  });

  test('Ctrl-C is passed on to the command, and its lease is released abandoned: the action becomes an orphan', async () => {
    const script = "process.on('SIGINT', () => { console.log('got SIGINT'); process.exit(3); }); console.log('ready'); setInterval(() => {}, 1000)";
    const run = start(['run', '--holder', 'cli-int', '--action-kind', 'cli-interrupted', unique('int'), '--', process.execPath, '-e', script]);
    await waitFor(() => run.stdout().includes('ready'), { what: 'the command to start', timeoutMs: 20000 });
    const [held] = await leasesOf('cli-int');
    run.child.kill('SIGINT');
    assert.equal(await run.exited, 3, 'lease run exits with the command\'s code');
    assert.match(run.stdout(), /got SIGINT/);
    // An abandoned action's lease stays, orphaned, holding its resources until the orphan is claimed.
    const orphaned = (await t.get(`/v1/leases/${held!.id}`)).json<Lease>();
    assert.equal(orphaned.state, 'orphaned');
    const orphan = (await t.get(`/v1/orphans/${orphaned.orphanId}`)).json<Orphan>();
    assert.deepEqual([orphan.state, orphan.reason], ['pending', 'abandoned']);
  });

  test('a lease revoked mid-command: SIGTERM, then SIGKILL for a command that ignores it (and what it started), exit 75', async () => {
    const script = [
      "const { spawn } = require('node:child_process');",
      "process.on('SIGTERM', () => console.log('got SIGTERM'));",
      "const g = spawn(process.execPath, ['-e', 'process.on(\"SIGTERM\", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' });",
      'console.log(JSON.stringify({ child: process.pid, grandchild: g.pid }));',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const run = start(['run', '--holder', 'cli-revoked', '--ttl', '1500', unique('revoked'), '--', process.execPath, '-e', script]);
    const pids = await waitFor(
      () => {
        const line = run.stdout().split('\n').find((l) => l.startsWith('{'));
        return line ? (JSON.parse(line) as { child: number; grandchild: number }) : undefined;
      },
      { what: 'the command to start', timeoutMs: 20000 },
    );
    const [held] = await leasesOf('cli-revoked');
    assert.equal((await t.del(`/v1/leases/${held!.id}`)).statusCode, 200);

    assert.equal(await run.exited, 75);
    assert.match(run.stdout(), /got SIGTERM/);
    assert.match(run.stderr(), /lease_revoked/);
    assert.equal(running(pids.child), false, 'the command is gone');
    assert.equal(running(pids.grandchild), false, 'what the command started is gone too');
  });

  test('with Redis paused, the command is killed before the ttl runs out from the last confirmed renewal', async () => {
    // The command prints the wall clock every 10 ms and ignores SIGTERM, so its last line
    // is (at most 10 ms before) the moment SIGKILL ended it.
    const script = "console.log('pid ' + process.pid); process.on('SIGTERM', () => console.log('TERM ' + Date.now())); setInterval(() => console.log('at ' + Date.now()), 10)";
    const run = start(['run', '-v', '--holder', 'cli-paused', '--ttl', '2000', unique('paused'), '--', process.execPath, '-e', script]);
    await waitFor(() => run.stderr().includes('renewed lease'), { what: 'a confirmed renewal', timeoutMs: 20000 });
    const [held] = await leasesOf('cli-paused');
    redis.pause();
    let code: number;
    try {
      code = await run.exited;
    } finally {
      redis.resume();
    }
    assert.equal(code, 75, run.stderr());
    assert.match(run.stderr(), /renewal_overdue/);
    const lines = run.stdout().trim().split('\n');
    const termAt = lines.findIndex((line) => line.startsWith('TERM '));
    assert.ok(termAt >= 0 && termAt < lines.length - 1, 'SIGTERM came first, then the command went on until SIGKILL');
    const lastAt = Number(lines.filter((line) => line.startsWith('at ')).at(-1)!.slice(3));
    assert.equal(running(Number(lines[0]!.slice(4))), false, 'the command is gone');

    // Redis' clock decides: the lease expired ttl after the last renewal Redis recorded.
    const tombstone = await waitFor(async () => {
      const res = await t.get(`/v1/leases/${held!.id}`);
      return res.statusCode === 410 ? res.json<Tombstone>() : undefined;
    }, { what: 'the lease to have expired' });
    assert.equal(tombstone.state, 'expired');
    assert.ok(lastAt < Date.parse(tombstone.endedAt), `the command ran until ${lastAt}, the lease ended at ${Date.parse(tombstone.endedAt)}`);
    // And by the holder's own account: -v reports each renewal when its answer came, after it was sent.
    const confirmed = [...run.stderr().matchAll(/^lease run: (\S+) renewed lease /gm)].map((m) => Date.parse(m[1]!));
    assert.ok(lastAt < confirmed.at(-1)! + 2000, `the command ran until ${lastAt}, ttl after the last confirmed renewal is ${confirmed.at(-1)! + 2000}`);
  });
});
