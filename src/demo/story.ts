// The design list's story (../shared/seed), played by real processes against the real
// service, one act per question the list asked:
//   1. two resizes of one instance sent in the same millisecond: one lease, one 409 naming the holder;
//   2. a volume delete under that instance, refused while the resize runs;
//   3. the winning conductor killed with SIGKILL after its "disk-copied" checkpoint;
//   4. its lease expires, the orphan is published, and a conductor standing by claims it
//      (greater fencing token, attempt 2, the dead one's checkpoint) and resumes after it;
//   5. the dead conductor's late write refused by the hypervisor's fencing check (and, sent
//      with its own token, its late renew refused, and its revoke of the claimer's lease);
//   6. the claimer finishes, the orphan is resolved, and the volume delete goes through;
// and the service is stopped as an operator would stop it. Each act checks what it shows.
// Access control is on: each conductor acts with a token for its own holder name only.
import { ConflictError, LeaseLostError, LeaseServiceError } from '../client/index.js';
import type { FencingCheck } from '../client/types.js';
import { isAlive } from '../redis/embedded.js';
import { check } from './checks.js';
import type { ConductorProcess } from './conductor-process.js';
import type { ServiceEvent } from './event-stream.js';
import { wallClock, type EventOf, type ResizeStep } from './protocol.js';
import type { Stage } from './stage.js';
import { preciseMs, type Timeline } from './timeline.js';

export const INSTANCE = 'instances/i-42';
const VOLUME = `${INSTANCE}/volumes/v-7`;
const RACERS = ['conductor-a', 'conductor-b'];
const CLAIMER = 'conductor-c';
/** Every conductor the story starts: the stage makes each a token for its own name. */
export const CONDUCTORS = [...RACERS, CLAIMER];
/** Steps long enough to be seen; the first attempt's flavor switch long enough that the kill lands inside it. */
const FIRST_ATTEMPT_MS: Record<ResizeStep, number> = { snapshot: 300, 'disk-copied': 300, 'flavor-switched': 60_000, restarted: 300 };
/** The takeover's remaining steps leave the demo time to replay the dead conductor's write meanwhile. */
const TAKEOVER_MS: Record<ResizeStep, number> = { snapshot: 300, 'disk-copied': 300, 'flavor-switched': 800, restarted: 800 };
/** Node processes starting under tsx on a busy two-core machine take seconds. */
const START_TIMEOUT_MS = 30_000;
const SHUTDOWN_TIMEOUT_MS = 15_000;

interface Play {
  stage: Stage;
  timeline: Timeline;
}

export async function playStory(stage: Stage, timeline: Timeline): Promise<void> {
  const play = { stage, timeline };
  const { racers, claimer } = await cast(play);
  const { winner, granted } = await sameMillisecond(play, racers);
  await volumeDeleteRefused(play, winner, granted);
  const killedAt = await killMidResize(play, winner);
  const claimed = await orphanTakenOver(play, winner, granted, claimer, killedAt);
  await lateWriteFenced(play, winner, granted, claimer, claimed);
  await takeoverFinished(play, granted, claimer, claimed);
  await curtain(play);
}

async function cast({ stage, timeline }: Play) {
  timeline.act('The cast: three conductor processes');
  const racers = RACERS.map((holder) => stage.conductor({ role: 'resize', holder, path: INSTANCE, waitForGo: true, stepMs: FIRST_ATTEMPT_MS }));
  const claimer = stage.conductor({ role: 'takeover', holder: CLAIMER, stepMs: TAKEOVER_MS });
  timeline.introduce(...racers.map((racer) => racer.name), claimer.name, 'volume-deleter', 'lease-service', 'hypervisor');
  const ready = await Promise.all(racers.map((racer) => racer.next('ready', undefined, START_TIMEOUT_MS)));
  const standing = await claimer.next('standing-by', undefined, START_TIMEOUT_MS);
  const lines = [
    ...ready.map((event, i) => ({ at: event.at, who: racers[i]!.name, text: `ready to resize ${INSTANCE}, waiting for the start signal` })),
    { at: standing.at, who: claimer.name, text: 'standing by for resize orphans (a Conductor long-polling POST /v1/orphans/claim)' },
  ];
  for (const line of lines.sort((x, y) => x.at - y.at)) timeline.event(line.at, line.who, line.text);
  return { racers, claimer };
}

