// A grant lost in a Sentinel failover: the old primary acknowledged it, but with asynchronous
// replication it never reached the replica that was promoted, so on the new primary the lease
// does not exist at all (no lease, no tombstone). Simulated here by taking out of Redis, in
// one script, everything the grant (and its renewals) wrote there: the lease hash, its
// entries in the indexes, its requestId key and its events. The fencing counter stays, as a
// new primary would still hold a counter (an older one). Its holder's next renew then answers
// 404 lease_not_found, and the SDK, withLease and `lease run` treat that as lost at once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LeaseClient, LeaseLostError, type Lease, type RenewRequest } from '../src/client/index.js';
import type { CallOptions } from '../src/client/lease-client.js';
import { EXIT } from '../src/cli/exit-codes.js';
import { acquireLease, useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';
import { running } from './helpers/processes.js';

const { t } = useTestApp();

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
/** The ttl of the leases here: renewed every second, so "at the next heartbeat" and "at the ttl" are far apart. */
const TTL_MS = 3000;
/** How late the next heartbeat's answer may come on a slow machine (the revoke test of with-lease.test.ts allows as much). */
const SLACK_MS = 500;

let n = 0;
const unique = (name: string) => `lost-grant/${name}-${++n}-${Date.now().toString(36)}`;

/**
 * Every key of the app's prefix with its content, streams included, except the fencing
 * counter (kept on purpose) and the reaper's leadership key (which comes and goes by itself).
 */
async function contents(): Promise<Record<string, unknown>> {
  const prefix = `{${t.config.KEY_PREFIX}}:`;
  const snapshot = await t.snapshotKeys();
  delete snapshot[`${prefix}token`];
  delete snapshot[`${prefix}reaper`];
  for (const key of Object.keys(snapshot)) {
    if (snapshot[key] === 'stream') snapshot[key] = await t.redis.xrange(key, '-', '+');
  }
  return snapshot;
}

// One script, so that no renew or sweep runs halfway through: what a replica that never
// got the grant holds is one consistent state too.
const FORGET_LEASE = `
local prefix, id = ARGV[1], ARGV[2]
local touched = {}
for _, key in ipairs(redis.call('KEYS', prefix .. '*')) do
  if key ~= prefix .. 'token' then
    local kind = redis.call('TYPE', key).ok
    local hit = false
    if kind == 'hash' then
      if key == prefix .. 'l:' .. id then redis.call('DEL', key); hit = true end
    elseif kind == 'zset' then
      hit = redis.call('ZREM', key, id) == 1
    elseif kind == 'string' then
      if redis.call('GET', key) == id then redis.call('DEL', key); hit = true end
    elseif kind == 'stream' then
      for _, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
        local fields = entry[2]
        for i = 2, #fields, 2 do
          if fields[i] == id then redis.call('XDEL', key, entry[1]); hit = true; break end
        end
      end
      -- Its entries were all the stream held: without the grant, there would be no stream.
      if hit and redis.call('XLEN', key) == 0 then redis.call('DEL', key) end
    end
    if hit then table.insert(touched, key) end
  end
end
return touched`;

/**
 * Takes the lease out of Redis as if its grant had never been replicated, checks that
 * Redis then holds exactly what it held before the acquire (`before`, from contents()) and
 * that the service no longer knows the lease, and returns when that was done
 * (performance.now()).
 */
async function forgetGrant(leaseId: string, before: Record<string, unknown>): Promise<number> {
  const prefix = `{${t.config.KEY_PREFIX}}:`;
  const touched = (await t.redis.eval(FORGET_LEASE, 0, prefix, leaseId)) as string[];
  const forgottenAt = performance.now();
  assert.ok(touched.includes(`${prefix}l:${leaseId}`), `the lease hash was among the keys taken out: ${touched.join(', ')}`);
  assert.deepEqual(await contents(), before, 'nothing of the grant is left in Redis but the fencing counter');
  const res = await t.get(`/v1/leases/${encodeURIComponent(leaseId)}`);
  assert.equal(res.statusCode, 404, res.body);
  assert.equal(res.json<{ code: string }>().code, 'lease_not_found');
  return forgottenAt;
}

/** A client that counts the renews it sends, to show the heartbeat stops once the lease is lost. */
class CountingClient extends LeaseClient {
  renews = 0;
  override renew(id: string, request?: RenewRequest, options?: CallOptions): Promise<Lease> {
    this.renews++;
    return super.renew(id, request, options);
  }
}

const rejection = (promise: Promise<unknown>) => promise.then(() => assert.fail('expected a rejection'), (error: unknown) => error);

describe('a grant lost in a failover', () => {
  test('the simulation: the lease, its index entries, requestId key and events are gone, and its paths are free again', async () => {
    const path = unique('sim');
    const before = await contents();
    const lease = await acquireLease(t, 'lg-sim', [path, { path: `${path}-shared`, mode: 'shared' }], {
      ttlMs: TTL_MS,
      requestId: 'lg-sim-1',
      action: { kind: 'lg-kind' },
    });
    assert.equal((await t.post(`/v1/leases/${lease.id}/renew`, {})).statusCode, 200);
    assert.notDeepEqual(await contents(), before);
    const tokenBefore = Number(await t.redis.get(`{${t.config.KEY_PREFIX}}:token`));
    await forgetGrant(lease.id, before);
    assert.equal(Number(await t.redis.get(`{${t.config.KEY_PREFIX}}:token`)), tokenBefore, 'the fencing counter is kept');

    // What the new primary shows: the resources are free, and a new grant gets a newer token.
    const next = await acquireLease(t, 'lg-sim-next', [path]);
    assert.ok(next.fencingToken > lease.fencingToken);
    assert.equal((await t.post(`/v1/leases/${next.id}/release`, { outcome: 'completed' })).statusCode, 200);
  });

  test('its holder\'s next renew answers 404 problem+json lease_not_found', async () => {
    const before = await contents();
    const lease = await acquireLease(t, 'lg-http', [unique('http')], { ttlMs: TTL_MS });
    await forgetGrant(lease.id, before);

    const res = await t.post(`/v1/leases/${lease.id}/renew`, {});
    assert.equal(res.statusCode, 404, res.body);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const problem = res.json<{ status: number; code: string }>();
    assert.equal(problem.status, 404);
    assert.equal(problem.code, 'lease_not_found');
    // A renew with a progress checkpoint, too: nothing is recreated by it.
    assert.equal((await t.post(`/v1/leases/${lease.id}/renew`, { progress: { step: 1 } })).statusCode, 404);
    assert.equal((await t.get(`/v1/leases/${lease.id}`)).statusCode, 404);
  });

  test('withLease: the work\'s signal aborts with LeaseLostError (404) at the next heartbeat, well before the ttl', async () => {
    const c = new CountingClient({ baseUrl: t.baseUrl, retry: { attempts: 3, baseMs: 50, maxMs: 200 } });
    const before = await contents();
    let leaseId = '';
    let forgottenAt = 0;
    let lostAt = 0;
    let renewsAtLoss = 0;
    let seenReason: unknown;
    const error = await rejection(
      c.withLease({ holder: 'lg-sdk', resources: [{ path: unique('sdk') }], ttlMs: TTL_MS }, async (lease, signal) => {
        leaseId = lease.id;
        signal.addEventListener(
          'abort',
          () => {
            lostAt = performance.now();
            renewsAtLoss = c.renews;
          },
          { once: true },
        );
        forgottenAt = await forgetGrant(lease.id, before);
        // Bounded: the watchdog would abort at the ttl anyway; the loss must come well before.
        await waitFor(() => signal.aborted, { timeoutMs: TTL_MS + 2000, intervalMs: 10, what: 'the work\'s signal to abort' });
        seenReason = signal.reason;
        signal.throwIfAborted();
      }),
    );
    const elapsed = lostAt - forgottenAt;
    assert.ok(error instanceof LeaseLostError, String(error));
    assert.equal(seenReason, error, 'the work saw its signal aborted, with the error withLease rejects with');
    assert.equal(error.status, 404);
    assert.equal(error.code, 'lease_not_found');
    assert.ok(elapsed > 0 && elapsed < TTL_MS, `lost ${Math.round(elapsed)} ms after the grant was forgotten, within the ttl of ${TTL_MS} ms`);
    assert.ok(elapsed <= TTL_MS / 3 + SLACK_MS, `lost ${Math.round(elapsed)} ms after the grant was forgotten: at the next heartbeat`);
    assert.equal(renewsAtLoss, 1, 'the first renew after the loss told it');
    // Nothing renews or releases a lost lease, and nothing brings it back.
    await sleep(TTL_MS / 3 + 100);
    assert.equal(c.renews, renewsAtLoss, 'no renew after the loss');
    assert.equal((await t.get(`/v1/leases/${leaseId}`)).statusCode, 404);
  });
});

describe('lease run with a grant lost in a failover', () => {
  const started: ChildProcess[] = [];
  /** The commands' process groups, to end them too should lease run have failed to. */
  const groups: number[] = [];
  after(() => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const group of groups) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // gone already, as it should be
      }
    }
  });


  test('the command is stopped and lease run exits with the lost-lease code, at the next heartbeat', async () => {
    const before = await contents();
    // The command reports its pid and lease, then becomes `sleep 30` (exec: the same pid).
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', CLI, '--url', t.baseUrl, 'run', '--holder', 'lg-cli', '--ttl', String(TTL_MS), unique('cli'), '--', 'sh', '-c', 'echo "$$ $LEASE_ID"; exec sleep 30'],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let exitedAt = 0;
    const exited = new Promise<number>((resolve) =>
      child.on('close', (code, signal) => {
        exitedAt = performance.now();
        resolve(code ?? (signal ? 128 : 1));
      }),
    );

    const [pid, leaseId] = await waitFor(
      () => {
        const match = /^(\d+) (\S+)$/m.exec(stdout);
        return match ? ([Number(match[1]), match[2]!] as const) : undefined;
      },
      { timeoutMs: 20000, what: 'the command to start' },
    );
    groups.push(pid);
    assert.ok(running(pid), 'the command runs');
    const forgottenAt = await forgetGrant(leaseId, before);

    // Bounded well inside the child's 30 s: the SIGKILL of a lost lease comes at most a grace after the loss.
    const code = await Promise.race([exited, sleep(TTL_MS + 5000, -1, { ref: false })]);
    assert.equal(code, EXIT.leaseLost, `lease run exited ${code}; stderr: ${stderr}`);
    assert.equal(running(pid), false, 'the command is gone');
    assert.ok(stderr.includes(`lease ${leaseId} lost (lease_not_found: `), stderr);
    assert.doesNotMatch(stderr, /renewal_overdue/);
    const elapsed = exitedAt - forgottenAt;
    assert.ok(elapsed < TTL_MS, `lease run exited ${Math.round(elapsed)} ms after the grant was forgotten, within the ttl of ${TTL_MS} ms`);
    assert.equal((await t.get(`/v1/leases/${leaseId}`)).statusCode, 404, 'lease run did not bring the lease back');
  });
});
