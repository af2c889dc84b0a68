// What must hold in Redis between any two requests, whatever they were: checked over one
// consistent snapshot of one key prefix, so a test can call it after every step (the
// property-based test does) or once at its end. Each violation is one sentence a person can
// act on; an empty list means the state is sound.
//
// The snapshot is taken by one Lua script (SCAN of the prefix, then every key's contents), so
// it is atomic: the reaper or a waiting request may run before or after it, never half-way
// through it. It reads only the prefix's own keys and refuses to read more than MAX_KEYS.
//
// Lease fields relied on: holder, res ("x<path> s<path>"), tok, st, exp, ld, oid, end, and the
// presence of an action (`kind`, or a legacy `act`); nothing else of the action.
import type { Redis } from 'ioredis';
import { NODE_KEY_MAX, nodeKeyName as nodeName } from '../../src/store/node-digests.js';

export interface InvariantOptions {
  /**
   * The largest fencing token the caller has seen (in answers or in Redis). The token counter
   * must not be below it; the checker raises it to the counter, so pass the same object on
   * every call and tokens are checked never to go backwards.
   */
  tokens?: { highest: bigint };
  /**
   * No request is in flight: every waiting acquire has been answered, so no ticket may be
   * left in the queue (tickets are for requests still waiting).
   */
  quiescent?: boolean;
}

/** How many keys one check reads at most: a test's prefix holds far fewer. */
export const MAX_KEYS = 50000;

type Contents = Record<string, string> | [string, number][] | string | number | null;

/** One prefix's keys, read at one instant, and Redis' clock at that instant (ms). */
export interface Snapshot {
  now: number;
  /** key without the prefix -> its type and contents (hash fields, zset entries, string, stream length). */
  keys: Map<string, { type: string; value: Contents }>;
}

const SNAPSHOT_SCRIPT = `
local pattern, limit = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local out = { t[1] .. string.format('%06d', tonumber(t[2])) }
local cursor, keys = '0', {}
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do keys[#keys + 1] = key end
  if #keys > limit then return { 'too_many', #keys } end
until cursor == '0'
for _, key in ipairs(keys) do
  local kind = redis.call('TYPE', key).ok
  local value
  if kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  elseif kind == 'string' then value = { redis.call('GET', key) }
  elseif kind == 'stream' then value = { tostring(redis.call('XLEN', key)) }
  else value = {} end
  out[#out + 1] = key
  out[#out + 1] = kind
  out[#out + 1] = value
end
return out
`;

/** "{lease}:" for either "lease" (a KEY_PREFIX) or "{lease}:" (the prefix itself). */
export function fullPrefix(keyPrefix: string): string {
  return keyPrefix.startsWith('{') ? keyPrefix : `{${keyPrefix}}:`;
}

function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function parseScore(text: string): number {
  if (text === 'inf' || text === '+inf') return Infinity;
  if (text === '-inf') return -Infinity;
  return Number(text);
}

/** Reads every key of the prefix, atomically. */
export async function takeSnapshot(redis: Redis, keyPrefix: string): Promise<Snapshot> {
  const prefix = fullPrefix(keyPrefix);
  const reply = (await redis.eval(SNAPSHOT_SCRIPT, 0, `${globEscape(prefix)}*`, String(MAX_KEYS))) as unknown[];
  if (reply[0] === 'too_many') throw new Error(`checkInvariants: more than ${MAX_KEYS} keys under ${prefix}; refusing to read them all`);
  const micros = BigInt(reply[0] as string);
  const keys = new Map<string, { type: string; value: Contents }>();
  for (let i = 1; i + 2 < reply.length; i += 3) {
    const key = (reply[i] as string).slice(prefix.length);
    const type = reply[i + 1] as string;
    const raw = reply[i + 2] as string[];
    let value: Contents = null;
    if (type === 'hash') {
      const record: Record<string, string> = {};
      for (let j = 0; j < raw.length; j += 2) record[raw[j]!] = raw[j + 1]!;
      value = record;
    } else if (type === 'zset') {
      const entries: [string, number][] = [];
      for (let j = 0; j < raw.length; j += 2) entries.push([raw[j]!, parseScore(raw[j + 1]!)]);
      value = entries;
    } else if (type === 'string') {
      value = raw[0] ?? null;
    } else if (type === 'stream') {
      value = Number(raw[0]);
    }
    keys.set(key, { type, value });
  }
  return { now: Number(micros / 1000n), keys };
}