async function sameMillisecond({ timeline }: Play, racers: ConductorProcess[]) {
  timeline.act(`Two resizes of ${INSTANCE} sent in the same millisecond`, 1);
  // A whole millisecond a little ahead: both conductors spin until it starts, then send.
  const sendAt = Math.ceil(wallClock()) + 100;
  for (const racer of racers) racer.go({ sendAt });
  const sends = await Promise.all(racers.map((racer) => racer.next('sending')));
  const answers = await Promise.all(racers.map((racer) => racer.first(['acquired', 'refused'])));
  const winners = answers.flatMap((answer, i) => (answer.event === 'acquired' ? [i] : []));
  check(winners.length === 1, () => `expected one lease and one 409, got: ${JSON.stringify(answers)}`);
  const w = winners[0]!;
  const winner = racers[w]!;
  const loser = racers[1 - w]!;
  const granted = answers[w] as EventOf<'acquired'>;
  const refused = answers[1 - w] as EventOf<'refused'>;
  const conflict = refused.conflicts.find((c) => c.path === INSTANCE);
  check(refused.status === 409 && refused.code === 'conflict', () => `${loser.name} got ${refused.status} ${refused.code}, not 409 conflict`);
  check(conflict?.holder === winner.name && conflict.leaseId === granted.leaseId && conflict.state === 'active', () =>
    `${loser.name}'s 409 does not name ${winner.name}'s active lease: ${JSON.stringify(refused.conflicts)}`,
  );

  const lines = [
    ...sends.map((send, i) => ({ at: send.at, who: racers[i]!.name, text: `sends POST /v1/leases: resize ${INSTANCE} (at ${clockTime(send.at)} UTC)`, mood: 'plain' as const })),
    { at: granted.at, who: winner.name, text: `201 acquired ${INSTANCE} for resize (token ${granted.fencingToken}, attempt ${granted.attempt})`, mood: 'granted' as const },
    { at: refused.at, who: loser.name, text: `409 conflict: ${INSTANCE} is held by ${conflict.holder} (${conflict.mode}, ${conflict.state}, lease ${conflict.leaseId})`, mood: 'refused' as const },
  ];
  for (const line of lines.sort((x, y) => x.at - y.at)) timeline.event(line.at, line.who, line.text, line.mood);
  const [first, second] = sends.map((send) => send.at) as [number, number];
  const sameMs = Math.floor(first) === Math.floor(second);
  timeline.note(
    `sent ${preciseMs(Math.abs(first - second))} apart, ${sameMs ? 'in the same millisecond' : 'not in the same millisecond (a busy machine held one back)'}; ` +
      'one Lua script checks and grants, so one wins',
  );
  const loserExit = await loser.exited;
  check(loserExit.code === 2, () => `${loser.name} should have exited 2 (refused), not ${loserExit.signal ?? loserExit.code}`);
  return { winner, granted };
}

