// The Redis keys and channels that TypeScript names, in one place. The Lua scripts name the
// rest in the headers of their includes (includes/*.lua), and build them from the same
// prefix; the names here must agree with those. Every name carries the prefix's hash tag,
// so all of them live in one Redis Cluster slot.
export interface StoreKeys {
  /** "{KEY_PREFIX}:": every script gets it and builds its other keys from it. */
  prefix: string;
  /** The fencing counter, KEYS[1] of every script (it routes the call). */
  token: string;
  /** The lifecycle events stream (includes/events.lua). */
  events: string;
  /** The orphans stream, one entry per orphaning (includes/orphans.lua). */
  orphans: string;
  /** The reaper's redlock leadership key. */
  reaperLock: string;
  /** Paths that may have stopped being blocked: waiting acquires look again (includes/events.lua). */
  freedChannel: string;
  /** Kinds with a newly pending orphan: waiting claims look again (includes/orphans.lua). */
  pendingChannel: string;
  /** The index layout the keys follow (src/store/index-format.ts). */
  indexFormat: string;
}

/** The keys of one prefix, given with its hash tag, e.g. "{lease}:". */
export function storeKeys(prefix: string): StoreKeys {
  return {
    prefix,
    token: `${prefix}token`,
    events: `${prefix}ev`,
    orphans: `${prefix}orphans`,
    reaperLock: `${prefix}reaper`,
    freedChannel: `${prefix}freed`,
    pendingChannel: `${prefix}pending`,
    indexFormat: `${prefix}index-format`,
  };
}
