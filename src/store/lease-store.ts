// The typed face of the lease scripts: it marshals arguments in and records out, and
// holds no logic of its own. Each method is one script call, one round trip; `call` adds
// what every script is passed first (includes/prelude.lua). The records it answers with are
// records.ts's, read from the scripts' replies by decoders.ts.
import { fieldMap, toConflicts, toLease, toOrphan } from './decoders.js';
import { storeKeys } from './keys.js';
import { nodeDigests } from './node-digests.js';
import type { Conflict, LeaseRecord, OrphanRecord, OrphanState, Outcome } from './records.js';
import { RedisClock } from './redis-clock.js';
import { encodeResources, type ResourceClaim } from './resource-codec.js';
import type { ScriptRunner } from './scripts.js';

/** An action as an acquire gives it: its payload already JSON, stored as is. */
export interface ActionInput {
  kind: string;
  maxAttempts: number;
  /** The payload as JSON, or null for none. */
  payloadJson: string | null;
}

/**
 * How an acquire treats a conflict: answer it at once (null), queue a ticket ("open"),
 * look again in the ticket's turn ("retry"), or end the wait ("last").
 */
export type WaitStep = { step: 'open' | 'retry'; ticketTtlMs: number } | { step: 'last' } | null;

export interface AcquireInput {
  id: string;
  holder: string;
  resources: ResourceClaim[];
  ttlMs: number;
  maxHoldMs: number;
  lockDelayMs: number;
  action: ActionInput | null;
  requestId: string | null;
  fingerprint: string;
  conflictLimit: number;
  wait: WaitStep;
}

export type AcquireResult =
  | { kind: 'granted' | 'existing'; now: number; lease: LeaseRecord }
  | { kind: 'conflict'; now: number; conflicts: Conflict[] }
  /** Queued: look again on a "freed" notice for its paths, or at wakeAt (Redis-clock ms). */
  | { kind: 'waiting'; now: number; conflicts: Conflict[]; wakeAt: number | null }
  | { kind: 'request_id_reused'; now: number; leaseId: string }
  /** The caller (its actor) holds its quota of active leases in this namespace; nothing changed. */
  | { kind: 'over_quota'; now: number }
  /**
   * Nothing blocking was found, but the search gave up before it had seen every lease below a
   * deep path (a crowd of leases that expired together and await the reaper); nothing was
   * granted. Asking again shortly finds fewer (see includes/conflicts.lua).
   */
  | { kind: 'undecided'; now: number };

export type LeaseChange =
  | { kind: 'done'; now: number; lease: LeaseRecord }
  | { kind: 'ended'; now: number; lease: LeaseRecord }
  | { kind: 'missing'; now: number }
  /** The lease's holder is not one the caller may act as; nothing changed. */
  | { kind: 'forbidden'; now: number };

/**
 * The holders a caller may act as, a glob in which * matches any run of characters
 * (conductor-*), or null for any holder.
 */
export type HolderGlob = string | null;

export type RenewResult = LeaseChange | { kind: 'no_action'; now: number };

export interface ListQuery {
  holder: string | null;
  prefix: string | null;
  state: 'active' | 'orphaned' | null;
  afterToken: string | null;
  limit: number;
  scanBudget: number;
  /** Answer with payloads and progress (else they are not even read). */
  withPayload: boolean;
}

export interface FencingHolder {
  leaseId: string;
  holder: string;
  fencingToken: string;
}

export interface ResourceView {
  now: number;
  coveredBy: LeaseRecord[];
  /** Index entries covering the path: leases that hold it, and lock-delayed tombstones. */
  coveringCount: number;
  belowCount: number;
  below: LeaseRecord[];
}

export interface HolderRenewal {
  now: number;
  renewed: { id: string; expiresAt: number }[];
  /** The token to go on after, or null when the holder's index was read to its end. */
  nextToken: string | null;
  /** The holder's index entries after nextToken (active and orphaned leases). */
  remaining: number;
}

export type ClaimResult =
  | { kind: 'claimed'; now: number; orphan: OrphanRecord; lease: LeaseRecord }
  | { kind: 'none'; now: number }
  | { kind: 'over_quota'; now: number };

export type ResolveResult =
  | { kind: 'resolved' | 'claimed' | 'already_resolved'; now: number; orphan: OrphanRecord }
  | { kind: 'missing'; now: number };

export interface OrphanQuery {
  state: OrphanState | null;
  kind: string | null;
  afterSeq: string | null;
  limit: number;
  scanBudget: number;
  withPayload: boolean;
}

export interface SweepResult {
  settled: number;
  stillDue: number;
  /** Redis-clock ms when the next lease is due, or null when none is. */
  nextDueAt: number | null;
  /** Redis' clock when the sweep ran. */
  now: number;
}