async function volumeDeleteRefused({ stage, timeline }: Play, winner: ConductorProcess, granted: EventOf<'acquired'>) {
  timeline.act(`A volume delete on ${VOLUME} while the resize runs`, 2);
  try {
    const lease = await stage.client.acquire({ holder: 'volume-deleter', ttlMs: stage.settings.ttlMs, resources: [{ path: VOLUME }], action: { kind: 'delete-volume' } });
    check(false, () => `the volume delete was granted (lease ${lease.id}) while ${INSTANCE} was being resized`);
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    const conflict = error.conflicts[0];
    check(conflict?.path === INSTANCE && conflict.holder === winner.name && conflict.leaseId === granted.leaseId && conflict.state === 'active', () =>
      `the volume delete's 409 does not name ${winner.name}'s lease on ${INSTANCE}: ${JSON.stringify(error.conflicts)}`,
    );
    timeline.event(wallClock(), 'volume-deleter', `409 conflict: ${INSTANCE} (above ${VOLUME}) is held by ${conflict.holder} (${conflict.mode}, ${conflict.state})`, 'refused');
  }
  timeline.note(`a lease on ${INSTANCE} covers every path below it`);
}

async function killMidResize({ timeline }: Play, winner: ConductorProcess): Promise<number> {
  timeline.act(`${winner.name} killed with SIGKILL in the middle of the resize`, 3);
  for (const step of ['snapshot', 'disk-copied'] as const) {
    const done = await winner.next('step-done', (event) => event.step === step);
    timeline.event(done.at, winner.name, `${step} done: the hypervisor accepted it with token ${done.fencingToken}`);
  }
  const confirmed = await winner.next('checkpointed', (event) => event.step === 'disk-copied');
  timeline.event(confirmed.at, winner.name, 'checkpoint "disk-copied" confirmed by a heartbeat: the service keeps it for whoever takes over', 'granted');
  winner.kill('SIGKILL');
  const killedAt = wallClock();
  timeline.event(killedAt, 'demo', `kill -9 ${winner.name} (pid ${winner.pid}) halfway through flavor-switched`, 'violent');
  const exit = await winner.exited;
  check(exit.signal === 'SIGKILL', () => `${winner.name} ended by ${exit.signal ?? `exit code ${exit.code}`}, not by the SIGKILL`);
  check(!winner.has('step-done', (event) => event.step === 'flavor-switched'), () => `${winner.name} finished flavor-switched before it was killed`);
  return killedAt;
}

async function orphanTakenOver({ stage, timeline }: Play, winner: ConductorProcess, granted: EventOf<'acquired'>, claimer: ConductorProcess, killedAt: number) {
  timeline.act('The orphan is published and another conductor takes it over', 4);
  const orphaned = await stage.events.next(
    (event) => event.type === 'orphaned' && event.leaseId === granted.leaseId,
    `the "orphaned" event of ${winner.name}'s lease`,
    stage.settings.ttlMs + 10_000,
  );
  const expiredAt = Date.parse(orphaned.at);
  timeline.event(
    recordedAt(orphaned),
    'lease-service',
    `orphan ${orphaned.orphanId} published: ${winner.name}'s lease ran out ${Math.round(expiredAt - killedAt)} ms after the kill, no heartbeat; ${INSTANCE} stays reserved`,
  );
  const claimed = await claimer.next('claimed', undefined, 10_000);
  check(claimed.orphanId === orphaned.orphanId && claimed.path === INSTANCE, () => `${claimer.name} claimed ${claimed.orphanId} on ${claimed.path}, not ${orphaned.orphanId}`);
  check(claimed.attempt === 2, () => `the claim runs attempt ${claimed.attempt}, not 2`);
  check(claimed.fencingToken > granted.fencingToken, () => `the claim's token ${claimed.fencingToken} is not greater than ${granted.fencingToken}`);
  check(claimed.lastHolder === winner.name && claimed.lastFencingToken === granted.fencingToken, () => `the orphan's last holder is ${claimed.lastHolder} (${claimed.lastFencingToken})`);
  check(claimed.progress?.step === 'disk-copied', () => `${claimer.name} received progress ${JSON.stringify(claimed.progress)}, not disk-copied`);
  timeline.event(
    claimed.at,
    claimer.name,
    `claimed it: token ${claimed.fencingToken} (> ${granted.fencingToken}), attempt ${claimed.attempt}, last checkpoint "${claimed.progress.step}": resumes at flavor-switched`,
    'granted',
  );
  return claimed;
}

