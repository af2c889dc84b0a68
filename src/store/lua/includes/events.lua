--[[
  Events: the lifecycle stream, the counters /metrics reads, and the wakeup of waiters.
    P.."ev"          stream lifecycle events (capped)
    P.."stats"       hash   cluster-wide counters for /metrics: expired, revoked, claimed,
                            dead_lettered, "orphaned:"..reason and "resolved:"..resolution
  Shard channel: P.."freed" (JSON paths that stopped being blocked; waiters retry). SPUBLISH,
  not PUBLISH: in a Redis Cluster it reaches only the subscribers on this namespace's shard,
  where PUBLISH would be sent to every node.
]]
--- @include "includes/prelude"

-- Counts a transition in P.."stats". Prometheus reads these counters at scrape time, so
-- they are right whichever replica (or script) made the transition.
local function count(name)
  redis.call('HINCRBY', P .. 'stats', name, 1)
end

-- The event types /metrics reports from P.."stats". Grants, renewals and releases are
-- counted by the replica that answers them, so heartbeats write nothing more here.
local COUNTED_EVENTS = { expired = true, revoked = true, claimed = true, dead_lettered = true }

-- Appends a lifecycle event {type, at, leaseId, holder, paths, fencingToken, orphanId?,
-- actor?} to the capped events stream (actor: the token that asked, see the prelude); the
-- stream entry's id is when it was recorded, `at` when it happened (an expiry happens at
-- expiresAt, whoever notices it later). `paths` is the lease's resources as stored
-- ("x<path> s<path>"): the service reads both that and a JSON array (decodePathList in
-- src/store/resource-codec.ts), and making JSON of 64 long paths cost half a millisecond.
local function emit(kind, at, lease, orphanId)
  local entry = { 'type', kind, 'at', int(at), 'leaseId', lease.id, 'holder', lease.holder,
    'paths', lease.res, 'fencingToken', lease.tok }
  if orphanId then
    entry[#entry + 1] = 'orphanId'
    entry[#entry + 1] = orphanId
  end
  if ACTOR ~= '' then
    entry[#entry + 1] = 'actor'
    entry[#entry + 1] = ACTOR
  end
  redis.call('XADD', P .. 'ev', 'MAXLEN', '~', STREAM_CAP, '*', unpack(entry))
  if COUNTED_EVENTS[kind] then count(kind) end
end

-- Tells waiting acquires (on every service replica, subscribed on this shard) that these
-- paths (resources as stored, as in events) may have stopped being blocked.
local function announceFreed(stored)
  redis.call('SPUBLISH', P .. 'freed', stored)
end