/** The shared state /metrics reports, read with O(1) commands. */
export interface SharedStats {
  now: number;
  /** Leases holding resources: active and orphaned. */
  holdingLeases: number;
  pendingOrphans: number;
  claimedOrphans: number;
  deadLetterOrphans: number;
  waitingRequests: number;
  /** The scripts' transition counters (field names in includes/events.lua, next to `count`). */
  counters: Record<string, string>;
}

export interface StoreOptions {
  /** The Redis key prefix with its hash tag, e.g. "{lease}:". */
  keyPrefix: string;
  tombstoneTtlMs: number;
  /** The events and orphans streams keep about this many entries (XADD MAXLEN ~). */
  streamCap: number;
  /** The client's command timeout: a script that starts later than this does nothing. */
  commandTimeoutMs: number;
  /** Who asks (a token id): events name it, a lease records who acquired it. Default none. */
  actor?: string;
  /** The active leases the actor may hold in this namespace; 0 (the default) for no limit. */
  leaseQuota?: number;
  /** Our estimate of Redis' clock, shared by the stores of one Redis (else each has its own). */
  clock?: RedisClock;
  /** Told the round trip of every script call (for metrics). */
  observe?: (script: string, seconds: number, ok: boolean) => void;
}

/** A script reached Redis after its caller had stopped waiting, and changed nothing. */
export class ScriptTooLateError extends Error {
  constructor() {
    super('Command timed out: Redis ran the script after its deadline, and it changed nothing');
  }
}


type Fields = string[];

/**
 * Index entries (per resource of a lease: one at its path, one per ancestor of at most three
 * segments, one more for a deeper path; see includes/indexes.lua) that one sweep or one
 * holder renew writes or drops at most. Moving an entry costs Redis a few microseconds (up to
 * ten for 512-character paths), and a lease may have 64 x 5 of them: this, not a count of
 * leases, bounds such a call. One such lease, or 160 of two segments.
 */
export const INDEX_ENTRIES_PER_CALL = 320;

/**
 * Bytes of records one listing page (or one list of the resource view) holds at most: a page
 * of 1000 leases of 64 long paths each would be 32 MB. A page that is cut short has a cursor.
 */
export const PAGE_BYTES = 256 * 1024;

export class LeaseStore {
  private readonly keys: string[];
  private readonly common: string[];
  private readonly streamCap: string;
  private readonly clock: RedisClock;
  /** Time left for the reply to travel back before the client's timeout fires. */
  private readonly budgetMs: number;
  private readonly observe: NonNullable<StoreOptions['observe']>;
  private readonly actor: string;
  private readonly leaseQuota: string;

  constructor(
    private readonly run: ScriptRunner,
    private readonly options: StoreOptions,
  ) {
    this.observe = options.observe ?? (() => {});
    this.clock = options.clock ?? new RedisClock();
    this.actor = options.actor ?? '';
    this.leaseQuota = String(options.leaseQuota ?? 0);
    this.keys = [storeKeys(options.keyPrefix).token];
    this.common = [options.keyPrefix, String(options.tombstoneTtlMs)];
    this.streamCap = String(options.streamCap);
    this.budgetMs = options.commandTimeoutMs - Math.min(250, options.commandTimeoutMs / 4);
  }

  /** The same store, for requests of `actor` (a token id) with its lease quota; the same clock estimate. */
  as(actor: string, leaseQuota = 0): LeaseStore {
    return new LeaseStore(this.run, { ...this.options, clock: this.clock, actor, leaseQuota });
  }

  /** Runs a script; its reply starts with Redis' clock (ms), returned apart from the rest. */
  private async call(name: string, ...args: (string | number)[]): Promise<[number, ...unknown[]]> {
    const reply = await this.runWithDeadline(name, args);
    if (reply[0] !== 'too_late') return reply as [number, ...unknown[]];
    // The script changed nothing. Its caller got this reply in time, so the deadline was
    // wrong (Redis' clock stepped, e.g. after a failover), not the call slow: with the clock
    // just corrected from the reply, try once more.
    const retried = await this.runWithDeadline(name, args);
    if (retried[0] === 'too_late') throw new ScriptTooLateError();
    return retried as [number, ...unknown[]];
  }

  private async runWithDeadline(name: string, args: (string | number)[]): Promise<unknown[]> {
    const sentAt = RedisClock.local();
    let reply: unknown[];
    try {
      reply = (await this.run(name, this.keys, [...this.common, this.clock.deadline(this.budgetMs), this.streamCap, this.actor, this.leaseQuota, ...args])) as unknown[];
    } catch (error) {
      this.observe(name, (RedisClock.local() - sentAt) / 1000, false);
      throw error;
    }
    this.observe(name, (RedisClock.local() - sentAt) / 1000, true);
    const now = Number(reply[0] === 'too_late' ? reply[1] : reply[0]);
    this.clock.observe(now, sentAt, RedisClock.local());
    return reply;
  }