async function lateWriteFenced({ stage, timeline }: Play, winner: ConductorProcess, granted: EventOf<'acquired'>, claimer: ConductorProcess, claimed: EventOf<'claimed'>) {
  timeline.act(`${winner.name}'s late write is fenced off`, 5);
  // The write a conductor that was only frozen (a long GC pause, a stopped VM) would send on
  // waking: its next step, with its old token. The killed process cannot send it, so the demo does.
  timeline.event(wallClock(), 'demo', `replays ${winner.name}'s write of flavor-switched with its old token ${granted.fencingToken}`);
  const response = await fetch(`${stage.hypervisor.url}/write`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ path: INSTANCE, fencingToken: granted.fencingToken, step: 'flavor-switched' }),
  });
  const answer = (await response.json()) as { check?: FencingCheck };
  const current = answer.check?.current ?? [];
  check(response.status === 409 && answer.check?.valid === false, () => `the hypervisor answered ${response.status} ${JSON.stringify(answer)} to the stale token`);
  check(current.every((lease) => lease.fencingToken > granted.fencingToken), () => `a lease with a token not above the stale one covers ${INSTANCE}: ${JSON.stringify(current)}`);
  const holders = current.map((lease) => `${lease.holder} (token ${lease.fencingToken}, ${lease.state})`).join(', ');
  timeline.event(wallClock(), 'hypervisor', `409 refused: the fencing check says token ${granted.fencingToken} is not valid; ${INSTANCE} is held by ${holders || 'nobody'}`, 'refused');

  // Its calls to the service go with its own token, as it would send them.
  const late = stage.clientOf(winner.name);
  try {
    await late.renew(granted.leaseId, { progress: { step: 'flavor-switched' } });
    check(false, () => `${winner.name}'s lease was renewed after ${claimer.name} claimed its orphan`);
  } catch (error) {
    if (!(error instanceof LeaseLostError)) throw error;
    check(error.status === 410 && error.code === 'lease_expired', () => `the late renew got ${error.status} ${error.code}, not 410 lease_expired`);
    timeline.event(wallClock(), 'lease-service', `410 ${error.code} to ${winner.name}'s late renew (its orphan ${error.tombstone?.orphanId ?? claimed.orphanId} is ${claimer.name}'s now)`, 'refused');
  }
  try {
    await late.revoke(claimed.leaseId);
    check(false, () => `${winner.name}'s token revoked ${claimer.name}'s lease`);
  } catch (error) {
    if (!(error instanceof LeaseServiceError)) throw error;
    check(error.status === 403 && error.code === 'forbidden', () => `${winner.name}'s revoke of ${claimer.name}'s lease got ${error.status} ${error.code}, not 403 forbidden`);
    timeline.event(wallClock(), 'lease-service', `403 forbidden to ${winner.name}'s revoke of ${claimer.name}'s lease: ${error.message}`, 'refused');
  }
}