/**
 * Checks the invariants of the lease store over the keys of `keyPrefix` (a KEY_PREFIX such as
 * "t1a2b3c4d", or the full "{t1a2b3c4d}:"). Returns the violations, [] when there are none.
 */
export async function checkInvariants(redis: Redis, keyPrefix: string, options: InvariantOptions = {}): Promise<string[]> {
  return findViolations(await takeSnapshot(redis, keyPrefix), options);
}

// ---------------------------------------------------------------------------------------
// The analysis, on a snapshot.

type Mode = 'x' | 's';
interface Res {
  mode: Mode;
  path: string;
}

/** The sorted-set families that index leases (and, prefixed with w, tickets) by path. */
const AT: Record<Mode, string> = { x: 'ax:', s: 'as:' };
const BELOW: Record<Mode, string> = { x: 'bx:', s: 'bs:' };
const TICKET_AT: Record<Mode, string> = { x: 'wx:', s: 'ws:' };
const TICKET_BELOW: Record<Mode, string> = { x: 'wbx:', s: 'wbs:' };
const BLOCKING_FAMILIES = ['ax:', 'as:', 'bx:', 'bs:'] as const;
const TICKET_FAMILIES = ['wx:', 'ws:', 'wbx:', 'wbs:'] as const;

const LEASE_STATES = new Set(['active', 'orphaned', 'released', 'expired', 'revoked']);
const ENDED_STATES = new Set(['released', 'expired', 'revoked']);
const ORPHAN_STATES = new Set(['pending', 'claimed', 'dead_letter', 'resolved']);

function decodeResources(stored: string | undefined): Res[] | null {
  if (stored === undefined) return null;
  const out: Res[] = [];
  for (const entry of stored.split(' ').filter((e) => e !== '')) {
    const mode = entry[0];
    if ((mode !== 'x' && mode !== 's') || entry.length < 2) return null;
    out.push({ mode, path: entry.slice(1) });
  }
  return out.length > 0 ? out : null;
}

/** Proper ancestors, shallowest first: "a/b/c" -> ["a", "a/b"]. */
function ancestors(path: string): string[] {
  const list: string[] = [];
  for (let at = path.indexOf('/'); at !== -1; at = path.indexOf('/', at + 1)) list.push(path.slice(0, at));
  return list;
}

/**
 * Nodes of at most this many segments keep below-sets; a resource deeper than SHALLOW + 1
 * is also a member "<path> <id>" of a deep set (src/store/lua/includes/indexes.lua).
 */
const SHALLOW = 3;
const DEEP: Record<Mode, string> = { x: 'deep:x', s: 'deep:s' };
const TICKET_DEEP: Record<Mode, string> = { x: 'wdeep:x', s: 'wdeep:s' };

function isDeep(path: string): boolean {
  return ancestors(path).length > SHALLOW;
}


function covers(outer: string, inner: string): boolean {
  return outer === inner || inner.startsWith(`${outer}/`);
}

/** Every set key (without prefix) a holder of `resources` is entered in. */
function impliedKeys(resources: Res[], at: Record<Mode, string>, below: Record<Mode, string>): string[] {
  const keys: string[] = [];
  for (const r of resources) {
    keys.push(at[r.mode] + nodeName(r.path));
    for (const a of ancestors(r.path).slice(0, SHALLOW)) keys.push(below[r.mode] + nodeName(a));
  }
  return keys;
}

/** Does an entry in `family` at `path` fit these resources (the lease lists what it blocks)? */
function entryFits(family: string, path: string, resources: Res[]): boolean {
  const mode: Mode = family.endsWith('x:') ? 'x' : 's';
  const atNode = family === 'ax:' || family === 'as:' || family === 'wx:' || family === 'ws:';
  // Only nodes of at most SHALLOW segments keep below-sets.
  if (!atNode && ancestors(path).length >= SHALLOW) return false;
  return resources.some((r) => r.mode === mode && (atNode ? r.path === path : r.path.length > path.length && covers(path, r.path)));
}