  async acquire(input: AcquireInput): Promise<AcquireResult> {
    const [now, kind, body, wakeAt] = await this.call(
      'acquire',
      input.id,
      input.holder,
      encodeResources(input.resources),
      input.ttlMs,
      input.maxHoldMs,
      input.lockDelayMs,
      input.action?.kind ?? '',
      input.action?.maxAttempts ?? '',
      input.action?.payloadJson ?? '',
      input.requestId ?? '',
      input.fingerprint,
      input.conflictLimit,
      input.wait?.step ?? '',
      input.wait && input.wait.step !== 'last' ? input.wait.ticketTtlMs : '',
      nodeDigests(input.resources.map((r) => r.path)),
    );
    if (kind === 'waiting') return { kind, now, conflicts: toConflicts(body as string[]), wakeAt: wakeAt === '' ? null : Number(wakeAt) };
    if (kind === 'conflict') return { kind, now, conflicts: toConflicts(body as string[]) };
    if (kind === 'request_id_reused') return { kind, now, leaseId: String(body) };
    if (kind === 'over_quota' || kind === 'undecided') return { kind, now };
    return { kind: kind as 'granted' | 'existing', now, lease: toLease(body as Fields) };
  }

  /** Takes a waiting acquire's ticket out of the queue; true if it was still there. */
  async cancelWait(id: string): Promise<boolean> {
    const [, dropped] = await this.call('cancelWait', id);
    return dropped === 1;
  }

  /** progressJson: the checkpoint as JSON (stored as is), or null to keep the last one. */
  async renew(id: string, ttlMs: number | null, progressJson: string | null, holders: HolderGlob = null): Promise<RenewResult> {
    const reply = await this.call('renew', id, ttlMs ?? '', progressJson ?? '', luaPattern(holders));
    if (reply[1] === 'no_action') return { kind: 'no_action', now: reply[0] };
    return toChange(reply, 'renewed');
  }

  /**
   * Renews up to `max` of the holder's leases, in token order after `afterToken`, and fewer
   * when their index entries to move pass INDEX_ENTRIES_PER_CALL.
   */
  async renewHolder(holder: string, ttlMs: number | null, afterToken: string | null, max: number): Promise<HolderRenewal> {
    const [now, flat, next, remaining] = (await this.call('renewHolder', holder, ttlMs ?? '', afterToken ?? '', max, INDEX_ENTRIES_PER_CALL)) as [
      number,
      (string | number)[],
      string,
      number,
    ];
    const renewed = [];
    for (let i = 0; i < flat.length; i += 2) renewed.push({ id: String(flat[i]), expiresAt: Number(flat[i + 1]) });
    return { now, renewed, nextToken: next === '' ? null : String(next), remaining: Number(remaining) };
  }

  async release(id: string, outcome: Outcome, holders: HolderGlob = null): Promise<LeaseChange> {
    return toChange(await this.call('release', id, outcome, luaPattern(holders)), 'released');
  }

  async revoke(id: string): Promise<LeaseChange> {
    return toChange(await this.call('revoke', id), 'revoked');
  }

  /** `holders`: the caller may read only leases of these holders (refused before anything is settled). */
  async get(id: string, holders: HolderGlob = null): Promise<LeaseChange> {
    return toChange(await this.call('get', id, luaPattern(holders)), 'found');
  }

  async list(query: ListQuery): Promise<{ now: number; nextToken: string | null; items: LeaseRecord[] }> {
    const [now, next, items] = (await this.call(
      'list',
      query.holder !== null ? 'h' : 't',
      query.holder ?? query.prefix ?? '',
      query.holder !== null ? (query.prefix ?? '') : '',
      query.state ?? '',
      query.afterToken ?? '',
      query.limit,
      query.scanBudget,
      query.withPayload ? '1' : '',
      PAGE_BYTES,
    )) as [number, string, Fields[]];
    return { now, nextToken: next === '' ? null : String(next), items: items.map(toLease) };
  }

  /** The first `limit` leases covering the path and below it; at most `budget` index entries read. */
  async resource(path: string, limit: number, withPayload: boolean, budget: number): Promise<ResourceView> {
    // Two lists in one answer: each gets half of what a page may read, so the answer's records
    // stay within one page's bytes. (What the worst case costs Redis is the 100 leases a list
    // reads when they are narrow, about 20 µs each: see the README's bounds.)
    const [now, covering, coveringCount, belowCount, below] = (await this.call('resource', path, limit, withPayload ? '1' : '', budget, PAGE_BYTES / 2, nodeDigests([path]))) as [
      number,
      Fields[],
      number,
      number,
      Fields[],
    ];
    return {
      now,
      coveredBy: covering.map(toLease),
      coveringCount: Number(coveringCount),
      belowCount: Number(belowCount),
      below: below.map(toLease),
    };
  }

