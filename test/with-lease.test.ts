// The SDK's withLease and Conductor against the real service and real Redis, in real time:
// the heartbeat keeps a lease through long work, the work's signal aborts within the
// contract's bound when the lease is lost, nothing keeps renewing after the work ends, and
// a pool of conductors handles each orphan exactly once.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import {
  Conductor,
  ConductorStoppedError,
  LeaseClient,
  LeaseLostError,
  RetryElsewhereError,
  type Lease,
  type OrphanJob,
  type RenewRequest,
} from '../src/client/index.js';
import type { CallOptions } from '../src/client/lease-client.js';
import { useTestApp } from './helpers/app.js';
import { waitFor } from './helpers/wait.js';

const { t, redis } = useTestApp({ env: { REDIS_COMMAND_TIMEOUT_MS: '200' } });

/** A client that counts the renews it sends, to show when the heartbeat runs. */
class CountingClient extends LeaseClient {
  renews = 0;
  override renew(id: string, request?: RenewRequest, options?: CallOptions): Promise<Lease> {
    this.renews++;
    return super.renew(id, request, options);
  }
}

const client = () => new CountingClient({ baseUrl: t.baseUrl, retry: { attempts: 3, baseMs: 50, maxMs: 200 } });
const rejection = (promise: Promise<unknown>) => promise.then(() => assert.fail('expected a rejection'), (error: unknown) => error);
const abortedAt = (signal: AbortSignal) => new Promise<number>((resolve) => signal.addEventListener('abort', () => resolve(performance.now()), { once: true }));

async function orphanOf(leaseId: string) {
  const tombstone = await t.get(`/v1/leases/${leaseId}`);
  return tombstone.json<{ orphanId?: string }>().orphanId;
}

