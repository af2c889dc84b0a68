/*
 * Redis' time per script call of two versions of the Lua library, side by side.
 *
 * Figures of two bench runs are not comparable on a shared machine (its speed wanders by a
 * third within an hour), so this loads the library of a git revision (--base) and the
 * working tree's into ONE private redis-server, each under its own key prefix, and calls
 * them in turns: every operation runs `--rounds` rounds, each round both versions one after
 * the other (old-new, then new-old), and Redis' own accounting (INFO commandstats, the
 * microseconds of FCALL) gives each version's time per call in each round. It prints the
 * median per call and the ratio new/old per operation. Both versions are driven by the
 * working tree's LeaseStore, so --base must take the same arguments (any revision since the
 * library became a Functions library, 915e3ab, whose scripts take what today's do).
 *
 * npm run bench:lua -- --base 753cd65 [--rounds 16]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRedisClient, waitUntilReady } from '../src/redis/connection.js';
import { type AcquireInput, LeaseStore } from '../src/store/lease-store.js';
import { defineScripts, loadLibrary } from '../src/store/scripts.js';
import { startPrivateRedis } from './lib/private-redis.js';
import { commandStats } from './lib/redis-info.js';
import { percentile } from './lib/stats.js';
import { REPO_ROOT } from './lib/service-process.js';

const { values } = parseArgs({ options: { base: { type: 'string', default: 'HEAD' }, rounds: { type: 'string', default: '16' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds takes a whole number of at least 1');

/** The Lua folder of `revision`, in a temporary folder. */
function luaOf(revision: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lease-lua-'));
  const archive = execFileSync('git', ['archive', revision, 'src/store/lua'], { cwd: REPO_ROOT });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  return join(dir, 'src/store/lua/');
}

const baseDir = luaOf(values.base);
const server = await startPrivateRedis('lua-side-by-side');
const redis = createRedisClient({ target: { mode: 'single', url: server.url }, commandTimeoutMs: 10000 });
try {
  await waitUntilReady(redis, 10000);
  const storeOf = (dir: string | undefined, prefix: string) =>
    new LeaseStore(defineScripts(redis, loadLibrary(dir)), { keyPrefix: prefix, tombstoneTtlMs: 3600000, streamCap: 10000, commandTimeoutMs: 10000 });
  const versions = { old: storeOf(baseDir, '{old}:'), new: storeOf(undefined, '{new}:') };
  type Version = keyof typeof versions;

  const fcallMicros = async (): Promise<[number, number]> => {
    const fcall = (await commandStats(redis)).get('fcall');
    return [fcall?.calls ?? 0, fcall?.usec ?? 0];
  };
  const newId = () => randomBytes(16).toString('base64url');
  const base: Omit<AcquireInput, 'id' | 'resources'> = {
    holder: 'h', ttlMs: 600000, maxHoldMs: 86400000, lockDelayMs: 0, action: null, requestId: null, fingerprint: '', conflictLimit: 10, wait: null,
  };
  const action = { kind: 'resize', maxAttempts: 3, payloadJson: '{"flavor":"m1.large"}' };
  // A maximal lease as the worst-case bench makes it: 64 paths of 16 segments and 512
  // characters that part at the first, the first segments as long as they may be (128), so
  // that every ancestor is long.
  const longPath = (head: string) => {
    const segments = [head, 's1', 's2'].map((start) => start.padEnd(128, 'x').slice(0, 128));
    for (let i = 3; i < 15; i++) segments.push(`s${i}`.padEnd(3, 'x'));
    segments.push('s15'.padEnd(512 - 15 - segments.join('').length, 'x'));
    return segments.join('/');
  };
  const wide = (tag: string) => Array.from({ length: 64 }, (_, r) => ({ path: longPath(`${tag}-${r}-`), mode: 'exclusive' as const }));
  const granted = async (store: LeaseStore, input: AcquireInput) => {
    const result = await store.acquire(input);
    if (result.kind !== 'granted') throw new Error(`expected a grant, got ${result.kind}`);
    return input.id;
  };

  // Each operation: how many calls a round makes, and the call (version, round, i). Renews and
  // releases act on the leases the acquires of the same round and version granted.
  const made: Record<string, string[]> = {};
  const leases = (kind: string, v: Version, round: number) => (made[`${kind} ${v} ${round}`] ??= []);
  const operations: [string, number, (v: Version, round: number, i: number) => Promise<unknown>][] = [
    ['acquire, 1 resource', 200, async (v, round, i) => leases('plain', v, round).push(await granted(versions[v], { ...base, id: newId(), resources: [{ path: `i/${round}-${i}`, mode: 'exclusive' }] }))],
    ['acquire with an action', 200, async (v, round, i) => leases('action', v, round).push(await granted(versions[v], { ...base, id: newId(), action, resources: [{ path: `a/${round}-${i}`, mode: 'exclusive' }] }))],
    ['acquire, conflict', 200, async (v, round, i) => versions[v].acquire({ ...base, id: newId(), resources: [{ path: `i/${round}-${i}`, mode: 'exclusive' }] })],
    ['renew', 200, async (v, round, i) => versions[v].renew(leases('plain', v, round)[i]!, 600000, null)],
    ['renew with an action', 200, async (v, round, i) => versions[v].renew(leases('action', v, round)[i]!, 600000, null)],
    ['release', 200, async (v, round, i) => versions[v].release(leases('plain', v, round)[i]!, 'completed')],
    ['release with an action', 200, async (v, round, i) => versions[v].release(leases('action', v, round)[i]!, 'completed')],
    ['acquire, 64 x 16', 2, async (v, round, i) => leases('wide', v, round).push(await granted(versions[v], { ...base, id: newId(), resources: wide(`${round}-${i}`) }))],
    ['renew, 64 x 16', 2, async (v, round, i) => versions[v].renew(leases('wide', v, round)[i]!, 600000, null)],
    ['release, 64 x 16', 2, async (v, round, i) => versions[v].release(leases('wide', v, round)[i]!, 'completed')],
  ];

  console.log(`Redis time per FCALL (INFO commandstats), --base ${values.base} (old) vs the working tree (new), ${rounds} rounds in turns`);
  console.log(`${'operation'.padEnd(24)} ${'old µs'.padStart(9)} ${'new µs'.padStart(9)} ${'new/old'.padStart(8)}`);
  for (const [label, calls, call] of operations) {
    const perCall: Record<Version, number[]> = { old: [], new: [] };
    for (let round = 0; round < rounds; round++) {
      for (const v of round % 2 === 0 ? (['old', 'new'] as const) : (['new', 'old'] as const)) {
        const [calls0, micros0] = await fcallMicros();
        for (let i = 0; i < calls; i++) await call(v, round, i);
        const [calls1, micros1] = await fcallMicros();
        perCall[v].push((micros1 - micros0) / (calls1 - calls0));
      }
    }
    const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
    const [oldMedian, newMedian] = [median(perCall.old), median(perCall.new)];
    console.log(`${label.padEnd(24)} ${oldMedian.toFixed(1).padStart(9)} ${newMedian.toFixed(1).padStart(9)} ${(newMedian / oldMedian).toFixed(2).padStart(8)}`);
  }
} finally {
  redis.disconnect();
  await server.stop();
  rmSync(join(baseDir, '../../..'), { recursive: true, force: true });
}