function fmtScore(score: number): string {
  return score === Infinity ? '+inf' : String(score);
}

function conflicting(a: Res, b: Res): boolean {
  return (covers(a.path, b.path) || covers(b.path, a.path)) && (a.mode === 'x' || b.mode === 'x');
}

export function findViolations(snapshot: Snapshot, options: InvariantOptions = {}): string[] {
  const { now, keys } = snapshot;
  const violations: string[] = [];
  const bad = (message: string) => violations.push(message);

  const zset = (key: string): Map<string, number> | undefined => {
    const entry = keys.get(key);
    return entry?.type === 'zset' ? new Map(entry.value as [string, number][]) : undefined;
  };
  const zscore = (key: string, member: string): number | undefined => zset(key)?.get(member);

  // Gather records and set keys by family.
  const leases = new Map<string, Record<string, string>>();
  const orphans = new Map<string, Record<string, string>>();
  const tickets = new Map<string, Record<string, string>>();
  const blockingSets: { family: string; path: string; key: string }[] = [];
  const ticketSets: { family: string; path: string; key: string }[] = [];
  const holderSets: { holder: string; key: string }[] = [];
  const kindQueues: { kind: string; key: string }[] = [];
  const stateSets: { state: string; key: string }[] = [];
  for (const [key, entry] of keys) {
    if (key.startsWith('l:') && entry.type === 'hash') leases.set(key.slice(2), entry.value as Record<string, string>);
    else if (key.startsWith('o:') && entry.type === 'hash') orphans.set(key.slice(2), entry.value as Record<string, string>);
    else if (key.startsWith('w:') && entry.type === 'hash') tickets.set(key.slice(2), entry.value as Record<string, string>);
    else if (key.startsWith('h:')) holderSets.push({ holder: key.slice(2), key });
    else if (key.startsWith('ok:')) kindQueues.push({ kind: key.slice(3), key });
    else if (key.startsWith('os:')) stateSets.push({ state: key.slice(3), key });
    else {
      const family = BLOCKING_FAMILIES.find((f) => key.startsWith(f));
      if (family) blockingSets.push({ family, path: key.slice(family.length), key });
      const ticketFamily = TICKET_FAMILIES.find((f) => key.startsWith(f));
      if (ticketFamily) ticketSets.push({ family: ticketFamily, path: key.slice(ticketFamily.length), key });
      // A long node is named by its SHA-1 (layout 2): one named as it is was left by an earlier layout.
      const name = key.slice((family ?? ticketFamily ?? key).length);
      if ((family || ticketFamily) && name.length > NODE_KEY_MAX && !name.startsWith('#')) {
        bad(`${key} names a node of ${name.length} characters as it is, not by its SHA-1: nothing looks for it there`);
      }
    }
  }

  const hasAction = (lease: Record<string, string>) => lease.kind !== undefined || lease.act !== undefined;
  const resourcesOf = new Map<string, Res[]>();
  for (const [id, lease] of leases) {
    const resources = decodeResources(lease.res);
    if (!resources) bad(`lease ${id} has no readable res field (${JSON.stringify(lease.res)})`);
    else resourcesOf.set(id, resources);
  }
  // Keys name long nodes by digest: name them by node again, for the nodes anything holds.
  const nodeOfName = new Map<string, string>();
  const records = [...leases.values(), ...tickets.values()];
  for (const r of records.flatMap((record) => decodeResources(record.res) ?? [])) {
    for (const node of [...ancestors(r.path), r.path]) if (node.length > NODE_KEY_MAX) nodeOfName.set(nodeName(node), node);
  }
  for (const set of [...blockingSets, ...ticketSets]) set.path = nodeOfName.get(set.path) ?? set.path;

  // --- Tokens never go backwards.
  const counterText = keys.get('token')?.value;
  let counter: bigint | null = null;
  if (typeof counterText === 'string' && /^\d+$/.test(counterText)) counter = BigInt(counterText);
  else if (counterText !== undefined && counterText !== null) bad(`the token counter holds ${JSON.stringify(counterText)}, not a number`);
  const tokenOf = (text: string | undefined): bigint | null => (text !== undefined && /^\d+$/.test(text) ? BigInt(text) : null);
  if (options.tokens) {
    if (counter === null && options.tokens.highest > 0n) bad(`the token counter is gone, yet token ${options.tokens.highest} was issued`);
    if (counter !== null && counter < options.tokens.highest) {
      bad(`the token counter went backwards: ${counter} is below ${options.tokens.highest}, a token already seen`);
    }
    if (counter !== null && counter > options.tokens.highest) options.tokens.highest = counter;
  }

  // --- Leases: their own fields, and the entries their state implies.
  const blockingEntriesOf = new Map<string, { key: string; score: number }[]>();
  for (const { key } of blockingSets) {
    for (const [member, score] of zset(key) ?? new Map<string, number>()) {
      const list = blockingEntriesOf.get(member) ?? [];
      list.push({ key, score });
      blockingEntriesOf.set(member, list);
    }
  }

  for (const [id, lease] of leases) {
    const st = lease.st ?? '';
    if (!LEASE_STATES.has(st)) bad(`lease ${id} has state ${JSON.stringify(lease.st)}`);
    const tok = tokenOf(lease.tok);
    if (tok === null) bad(`lease ${id} has fencing token ${JSON.stringify(lease.tok)}`);
    else if (counter !== null && tok > counter) bad(`lease ${id} carries token ${tok}, above the token counter ${counter}`);
    const resources = resourcesOf.get(id);
    const entries = blockingEntriesOf.get(id) ?? [];
    const scores = new Set(entries.map((e) => e.score));
    if (scores.size > 1) {
      bad(`lease ${id} (${st}) has blocking entries with different scores: ${entries.map((e) => `${e.key}=${fmtScore(e.score)}`).join(', ')}`);
    }

    if (st === 'active' || st === 'orphaned') {
      if (resources) {
        for (const key of impliedKeys(resources, AT, BELOW)) {
          const score = zscore(key, id);
          if (score === undefined) {
            bad(`lease ${id} (${st}) holds ${lease.res} but has no entry in ${key}: that path is not blocked`);
          } else if ((st === 'orphaned' || hasAction(lease)) && score !== Infinity) {
            bad(`lease ${id} (${st}, with an action) is scored ${fmtScore(score)} in ${key}, not +inf: its resources would free up when it dies`);
          } else if (st === 'active' && !hasAction(lease) && lease.exp !== undefined && score < Number(lease.exp)) {
            bad(`lease ${id} (active, expires ${lease.exp}) is scored ${fmtScore(score)} in ${key}: it stops blocking before it expires`);
          }
        }
      }
      if (resources) {
        // A deep member may be gone only once its lease stopped blocking (an acquire drops those it meets).
        for (const r of resources.filter((r) => isDeep(r.path))) {
          const atScore = zscore(AT[r.mode] + nodeName(r.path), id);
          if (zscore(DEEP[r.mode], `${r.path} ${id}`) === undefined && atScore !== undefined && atScore > now) {
            bad(`lease ${id} (${st}) holds ${r.mode} ${r.path} but has no member in ${DEEP[r.mode]}: nothing below its ancestors past ${SHALLOW} segments sees it`);
          }
        }
      }
      if (zscore('t:', id) === undefined) bad(`lease ${id} (${st}) is missing from the listing index t:`);
      else if (tok !== null && zscore('t:', id) !== Number(tok)) bad(`lease ${id} is scored ${zscore('t:', id)} in t:, not its token ${tok}`);
      if (lease.holder === undefined) bad(`lease ${id} (${st}) has no holder`);
      else if (zscore(`h:${lease.holder}`, id) === undefined) bad(`lease ${id} (${st}) is missing from its holder's index h:${lease.holder}`);
    }

    if (st === 'active') {
      const due = zscore('exp', id);
      if (due === undefined) bad(`active lease ${id} is not in the expiry schedule exp: nobody would settle it`);
      else if (lease.exp !== undefined && due !== Number(lease.exp)) bad(`active lease ${id} is due at ${due} in exp, but expires at ${lease.exp}`);
      if (lease.oid !== undefined) {
        // A claim's lease: its orphan is claimed by it.
        const orphan = orphans.get(lease.oid);
        if (!orphan) bad(`active lease ${id} claims orphan ${lease.oid}, which does not exist`);
        else if (orphan.st !== 'claimed' || orphan.cl !== id) {
          bad(`active lease ${id} claims orphan ${lease.oid}, but that orphan is ${orphan.st} with claim lease ${orphan.cl ?? 'none'}`);
        }
      }
    }

    if (st === 'orphaned') {
      if (!hasAction(lease)) bad(`lease ${id} is orphaned but carries no action`);
      if (lease.oid === undefined) bad(`lease ${id} is orphaned but has no orphan id (oid): nothing can claim or resolve it, its resources stay blocked for ever`);
      else {
        const orphan = orphans.get(lease.oid);
        if (!orphan) bad(`lease ${id} is orphaned as ${lease.oid}, but that orphan does not exist: its resources stay blocked for ever`);
        else if (!['pending', 'claimed', 'dead_letter'].includes(orphan.st ?? '')) {
          bad(`lease ${id} is orphaned as ${lease.oid}, but that orphan is ${orphan.st}: nothing will free its resources`);
        } else if (orphan.lid !== id) {
          bad(`lease ${id} is orphaned as ${lease.oid}, but that orphan's last lease is ${orphan.lid}: resolving it would not free this one`);
        }
      }
    }

    if (ENDED_STATES.has(st)) {
      if (zscore('t:', id) !== undefined) bad(`lease ${id} has ended (${st}) but is still in the listing index t:`);
      if (lease.holder !== undefined && zscore(`h:${lease.holder}`, id) !== undefined) bad(`lease ${id} has ended (${st}) but is still in h:${lease.holder}`);
      if (entries.length > 0) {
        const lockDelayEnd = Number(lease.end ?? NaN) + Number(lease.ld ?? '0');
        for (const { key, score } of entries) {
          if (st === 'released') bad(`lease ${id} was released but still has an entry in ${key} (score ${fmtScore(score)})`);
          else if (!Number.isFinite(score) || score !== lockDelayEnd) {
            bad(`lease ${id} has ended (${st}) but is scored ${fmtScore(score)} in ${key}, not end + lockDelay = ${lockDelayEnd}`);
          }
        }
        if (st !== 'released' && zscore('exp', id) === undefined) {
          bad(`lease ${id} has ended (${st}) in its lock delay, but is not in exp: its blocking entries would never be dropped`);
        }
      }
    }
  }

  // --- Blocking sets: each entry names a lease that lists what it blocks; live entries of
  // two leases never conflict.
  const live: { id: string; res: Res }[] = [];
  for (const { family, path, key } of blockingSets) {
    for (const [id, score] of zset(key) ?? new Map<string, number>()) {
      const isLive = score > now;
      const lease = leases.get(id);
      if (!lease) {
        bad(`${key} holds ${id} (score ${fmtScore(score)}${isLive ? ', blocking now' : ''}), but lease ${id} does not exist`);
        continue;
      }
      const resources = resourcesOf.get(id);
      if (resources && !entryFits(family, path, resources)) {
        bad(`${key} holds lease ${id} (${lease.st}, score ${fmtScore(score)}), which lists ${lease.res}: it blocks a path it does not hold`);
      }
      if (isLive && (family === 'ax:' || family === 'as:')) live.push({ id, res: { mode: family === 'ax:' ? 'x' : 's', path } });
    }
  }
  // Deep members: "<path> <id>" of a lease that lists that path in that mode, scored 0.
  for (const mode of ['x', 's'] as const) {
    for (const [member, score] of zset(DEEP[mode]) ?? new Map<string, number>()) {
      const [path = '', id = ''] = member.split(' ');
      const lease = leases.get(id);
      if (score !== 0) bad(`${DEEP[mode]} member ${member} is scored ${fmtScore(score)}, not 0: a lex range would not find it`);
      if (!lease) bad(`${DEEP[mode]} holds ${member}, but lease ${id} does not exist`);
      else if (lease.st === 'released') bad(`${DEEP[mode]} holds ${member}, but that lease was released`);
      else if (!(resourcesOf.get(id) ?? []).some((r) => r.mode === mode && r.path === path && isDeep(path))) {
        bad(`${DEEP[mode]} holds ${member}, but lease ${id} lists ${lease.res}: it blocks a path it does not hold`);
      }
    }
  }
  for (let i = 0; i < live.length; i++) {
    for (let j = i + 1; j < live.length; j++) {
      const a = live[i]!;
      const b = live[j]!;
      if (a.id !== b.id && conflicting(a.res, b.res)) {
        bad(
          `leases ${a.id} (${leases.get(a.id)?.st}, ${a.res.mode} ${a.res.path}) and ${b.id} (${leases.get(b.id)?.st}, ${b.res.mode} ${b.res.path}) ` +
            'block conflicting paths at the same time',
        );
      }
    }
  }

  // --- Listing indexes.
  for (const [id, score] of zset('t:') ?? new Map<string, number>()) {
    const lease = leases.get(id);
    if (!lease) bad(`t: lists ${id} (token ${score}), but lease ${id} does not exist`);
  }
  for (const { holder, key } of holderSets) {
    for (const [id] of zset(key) ?? new Map<string, number>()) {
      const lease = leases.get(id);
      if (!lease) bad(`${key} lists ${id}, but lease ${id} does not exist`);
      else if (lease.holder !== holder) bad(`${key} lists lease ${id}, whose holder is ${JSON.stringify(lease.holder)}`);
    }
  }

  // --- Orphans and their queues.
  const oa = zset('oa') ?? new Map<string, number>();
  const stateOf = new Map<string, string>();
  for (const [oid, orphan] of orphans) {
    const st = orphan.st ?? '';
    stateOf.set(oid, st);
    if (!ORPHAN_STATES.has(st)) bad(`orphan ${oid} has state ${JSON.stringify(orphan.st)}`);
    if (!orphan.kind) bad(`orphan ${oid} has no kind`);
    if (!oa.has(oid)) bad(`orphan ${oid} (${st}) is missing from the index of all orphans oa`);
    if (zscore(`os:${st}`, oid) === undefined) bad(`orphan ${oid} is ${st} but missing from os:${st}`);
    const ltok = tokenOf(orphan.ltok);
    if (ltok !== null && counter !== null && ltok > counter) bad(`orphan ${oid} has last token ${ltok}, above the token counter ${counter}`);
    if (st === 'pending') {
      if (zscore('oq', oid) === undefined) bad(`orphan ${oid} is pending but not in the queue oq: no claim will find it`);
      if (orphan.kind && zscore(`ok:${orphan.kind}`, oid) === undefined) {
        bad(`orphan ${oid} is pending but not in ok:${orphan.kind}: a claim for its kind will not find it`);
      }
    }
    if (st === 'pending' || st === 'dead_letter') {
      const lease = orphan.lid === undefined ? undefined : leases.get(orphan.lid);
      if (!lease) bad(`orphan ${oid} is ${st}, but its last lease ${orphan.lid} does not exist: nothing reserves its resources`);
      else if (lease.st !== 'orphaned') bad(`orphan ${oid} is ${st}, but its last lease ${orphan.lid} is ${lease.st}, not orphaned: its resources are not reserved`);
      else {
        if (lease.oid !== oid) bad(`orphan ${oid}'s last lease ${orphan.lid} points at orphan ${lease.oid}`);
        if (lease.res !== orphan.res) bad(`orphan ${oid} lists ${orphan.res}, its orphaned lease ${orphan.lid} holds ${lease.res}`);
      }
    }
    if (st === 'claimed') {
      const lease = orphan.cl === undefined ? undefined : leases.get(orphan.cl);
      if (!lease) bad(`orphan ${oid} is claimed by lease ${orphan.cl}, which does not exist`);
      else if (lease.st !== 'active') bad(`orphan ${oid} is claimed by lease ${orphan.cl}, which is ${lease.st}, not active`);
      else {
        if (lease.oid !== oid) bad(`orphan ${oid} is claimed by lease ${orphan.cl}, which points at orphan ${lease.oid}`);
        if (lease.res !== orphan.res) bad(`orphan ${oid} lists ${orphan.res}, its claim lease ${orphan.cl} holds ${lease.res}`);
        const tok = tokenOf(lease.tok);
        if (tok !== null && ltok !== null && tok <= ltok) bad(`orphan ${oid}'s claim lease carries token ${tok}, not above the last token ${ltok}`);
      }
    }
    if (st === 'resolved' && zscore('oexp', oid) === undefined) bad(`orphan ${oid} is resolved but not scheduled for dropping in oexp`);
  }
  for (const [oid] of zset('oq') ?? new Map<string, number>()) {
    if (stateOf.get(oid) !== 'pending') bad(`the queue oq holds ${oid}, which is ${orphans.has(oid) ? stateOf.get(oid) : 'missing'}, not a pending orphan`);
  }
  for (const { kind, key } of kindQueues) {
    for (const [oid] of zset(key) ?? new Map<string, number>()) {
      const orphan = orphans.get(oid);
      if (!orphan || orphan.st !== 'pending') bad(`${key} holds ${oid}, which is ${orphan ? orphan.st : 'missing'}, not a pending orphan`);
      else if (orphan.kind !== kind) bad(`${key} holds orphan ${oid} of kind ${JSON.stringify(orphan.kind)}`);
    }
  }
  for (const { state, key } of stateSets) {
    for (const [oid] of zset(key) ?? new Map<string, number>()) {
      if (stateOf.get(oid) !== state) bad(`${key} holds ${oid}, which is ${orphans.has(oid) ? stateOf.get(oid) : 'missing'}`);
    }
  }
  for (const [oid] of oa) if (!orphans.has(oid)) bad(`oa holds ${oid}, but orphan ${oid} does not exist`);

  // --- Tickets of waiting requests.
  for (const { family, path, key } of ticketSets) {
    for (const [id] of zset(key) ?? new Map<string, number>()) {
      const ticket = tickets.get(id);
      if (!ticket) bad(`${key} holds ticket ${id}, which does not exist`);
      else {
        const resources = decodeResources(ticket.res);
        if (resources && !entryFits(family, path, resources)) bad(`${key} holds ticket ${id}, which lists ${ticket.res}`);
      }
    }
  }
  for (const mode of ['x', 's'] as const) {
    for (const [member] of zset(TICKET_DEEP[mode]) ?? new Map<string, number>()) {
      const [path = '', id = ''] = member.split(' ');
      const ticket = tickets.get(id);
      if (!ticket) bad(`${TICKET_DEEP[mode]} holds ${member}, but ticket ${id} does not exist`);
      else if (!(decodeResources(ticket.res) ?? []).some((r) => r.mode === mode && r.path === path && isDeep(path))) {
        bad(`${TICKET_DEEP[mode]} holds ${member}, but ticket ${id} lists ${ticket.res}`);
      }
    }
  }
  for (const [id] of zset('wexp') ?? new Map<string, number>()) {
    if (!tickets.has(id)) bad(`wexp holds ticket ${id}, which does not exist`);
  }
  for (const [id, seq] of zset('wq') ?? new Map<string, number>()) {
    const ticket = tickets.get(id);
    if (!ticket) bad(`wq holds ticket ${id}, which does not exist`);
    else if (Number(ticket.seq) !== seq) bad(`wq holds ticket ${id} at ${seq}, but it arrived ${ticket.seq}`);
  }
  for (const [id, ticket] of tickets) {
    const resources = decodeResources(ticket.res);
    if (!resources) bad(`ticket ${id} has no readable res (${JSON.stringify(ticket.res)})`);
    else {
      for (const key of impliedKeys(resources, TICKET_AT, TICKET_BELOW)) {
        if (zscore(key, id) === undefined) bad(`ticket ${id} lists ${ticket.res} but is missing from ${key}`);
      }
      for (const r of resources.filter((r) => isDeep(r.path))) {
        if (zscore(TICKET_DEEP[r.mode], `${r.path} ${id}`) === undefined) bad(`ticket ${id} lists ${ticket.res} but has no member ${r.path} in ${TICKET_DEEP[r.mode]}`);
      }
    }
    if (zscore('wexp', id) === undefined) bad(`ticket ${id} is not in wexp: a crashed replica's ticket would never lapse`);
    if (zscore('wq', id) === undefined) bad(`ticket ${id} is not in wq: a later request would not know it came first`);
    if (options.quiescent) bad(`ticket ${id} (${ticket.holder}, ${ticket.res}) is still queued, though no request is waiting`);
  }

  return violations;
}
