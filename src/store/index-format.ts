// The layout of a store's path index, and moving a store written by an earlier version to
// it. Layout 2 keeps below-sets for the first three levels of the path tree only, a lex set
// for deeper paths, and names a node longer than 64 characters by its SHA-1
// (src/store/lua/includes/indexes.lua); before it, every ancestor had below-sets and every
// key named its node as it is, so leases on such paths written before would not be found.
// Each replica makes sure of every namespace's layout before it serves (app.ts, onReady):
// a marked one costs a GET; an unmarked one is walked once (reindex-1.lua, idempotent, in
// calls of bounded cost), then marked. Older replicas know nothing of this: they must be
// stopped before the first replica of this layout starts (see the README, Upgrading).
import type { RedisClient } from '../redis/connection.js';
import type { StoreKeys } from './keys.js';
import type { LeaseStore } from './lease-store.js';

export const INDEX_FORMAT = '2';

/** What the walks of a store read: leases holding resources, leases due, tickets. */
const WALKS = ['t:', 'exp', 'wexp'] as const;

/** Moves the store to INDEX_FORMAT unless it is marked so; returns the calls that did it (0: it was). */
export async function ensureIndexFormat(redis: RedisClient, store: LeaseStore, keys: StoreKeys): Promise<number> {
  if ((await redis.get(keys.indexFormat)) === INDEX_FORMAT) return 0;
  let calls = 0;
  for (const walk of WALKS) {
    let rank: number | null = 0;
    while (rank !== null) {
      rank = await store.reindex(walk, rank);
      calls++;
    }
  }
  await redis.set(keys.indexFormat, INDEX_FORMAT);
  return calls;
}