describe('withLease', () => {
  test('work that outlasts the ttl keeps its lease, then releases it completed and returns the result', async () => {
    const c = client();
    let leaseId = '';
    const result = await c.withLease({ holder: 'wl-a', resources: [{ path: 'wl/long/i-1' }], ttlMs: 1000 }, async (lease, signal) => {
      leaseId = lease.id;
      await sleep(2600); // more than two ttls
      assert.equal(signal.aborted, false);
      assert.equal((await c.get(lease.id)).state, 'active');
      return 'resized';
    });
    assert.equal(result, 'resized');
    assert.ok(c.renews >= 6, `renewed ${c.renews} times in 2.6 s at a third of 1 s`);
    const ended = await rejection(c.get(leaseId));
    assert.ok(ended instanceof LeaseLostError);
    assert.equal(ended.tombstone?.outcome, 'completed');
  });

  test('a checkpoint goes out with the next heartbeat', async () => {
    const c = client();
    await c.withLease(
      { holder: 'wl-b', resources: [{ path: 'wl/progress/i-1' }], ttlMs: 1500, action: { kind: 'resize' } },
      async (lease) => {
        lease.checkpoint({ step: 'disk-copied' });
        const renewsBefore = c.renews;
        const seen = await waitFor(async () => {
          const now = await c.get(lease.id);
          return (now.action?.progress as { step?: string } | null)?.step === 'disk-copied' ? now : undefined;
        }, { what: 'the checkpoint on the lease' });
        assert.ok(c.renews > renewsBefore, 'it went out with a renew');
        assert.deepEqual(seen.action?.progress, { step: 'disk-copied' });
      },
    );
  });

  test('an error in the work releases the lease failed and is rethrown', async () => {
    const c = client();
    let leaseId = '';
    const error = await rejection(
      c.withLease({ holder: 'wl-c', resources: [{ path: 'wl/fail/i-1' }], action: { kind: 'resize' } }, async (lease) => {
        leaseId = lease.id;
        throw new Error('hypervisor said no');
      }),
    );
    assert.equal((error as Error).message, 'hypervisor said no');
    const ended = await rejection(c.get(leaseId));
    assert.ok(ended instanceof LeaseLostError);
    assert.equal(ended.tombstone?.outcome, 'failed');
    assert.equal(await orphanOf(leaseId), undefined, 'a failed action is over, not an orphan');
  });

  test('RetryElsewhereError releases abandoned: the orphan is pending at once with the last checkpoint', async () => {
    const c = client();
    let leaseId = '';
    await rejection(
      c.withLease({ holder: 'wl-d', resources: [{ path: 'wl/abandon/i-1' }], ttlMs: 30000, action: { kind: 'resize' } }, async (lease) => {
        leaseId = lease.id;
        // Not yet sent (the next heartbeat is 10 s away): abandoning must carry it along.
        lease.checkpoint({ step: 'snapshot' });
        throw new RetryElsewhereError('out of disk on this host');
      }),
    );
    const orphanId = await orphanOf(leaseId);
    assert.ok(orphanId, 'the abandoned action became an orphan');
    const orphan = await c.getOrphan(orphanId);
    assert.equal(orphan.state, 'pending');
    assert.deepEqual(orphan.progress, { step: 'snapshot' });
  });

  test('a revoked lease aborts the work\'s signal at the next heartbeat, and withLease rejects with LeaseLostError', async () => {
    const c = client();
    const ttlMs = 1500;
    let revokedAt = 0;
    let lostAt = 0;
    const error = await rejection(
      c.withLease({ holder: 'wl-e', resources: [{ path: 'wl/revoke/i-1' }], ttlMs }, async (lease, signal) => {
        const lost = abortedAt(signal);
        await c.revoke(lease.id);
        revokedAt = performance.now();
        lostAt = await lost;
        signal.throwIfAborted();
      }),
    );
    assert.ok(error instanceof LeaseLostError, String(error));
    assert.equal(error.code, 'lease_revoked');
    // The next heartbeat is at most a third of the ttl away; allow for a slow machine.
    assert.ok(lostAt - revokedAt <= ttlMs / 3 + 500, `lost ${Math.round(lostAt - revokedAt)} ms after the revoke`);
  });

  test('with Redis paused, the signal aborts no later than the ttl after the last confirmed renewal was sent', async () => {
    const c = client();
    const ttlMs = 1500;
    let lastConfirmed = performance.now();
    const error = await rejection(
      c.withLease(
        { holder: 'wl-f', resources: [{ path: 'wl/pause/i-1' }], ttlMs },
        async (_lease, signal) => {
          await sleep(700); // a couple of heartbeats get through first
          const lost = abortedAt(signal);
          redis.pause();
          try {
            const at = await lost;
            // The confirmation arrived after its renew was sent: measured from it, the bound is tighter still.
            assert.ok(at - lastConfirmed <= ttlMs + 50, `aborted ${Math.round(at - lastConfirmed)} ms after the last confirmed renewal`);
            assert.ok(at - lastConfirmed >= ttlMs - ttlMs / 3 - 100, 'not before a renewal was actually overdue');
          } finally {
            redis.resume();
          }
          signal.throwIfAborted();
        },
        { onRenewed: () => (lastConfirmed = performance.now()) },
      ),
    );
    assert.ok(error instanceof LeaseLostError, String(error));
    assert.equal(error.code, 'renewal_overdue');
  });

  test('no heartbeat runs after the work ends, whether it returned, threw or lost its lease', async () => {
    const c = client();
    const ttlMs = 1000;
    await c.withLease({ holder: 'wl-g', resources: [{ path: 'wl/quiet/i-1' }], ttlMs }, () => sleep(400));
    await rejection(c.withLease({ holder: 'wl-g', resources: [{ path: 'wl/quiet/i-2' }], ttlMs }, () => Promise.reject(new Error('no'))));
    await rejection(
      c.withLease({ holder: 'wl-g', resources: [{ path: 'wl/quiet/i-3' }], ttlMs }, async (lease, signal) => {
        await c.revoke(lease.id);
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      }),
    );
    const renews = c.renews;
    await sleep(ttlMs); // three heartbeat intervals
    assert.equal(c.renews, renews, 'a heartbeat kept running after withLease settled');
  });

  test('work that returns after its lease was lost rejects: its effects may overlap the next holder', async () => {
    const c = client();
    const error = await rejection(
      c.withLease({ holder: 'wl-h', resources: [{ path: 'wl/ignore/i-1' }], ttlMs: 1000 }, async (lease, signal) => {
        await c.revoke(lease.id);
        await waitFor(() => signal.aborted, { what: 'the loss' });
        return 'done anyway';
      }),
    );
    assert.ok(error instanceof LeaseLostError && error.code === 'lease_revoked', String(error));
  });
});

