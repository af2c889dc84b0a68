// The seed's question with real processes: conductor Z is killed with SIGKILL halfway
// through a resize. Its lease expires, the action becomes an orphan, a second conductor
// claims it, resumes from Z's last checkpoint with a greater fencing token and finishes it,
// while Z's token is refused by the hypervisor. And the other half of the question: a
// conductor that is only slow keeps heartbeating and keeps its lease.
//
// The service runs in this process (real HTTP, real Redis, REAPER_INTERVAL_MS 100); each
// conductor is a child process (test/fixtures/conductor.ts) that prints JSON lines.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, test } from 'node:test';
import type { Options } from './fixtures/conductor.js';
import { startHypervisor, type Hypervisor } from '../src/demo/hypervisor.js';
import { useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const TTL = 1500;
const STEPS = ['disk-copied', 'flavor-switched'];
/** How long after the kill the orphan must be listed: expiry + reaper interval + generous slack. */
const ORPHAN_BOUND_MS = TTL + 2000;

interface ConductorEvent {
  event: string;
  at: number;
  [field: string]: any;
}

interface Conductor {
  name: string;
  child: ChildProcess;
  events: ConductorEvent[];
  /** Resolves once the process has exited and its output is read to the end. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ended(): boolean;
  /** The first event matching, failing at once if the process ends without printing it. */
  next(match: (event: ConductorEvent) => boolean, what: string, timeoutMs?: number): Promise<ConductorEvent>;
}

const { t } = useTestApp();
let hypervisor: Hypervisor;
const conductors = new Set<Conductor>();

// Node 20 runs a file's top-level before hooks concurrently: t.baseUrl is read when needed.
before(async () => {
  hypervisor = await startHypervisor(() => t.baseUrl);
});

/** SIGKILLs every conductor still running: a failed test must not leave one heartbeating. */
async function killConductors() {
  for (const conductor of conductors) {
    if (!conductor.ended()) conductor.child.kill('SIGKILL');
    await conductor.closed;
  }
  conductors.clear();
}
afterEach(killConductors);
after(async () => {
  await killConductors();
  await hypervisor?.close();
});

function spawnConductor(name: string, options: Omit<Options, 'service' | 'hypervisor'>): Conductor {
  const full: Options = { service: t.baseUrl, hypervisor: hypervisor.url, ...options };
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/conductor.ts', JSON.stringify(full)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: ConductorEvent[] = [];
  let partial = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.trim() !== '') events.push(JSON.parse(line) as ConductorEvent);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let hasEnded = false;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      hasEnded = true;
      resolve({ code, signal });
    }),
  );
  const describe = () => `${name} printed:\n${events.map((e) => JSON.stringify(e)).join('\n')}\nstderr:\n${stderr}`;
  const conductor: Conductor = {
    name,
    child,
    events,
    closed,
    ended: () => hasEnded,
    next: (match, what, timeoutMs = 15000) =>
      waitFor(
        () => {
          const found = events.find(match);
          if (found) return found;
          if (hasEnded) throw new Error(`${name} ended (exit ${child.exitCode ?? child.signalCode}) before ${what}; ${describe()}`);
          return undefined;
        },
        { timeoutMs, what: `${name}: ${what}` },
      ),
  };
  conductors.add(conductor);
  return conductor;
}

async function http(method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}
const service = (method: 'GET' | 'POST', path: string, body?: unknown) => http(method, `${t.baseUrl}${path}`, body);

const uniquePath = () => `instances/i-${randomBytes(6).toString('hex')}`;

