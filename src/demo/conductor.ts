// A conductor as a process of its own, driven by the demo: the seed's "conductor Z", built
// on the SDK the way a real one would be.
//
//   role resize:   LeaseClient.withLease on the instance, then the resize's steps in order.
//   role takeover: a Conductor that claims resize orphans and resumes each after the dead
//                  holder's last checkpoint.
//
// Each step takes its time, is written to the hypervisor with the lease's fencing token,
// then checkpointed (the checkpoint rides on the next heartbeat). Everything it does is one
// JSON line on stdout (protocol.ts). Exit 0 when its work is done, 2 when the lease was
// refused, 1 on anything else; it also exits when its stdin closes, so a demo that died
// does not leave it heartbeating. Its orders come as the first line on stdin, with its
// bearer token: a conductor token that lets it act as its own holder name and no other.
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Conductor, ConflictError, LeaseClient, type Lease, type LeaseHandle, type Tombstone } from '../client/index.js';
import { RESIZE_STEPS, wallClock, type ConductorReport, type Go, type Orders, type ResizeStep } from './protocol.js';

// The process ends if the demo goes away (its stdin closes), whatever it is doing.
const input = createInterface({ input: process.stdin });
input.once('close', () => process.exit(1));
const lines = input[Symbol.asyncIterator]();

/** The demo's next line on stdin: the orders, then the Go line. */
async function nextLine<T>(): Promise<T> {
  const line = await lines.next();
  if (line.done) process.exit(1);
  return JSON.parse(line.value) as T;
}

const orders = await nextLine<Orders>();
const client = new LeaseClient({ baseUrl: orders.service, token: orders.token });

function say(report: ConductorReport): void {
  process.stdout.write(`${JSON.stringify({ ...report, at: wallClock() })}\n`);
}

/**
 * Runs the steps after `doneStep` (all of them when null). A real conductor would first ask
 * the hypervisor what the step that was running when its predecessor died had done; here the
 * checkpoint alone says which steps are done, and the one after it is run again.
 */
async function resizeSteps(lease: LeaseHandle, signal: AbortSignal, doneStep: string | null): Promise<void> {
  const path = lease.resources[0]!.path;
  const first = RESIZE_STEPS.indexOf(doneStep as ResizeStep) + 1;
  for (const step of RESIZE_STEPS.slice(first)) {
    await sleep(orders.stepMs[step], undefined, { signal });
    await writeToHypervisor(path, lease.fencingToken, step, signal);
    lease.checkpoint({ step });
    say({ event: 'step-done', step, fencingToken: lease.fencingToken });
  }
}

async function writeToHypervisor(path: string, fencingToken: number, step: string, signal: AbortSignal): Promise<void> {
  const response = await fetch(`${orders.hypervisor}/write`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ path, fencingToken, step }),
    signal,
  });
  const answer = await response.text();
  if (response.status !== 200) throw new Error(`the hypervisor refused ${step} (${response.status}): ${answer}`);
}

/** Says when a checkpoint is confirmed, i.e. the service holds it for whoever takes over. */
function reportCheckpoints(): (lease: Lease) => void {
  let confirmed: string | undefined;
  return (lease) => {
    const step = (lease.action?.progress as { step?: string } | null | undefined)?.step;
    if (step !== undefined && step !== confirmed) say({ event: 'checkpointed', step: (confirmed = step) });
  };
}

/** Says how the lease ended, from the service's answer to the release. */
function reportRelease(tombstone: Tombstone): void {
  say({ event: 'released', state: tombstone.state, outcome: tombstone.outcome ?? null });
}

/**
 * Waits until wallClock() reaches `at`. A timer alone is late by a millisecond or more, and a
 * short spin is slower still the first time (V8 pauses to optimise the hot loop), so the
 * last 25 ms are spun: both conductors then leave within a few hundredths of a millisecond.
 */
async function until(at: number): Promise<void> {
  const early = at - wallClock() - 25;
  if (early > 0) await sleep(early);
  while (wallClock() < at) {
    // spin
  }
}

async function resize(): Promise<void> {
  const path = orders.path!;
  // Opens the keep-alive connection now, so the acquire sent at the Go time does not wait on a TCP handshake.
  await (await fetch(`${orders.service}/readyz`)).arrayBuffer();
  if (orders.waitForGo) {
    say({ event: 'ready' });
    await until((await nextLine<Go>()).sendAt);
  }
  say({ event: 'sending', path });
  try {
    await client.withLease(
      {
        holder: orders.holder,
        ttlMs: orders.ttlMs,
        resources: [{ path }],
        action: { kind: 'resize', payload: { flavor: 'm1.large' }, maxAttempts: 3 },
      },
      async (lease, signal) => {
        say({ event: 'acquired', leaseId: lease.id, fencingToken: lease.fencingToken, attempt: lease.action?.attempt ?? 1, path });
        await resizeSteps(lease, signal, null);
      },
      { onRenewed: reportCheckpoints(), onReleased: reportRelease },
    );
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    say({ event: 'refused', status: error.status, code: error.code, conflicts: error.conflicts });
    process.exit(2);
  }
}

async function takeOver(): Promise<void> {
  let handled!: () => void;
  const done = new Promise<void>((resolve) => (handled = resolve));
  const conductor = new Conductor(client, {
    holder: orders.holder,
    kinds: ['resize'],
    ttlMs: orders.ttlMs,
    lease: { onRenewed: reportCheckpoints(), onReleased: reportRelease },
    handler: async ({ orphan, lease }, signal) => {
      const progress = (orphan.progress as { step?: string } | null | undefined) ?? null;
      say({
        event: 'claimed',
        orphanId: orphan.id,
        leaseId: lease.id,
        fencingToken: lease.fencingToken,
        attempt: lease.action?.attempt ?? 0,
        lastHolder: orphan.lastHolder,
        lastFencingToken: orphan.lastFencingToken,
        progress,
        path: lease.resources[0]!.path,
      });
      try {
        await resizeSteps(lease, signal, progress?.step ?? null);
      } finally {
        handled();
      }
    },
    // In the demo every error is the end of the story: a real conductor would log and go on.
    onError: (error) => {
      say({ event: 'failed', error: error instanceof Error ? error.message : String(error) });
      process.exit(1);
    },
  }).start();
  say({ event: 'standing-by', kinds: ['resize'] });
  await done;
  // One orphan is this conductor's whole job. stop() cuts the next claim's long poll and
  // waits for the handled orphan's lease to be released `completed`.
  await conductor.stop();
}

(orders.role === 'resize' ? resize() : takeOver()).then(
  () => process.exit(0),
  (error: unknown) => {
    say({ event: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exit(1);
  },
);