  async checkFencing(
    path: string,
    fencingToken: string,
    limit: number,
  ): Promise<{ now: number; valid: boolean; current: FencingHolder[]; coveringCount: number }> {
    const [now, valid, flat, coveringCount] = (await this.call('fencingCheck', path, fencingToken, limit, nodeDigests([path]))) as [number, number, string[], number];
    const current: FencingHolder[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) current.push({ leaseId: flat[i]!, holder: flat[i + 1]!, fencingToken: flat[i + 2]! });
    return { now, valid: valid === 1, current, coveringCount: Number(coveringCount) };
  }

  /**
   * Settles up to `batch` due leases, drops resolved orphans whose keeping time is over, and
   * trims the streams' entries older than maxAgeMs, and the oldest past about maxBytes.
   */
  async sweep(batch: number, streams: { maxAgeMs: number; maxBytes: number }): Promise<SweepResult> {
    const [now, settled, stillDue, nextDue] = await this.call('sweep', batch, streams.maxAgeMs, INDEX_ENTRIES_PER_CALL, streams.maxBytes);
    return { now, settled: Number(settled), stillDue: Number(stillDue), nextDueAt: nextDue === '' ? null : Number(nextDue) };
  }

  /**
   * Moves a batch of one walk's records to this version's index layout (reindex-1.lua): "t:"
   * leases that hold resources, "exp" leases due (lock-delayed ones included), "wexp" tickets.
   * Returns the rank to go on from, or null when the walk is done.
   */
  async reindex(walk: 't:' | 'exp' | 'wexp', rank: number): Promise<number | null> {
    const [, next] = (await this.call('reindex', walk, rank)) as [number, number | string];
    return next === '' ? null : Number(next);
  }

  async stats(): Promise<SharedStats> {
    const [now, holding, pending, claimed, deadLetter, waiting, counters] = await this.call('stats');
    return {
      now,
      holdingLeases: Number(holding),
      pendingOrphans: Number(pending),
      claimedOrphans: Number(claimed),
      deadLetterOrphans: Number(deadLetter),
      waitingRequests: Number(waiting),
      counters: fieldMap(counters as string[]),
    };
  }

  async claim(input: { id: string; holder: string; ttlMs: number; maxHoldMs: number; kinds: string[] | null }): Promise<ClaimResult> {
    const [now, kind, orphan, lease] = await this.call(
      'claim',
      input.id,
      input.holder,
      input.ttlMs,
      input.maxHoldMs,
      // Kinds are printable (no control characters), so a newline separates them.
      input.kinds ? input.kinds.join('\n') : '',
    );
    if (kind === 'none' || kind === 'over_quota') return { kind, now };
    return { kind: 'claimed', now, orphan: toOrphan(orphan as Fields), lease: toLease(lease as Fields) };
  }

  async resolve(id: string, resolution: string): Promise<ResolveResult> {
    const [now, kind, orphan] = await this.call('resolve', id, resolution);
    if (kind === 'missing') return { kind, now };
    return { kind: kind as 'resolved' | 'claimed' | 'already_resolved', now, orphan: toOrphan(orphan as Fields) };
  }

  async getOrphan(id: string): Promise<{ now: number; orphan: OrphanRecord | null }> {
    const [now, kind, orphan] = await this.call('getOrphan', id);
    return { now, orphan: kind === 'found' ? toOrphan(orphan as Fields) : null };
  }

  async listOrphans(query: OrphanQuery): Promise<{ now: number; nextSeq: string | null; items: OrphanRecord[] }> {
    const [now, next, items] = (await this.call(
      'listOrphans',
      query.state ?? '',
      query.kind ?? '',
      query.afterSeq ?? '',
      query.limit,
      query.scanBudget,
      query.withPayload ? '1' : '',
      PAGE_BYTES,
    )) as [number, string, Fields[]];
    return { now, nextSeq: next === '' ? null : String(next), items: items.map(toOrphan) };
  }
}

function toChange([now, kind, fields]: [number, ...unknown[]], doneKind: string): LeaseChange {
  if (kind === 'missing' || kind === 'forbidden') return { kind, now };
  return { kind: kind === doneKind ? 'done' : 'ended', now, lease: toLease(fields as Fields) };
}

/** A holder glob as an anchored Lua pattern (* any run of characters, the rest literal); "" for any holder. */
function luaPattern(glob: HolderGlob): string {
  if (glob === null) return '';
  return `^${glob
    .split('*')
    .map((part) => part.replace(/[%^$().[\]*+\-?]/g, '%$&'))
    .join('.*')}$`;
}