test('a conductor killed mid-resize leaves an orphan that a second conductor claims, resumes from the checkpoint and completes; the dead one is fenced off', async (ctx) => {
  const path = uniquePath();

  // Conductor A copies the disk (checkpoint), then hangs in its second step until killed.
  const a = spawnConductor('conductor-a', { mode: 'start', holder: 'conductor-a', path, ttlMs: TTL, steps: STEPS, stepMs: [200, 600000] });
  const acquired = await a.next((e) => e.event === 'acquired', 'acquired');
  await a.next((e) => e.event === 'progress' && e.step === 'disk-copied', 'the disk-copied checkpoint');
  a.child.kill('SIGKILL');
  const killedAt = Date.now();
  assert.equal((await a.closed).signal, 'SIGKILL');
  assert.ok(!a.events.some((e) => e.event === 'progress' && e.step === 'flavor-switched'), 'A was killed before its second step');

  // The orphan is listed within expiry + one reaper interval + slack.
  const orphan = await waitFor(
    async () => {
      const listed = await service('GET', '/v1/orphans?state=pending&kind=resize&include=payload');
      assert.equal(listed.status, 200, JSON.stringify(listed.body));
      return (listed.body.items as any[]).find((o) => o.lastLeaseId === acquired.leaseId);
    },
    { timeoutMs: ORPHAN_BOUND_MS + 5000, intervalMs: 20, what: 'the orphan of the killed conductor' },
  );
  const orphanAfterMs = Date.now() - killedAt;
  ctx.diagnostic(`orphan listed ${orphanAfterMs} ms after the SIGKILL (ttl ${TTL} ms)`);
  assert.ok(orphanAfterMs <= ORPHAN_BOUND_MS, `orphan listed ${orphanAfterMs} ms after the kill; bound ${ORPHAN_BOUND_MS} ms`);

  assert.equal(orphan.state, 'pending');
  assert.equal(orphan.reason, 'expired');
  assert.deepEqual(orphan.resources, [{ path, mode: 'exclusive' }]);
  assert.deepEqual(orphan.action, { kind: 'resize', payload: { flavor: 'm1.large' }, attempt: 1, maxAttempts: 3 });
  assert.deepEqual(orphan.progress, { step: 'disk-copied' });
  assert.equal(orphan.lastHolder, 'conductor-a');
  assert.equal(orphan.lastFencingToken, acquired.fencingToken);
  assert.equal(orphan.claimedBy, null);

  // orphanedAt is the dead lease's expiresAt as last renewed.
  const deadLease = await service('GET', `/v1/leases/${acquired.leaseId}`);
  assert.equal(deadLease.status, 200, JSON.stringify(deadLease.body));
  assert.equal(deadLease.body.state, 'orphaned');
  assert.equal(orphan.orphanedAt, deadLease.body.expiresAt);
  const heard = [acquired.expiresAt as string, ...a.events.filter((e) => e.event === 'renewed').map((e) => e.expiresAt as string)].sort();
  const lastHeard = heard[heard.length - 1]!;
  const inFlight = a.events.filter((e) => e.event === 'renewing').length - a.events.filter((e) => e.event === 'renewed').length;
  ctx.diagnostic(`orphanedAt ${orphan.orphanedAt}, last renewal A heard of ${lastHeard}, renews in flight at the kill: ${inFlight}`);
  if (inFlight === 0) assert.equal(orphan.orphanedAt, lastHeard, 'no renew was in flight at the kill: the last renewal A heard of');
  else assert.ok(orphan.orphanedAt >= lastHeard, `a renew was in flight at the kill: ${orphan.orphanedAt} >= ${lastHeard}`);
  // The dead holder renewed nothing after the kill: at most a renew already on the wire landed.
  assert.ok(Date.parse(orphan.orphanedAt) <= killedAt + TTL + 500, `expired ${Date.parse(orphan.orphanedAt) - killedAt} ms after the kill`);

  // While pending, the half-resized instance stays reserved.
  const blocked = await service('POST', '/v1/leases', { holder: 'volume-deleter', resources: [{ path: `${path}/volumes/v-7` }] });
  assert.equal(blocked.status, 409, JSON.stringify(blocked.body));
  assert.equal(blocked.body.conflicts[0].state, 'orphaned');

  // Conductor B claims it and resumes after the checkpoint; its one remaining step takes a second.
  const b = spawnConductor('conductor-b', { mode: 'resume', holder: 'conductor-b', ttlMs: TTL, steps: STEPS, stepMs: [0, 1000], waitMs: 5000 });
  const claimed = await b.next((e) => e.event === 'claimed', 'claimed');
  assert.equal(claimed.orphanId, orphan.id);
  assert.equal(claimed.attempt, 2);
  assert.ok(claimed.fencingToken > acquired.fencingToken, `B's token ${claimed.fencingToken} > A's ${acquired.fencingToken}`);
  assert.deepEqual(claimed.progress, { step: 'disk-copied' });
  assert.deepEqual(claimed.leaseProgress, { step: 'disk-copied' });

  // A zombie A, after the claim: its write is refused and its heartbeat is told it lost the lease.
  const stale = await http('POST', `${hypervisor.url}/write`, { path, fencingToken: acquired.fencingToken, step: 'flavor-switched' });
  assert.equal(stale.status, 409, JSON.stringify(stale.body));
  assert.equal(stale.body.check.valid, false);
  for (const holder of stale.body.check.current) assert.ok(holder.fencingToken > acquired.fencingToken, JSON.stringify(holder));
  const lateRenew = await service('POST', `/v1/leases/${acquired.leaseId}/renew`, { progress: { step: 'flavor-switched' } });
  assert.equal(lateRenew.status, 410, JSON.stringify(lateRenew.body));
  assert.equal(lateRenew.body.code, 'lease_expired');
  assert.equal(lateRenew.body.orphanId, orphan.id);

  const released = await b.next((e) => e.event === 'released', 'released');
  assert.equal(released.status, 200);
  assert.equal(released.outcome, 'completed');
  assert.equal((await b.closed).code, 0);
  assert.deepEqual(
    b.events.filter((e) => e.event === 'progress').map((e) => e.step),
    ['flavor-switched'],
    'B resumed after the checkpoint instead of copying the disk again',
  );

  assert.deepEqual(
    hypervisor.accepted.filter((w) => w.path === path),
    [
      { path, fencingToken: acquired.fencingToken, step: 'disk-copied' },
      { path, fencingToken: claimed.fencingToken, step: 'flavor-switched' },
    ],
  );
  assert.deepEqual(
    hypervisor.refused.filter((w) => w.path === path).map(({ fencingToken, step }) => ({ fencingToken, step })),
    [{ fencingToken: acquired.fencingToken, step: 'flavor-switched' }],
  );

  // The orphan is resolved, and the instance is free again.
  const resolved = await service('GET', `/v1/orphans/${orphan.id}`);
  assert.equal(resolved.status, 200, JSON.stringify(resolved.body));
  assert.equal(resolved.body.state, 'resolved');
  assert.equal(resolved.body.resolution, 'completed');
  assert.equal(resolved.body.claimedBy, 'conductor-b');
  assert.equal(resolved.body.claimedLeaseId, claimed.leaseId);
  const pending = await service('GET', '/v1/orphans?state=pending&kind=resize');
  assert.ok(!(pending.body.items as any[]).some((o) => o.id === orphan.id), 'no longer pending');
  const next = await service('POST', '/v1/leases', { holder: 'next-action', resources: [{ path }] });
  assert.equal(next.status, 201, JSON.stringify(next.body));
  assert.ok(next.body.fencingToken > claimed.fencingToken);
  assert.equal((await service('POST', `/v1/leases/${next.body.id}/release`, {})).status, 200);
});