describe('Conductor', () => {
  /** Leaves `count` pending orphans of `kind`, each abandoned with a checkpoint naming it. */
  async function orphans(kind: string, count: number) {
    const c = client();
    const made = new Map<string, { leaseId: string; token: number; index: number }>();
    for (let index = 0; index < count; index++) {
      const lease = await c.acquire({ holder: 'dead-conductor', resources: [{ path: `cd/${kind}/i-${index}` }], action: { kind, maxAttempts: 3 } });
      await c.renew(lease.id, { progress: { index } });
      await c.release(lease.id, 'abandoned');
      made.set((await orphanOf(lease.id))!, { leaseId: lease.id, token: lease.fencingToken, index });
    }
    return made;
  }

  test('two conductors of two slots each handle every orphan exactly once, resuming from its checkpoint', async () => {
    const made = await orphans('cd-resize', 8);
    const handled: { conductor: string; job: OrphanJob }[] = [];
    const running = new Map<string, number>();
    const maxRunning = new Map<string, number>();
    const conductor = (name: string) =>
      new Conductor(client(), {
        holder: name,
        kinds: ['cd-resize'],
        concurrency: 2,
        ttlMs: 30000,
        claimWaitMs: 10000,
        handler: async (job) => {
          running.set(name, (running.get(name) ?? 0) + 1);
          maxRunning.set(name, Math.max(maxRunning.get(name) ?? 0, running.get(name)!));
          handled.push({ conductor: name, job });
          await sleep(300);
          running.set(name, running.get(name)! - 1);
        },
        onError: (error) => assert.fail(`unexpected ${String(error)}`),
      }).start();
    const pool = [conductor('conductor-w'), conductor('conductor-x')];
    await waitFor(async () => {
      if (handled.length < made.size) return undefined;
      const states = await Promise.all([...made.keys()].map(async (id) => (await client().getOrphan(id)).state));
      return states.every((state) => state === 'resolved');
    }, { what: 'every orphan resolved', timeoutMs: 20000 });
    const stopStarted = performance.now();
    await Promise.all(pool.map((c) => c.stop()));
    assert.ok(performance.now() - stopStarted < 5000, 'stop does not wait out the 10 s claim long poll');

    assert.deepEqual(handled.map((h) => h.job.orphan.id).sort(), [...made.keys()].sort(), 'each orphan handled exactly once');
    for (const { job } of handled) {
      const dead = made.get(job.orphan.id)!;
      assert.ok(job.lease.fencingToken > dead.token, 'the claim carries a greater fencing token');
      assert.equal(job.lease.action?.attempt, 2);
      assert.deepEqual(job.orphan.progress, { index: dead.index }, 'the dead holder\'s last checkpoint');
    }
    for (const [name, max] of maxRunning) assert.ok(max <= 2, `${name} ran ${max} handlers at once`);
  });

  test('a claim granted late in its long poll is renewed at once and keeps its lease', async () => {
    // The claim's lease is timed from when the claim was sent (the client cannot know when
    // during the wait it was granted), so a late grant must not wait for the usual heartbeat.
    const ttlMs = 1500;
    let kept: boolean | undefined;
    let renewals = 0;
    const conductor = new Conductor(client(), {
      holder: 'conductor-l',
      kinds: ['cd-late'],
      ttlMs,
      claimWaitMs: ttlMs / 3,
      handler: async (_job, signal) => {
        await sleep(2 * ttlMs);
        kept = !signal.aborted;
      },
      lease: { onRenewed: () => renewals++ },
      onError: (error) => assert.fail(`unexpected ${String(error)}`),
    }).start();
    await sleep(ttlMs / 3 - 150); // the orphan appears near the end of the first long poll
    await orphans('cd-late', 1);
    await waitFor(() => kept !== undefined, { what: 'the handler to finish', timeoutMs: 10000 });
    await conductor.stop();
    assert.equal(kept, true, 'the claim\'s lease was kept through two ttls');
    assert.ok(renewals >= 4, `renewed ${renewals} times`);
  });

  test('a claim wait longer than a third of the ttl is refused up front', () => {
    assert.throws(() => new Conductor(client(), { holder: 'x', ttlMs: 3000, claimWaitMs: 2000, handler: async () => {} }), RangeError);
  });

  test('a conductor only takes the kinds it was given', async () => {
    const [wanted] = [...(await orphans('cd-wanted', 1)).keys()];
    const [other] = [...(await orphans('cd-other', 1)).keys()];
    const seen: string[] = [];
    const conductor = new Conductor(client(), {
      holder: 'conductor-k',
      kinds: ['cd-wanted'],
      claimWaitMs: 500,
      handler: async (job) => void seen.push(job.orphan.id),
    }).start();
    await waitFor(() => seen.length > 0, { what: 'the wanted orphan handled' });
    await sleep(600); // another long poll comes back empty
    await conductor.stop();
    assert.deepEqual(seen, [wanted]);
    assert.equal((await client().getOrphan(other!)).state, 'pending');
  });

  test('stopping hands a running orphan back at once: its signal aborts after the grace and it is pending again', async () => {
    const [orphanId] = [...(await orphans('cd-stop', 1)).keys()];
    let started = false;
    let reason: unknown;
    const conductor = new Conductor(client(), {
      holder: 'conductor-s',
      kinds: ['cd-stop'],
      claimWaitMs: 500,
      handler: async (job, signal) => {
        started = true;
        job.lease.checkpoint({ step: 'half-way' });
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        reason = signal.reason;
        signal.throwIfAborted();
      },
      onError: () => undefined,
    }).start();
    await waitFor(() => started, { what: 'the handler to start' });
    await conductor.stop({ graceMs: 200 });
    assert.ok(reason instanceof ConductorStoppedError, String(reason));
    const orphan = await client().getOrphan(orphanId!);
    assert.equal(orphan.state, 'pending', 'handed back without waiting for the ttl');
    assert.equal(orphan.action.attempt, 2, 'the stopped claim was attempt 2');
    assert.deepEqual(orphan.progress, { step: 'half-way' });
  });

  test('a handler\'s error reaches onError with its job, and the loop goes on to the next orphan', async () => {
    const made = await orphans('cd-error', 2);
    const errors: { error: unknown; orphanId: string | undefined }[] = [];
    const done: string[] = [];
    let first = true;
    const conductor = new Conductor(client(), {
      holder: 'conductor-e',
      kinds: ['cd-error'],
      claimWaitMs: 500,
      handler: async (job) => {
        if (first) {
          first = false;
          throw new Error('flavor not available');
        }
        done.push(job.orphan.id);
      },
      onError: (error, job) => errors.push({ error, orphanId: job?.orphan.id }),
    }).start();
    await waitFor(() => errors.length + done.length >= 2, { what: 'both orphans handled' });
    await conductor.stop();
    assert.equal(errors.length, 1);
    assert.equal((errors[0]!.error as Error).message, 'flavor not available');
    const failed = await client().getOrphan(errors[0]!.orphanId!);
    assert.equal(failed.state, 'resolved', 'released failed: the action is over');
    assert.deepEqual([...made.keys()].sort(), [errors[0]!.orphanId, ...done].sort());
  });
});