async function takeoverFinished({ stage, timeline }: Play, granted: EventOf<'acquired'>, claimer: ConductorProcess, claimed: EventOf<'claimed'>) {
  timeline.act(`${claimer.name} finishes the resize, and the volume delete goes through`, 6);
  for (const step of ['flavor-switched', 'restarted'] as const) {
    const done = await claimer.next('step-done', (event) => event.step === step);
    timeline.event(done.at, claimer.name, `${step} done: the hypervisor accepted it with token ${done.fencingToken}`);
  }
  check(!claimer.has('step-done', (event) => event.step === 'snapshot' || event.step === 'disk-copied'), () => `${claimer.name} redid steps before the checkpoint`);
  // The service's events give the moment of the release and of the resolution it caused
  // (one script, one millisecond); the conductor only learns the outcome after.
  const releasedEvent = await stage.events.next((event) => event.type === 'released' && event.leaseId === claimed.leaseId, `the release of ${claimer.name}'s lease`, 10_000);
  const released = await claimer.next('released');
  check(released.state === 'released' && released.outcome === 'completed', () => `${claimer.name}'s lease ended ${released.state}/${released.outcome}`);
  timeline.event(recordedAt(releasedEvent), claimer.name, `released its lease: ${released.outcome}`, 'granted');
  const resolved = await stage.events.next((event) => event.type === 'resolved' && event.orphanId === claimed.orphanId, `the orphan's "resolved" event`, 10_000);
  const orphan = await stage.client.getOrphan(claimed.orphanId);
  check(orphan.state === 'resolved' && orphan.resolution === 'completed', () => `the orphan is ${orphan.state}/${orphan.resolution}, not resolved/completed`);
  timeline.event(recordedAt(resolved), 'lease-service', `orphan ${orphan.id} resolved (${orphan.resolution}): ${INSTANCE} is free`);
  const exit = await claimer.exited;
  check(exit.code === 0, () => `${claimer.name} ended with ${exit.signal ?? `exit code ${exit.code}`}`);

  const lease = await stage.client.acquire({ holder: 'volume-deleter', ttlMs: stage.settings.ttlMs, resources: [{ path: VOLUME }], action: { kind: 'delete-volume' } });
  check(lease.fencingToken > claimed.fencingToken, () => `the volume delete's token ${lease.fencingToken} is not above ${claimed.fencingToken}`);
  timeline.event(wallClock(), 'volume-deleter', `201 acquired ${VOLUME} for delete-volume (token ${lease.fencingToken})`, 'granted');
  await stage.client.release(lease.id, 'completed');

  const ledger = stage.hypervisor.accepted.filter((write) => write.path === INSTANCE).map(({ step, fencingToken }) => ({ step, fencingToken }));
  const expected = [
    { step: 'snapshot', fencingToken: granted.fencingToken },
    { step: 'disk-copied', fencingToken: granted.fencingToken },
    { step: 'flavor-switched', fencingToken: claimed.fencingToken },
    { step: 'restarted', fencingToken: claimed.fencingToken },
  ];
  check(JSON.stringify(ledger) === JSON.stringify(expected), () => `the hypervisor accepted ${JSON.stringify(ledger)}; expected ${JSON.stringify(expected)}`);
  timeline.note(
    `the hypervisor accepted snapshot and disk-copied with token ${granted.fencingToken}, ` +
      `flavor-switched and restarted with token ${claimed.fencingToken}: each step once`,
  );
}

/** HH:MM:SS.mmmuuu: the millisecond and what is below it, to see that two sends share one. */
function clockTime(at: number): string {
  const micros = Math.floor((at % 1) * 1000);
  return `${new Date(Math.floor(at)).toISOString().slice(11, 23)}${micros.toString().padStart(3, '0')}`;
}

/** When the service recorded an event: its stream entry id starts with Redis' clock in ms. */
function recordedAt(event: ServiceEvent): number {
  return Number(event.id.split('-')[0]);
}

async function curtain({ stage, timeline }: Play) {
  timeline.act('The service stops as an operator would stop it');
  // The event stream is left open for the service to end: a client that drops it just
  // before the SIGTERM was seen to hold the stop up for 4 s (undici's keep-alive time).
  timeline.event(wallClock(), 'demo', `SIGTERM to the lease service (pid ${stage.service.pid})`);
  const exit = await stage.service.stop(SHUTDOWN_TIMEOUT_MS);
  check(exit.code === 0, () => `the service ended with ${exit.signal ?? `exit code ${exit.code}`}: ${stage.service.output().trim()}`);
  const redisPid = stage.service.redisPid;
  check(redisPid === null || !isAlive(redisPid), () => `the service exited but its redis-server (pid ${redisPid}) still runs`);
  timeline.event(wallClock(), 'lease-service', `stopped (exit code 0), and its redis-server (pid ${redisPid ?? '?'}) with it`);
}