test('a conductor that is slow, not dead, keeps heartbeating through several ttl periods and keeps its lease', async (ctx) => {
  const path = uniquePath();
  // Two steps of 2.5 s each: the work takes more than three ttl periods.
  const c = spawnConductor('conductor-slow', { mode: 'start', holder: 'conductor-slow', path, ttlMs: TTL, steps: STEPS, stepMs: [2500, 2500] });
  const acquired = await c.next((e) => e.event === 'acquired', 'acquired');

  // Watch from outside while it works, as an operator would: never an orphan, always active.
  const seen: { answeredAt: number; state: string }[] = [];
  const orphansSeen: unknown[] = [];
  const watching = (async () => {
    while (!c.ended()) {
      const lease = await service('GET', `/v1/leases/${acquired.leaseId}`);
      seen.push({ answeredAt: Date.now(), state: lease.status === 200 ? lease.body.state : `${lease.status} ${lease.body?.code}` });
      const listed = await service('GET', '/v1/orphans?kind=resize');
      orphansSeen.push(...(listed.body.items as any[]).filter((o) => o.lastLeaseId === acquired.leaseId));
      await sleep(100);
    }
  })();
  const end = await c.closed;
  await watching;

  assert.equal(end.code, 0, JSON.stringify(c.events));
  const released = c.events.find((e) => e.event === 'released')!;
  assert.equal(released.status, 200);
  assert.equal(released.outcome, 'completed');
  const releasing = c.events.find((e) => e.event === 'releasing')!;
  const workMs = releasing.at - acquired.at;
  // Polls answered before the release was sent; later ones may rightly see it released.
  const whileWorking = seen.filter((poll) => poll.answeredAt < releasing.at);
  ctx.diagnostic(`worked ${workMs} ms (${(workMs / TTL).toFixed(1)} ttl), ${whileWorking.length} outside polls meanwhile`);
  assert.ok(workMs >= 3 * TTL, `the work took ${workMs} ms, more than three ttl periods`);

  assert.deepEqual(c.events.filter((e) => e.event === 'lost' || e.event === 'renew-error'), []);
  const renewed = c.events.filter((e) => e.event === 'renewed');
  assert.ok(renewed.length >= 6, `${renewed.length} renewals`);
  assert.ok(renewed.every((e) => e.status === 200));
  const beats = [acquired.at, ...renewed.map((e) => e.at)];
  const longestGap = Math.max(...beats.slice(1).map((at, i) => at - beats[i]!));
  assert.ok(longestGap < TTL, `renewals at most ${longestGap} ms apart, under the ttl`);

  assert.ok(whileWorking.length >= 10, `${whileWorking.length} polls while it worked`);
  assert.deepEqual([...new Set(whileWorking.map((poll) => poll.state))], ['active']);
  assert.ok(whileWorking[whileWorking.length - 1]!.answeredAt - acquired.at > 3 * TTL, 'still active after three ttl periods');
  assert.deepEqual(orphansSeen, [], 'a lease that keeps being renewed never becomes an orphan');
  assert.deepEqual(
    hypervisor.accepted.filter((w) => w.path === path),
    STEPS.map((step) => ({ path, fencingToken: acquired.fencingToken, step })),
  );
  assert.equal(hypervisor.refused.filter((w) => w.path === path).length, 0);
});
