#!lua flags=allow-oom
--[[
  Settles leases whose time has come, oldest first, in a bounded batch: active leases past
  expiresAt expire (a lease with an action becomes an orphan, published here if nobody
  noticed it first), and ended leases whose lock delay is over leave the blocking indexes.
  Also drops resolved orphans whose keeping time is over, and the tickets of waiting
  requests that lapsed (their replica died before it could take them out). Running it twice, or from two
  replicas at once, is harmless: each transition happens once, under the script's atomicity.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  batch size
  ARGV[8]  how old (ms) an entry of the events and orphans streams may grow before it is trimmed
  ARGV[9]  index entries one call may write or drop at most (see settleDue), bounding its time
  ARGV[10]  how many bytes of Redis memory each stream may use, about

  Returns {now, settled, stillDue, nextDue}: nextDue is the earliest time something is due
  (Redis-clock ms), or "" when nothing is scheduled.
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/orphans"
--- @include "includes/lifecycle"
--- @include "includes/tickets"

local batch = tonumber(ARGV[7])
local now = nowMs()
local looked, budget = settleDue(batch, now, tonumber(ARGV[9]))

for _, oid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'oexp', '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', P .. 'oa', oid)
  redis.call('ZREM', P .. 'os:resolved', oid)
  redis.call('ZREM', P .. 'oexp', oid)
  redis.call('DEL', orphanKey(oid))
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wexp', '-inf', now, 'LIMIT', 0, batch)) do
  if budget <= 0 then break end
  local ticket = readHash(ticketKey(id))
  dropTicket(id, ticket, true)
  if ticket then budget = budget - indexWeight({ res = ticket.res }) end
end

-- The streams are capped by count as they grow (XADD MAXLEN), and here by age and by size:
-- an entry may name 64 long paths, so a count alone is no bound. MEMORY USAGE samples a few
-- nodes (O(1)), and the trim keeps the share of entries that fits. Approximate trimming drops
-- whole radix-tree nodes, at most TRIM_LIMIT entries a call (an entry may be 32 KB); the rest
-- go at the next sweeps.
local TRIM_LIMIT = 1000
local oldest = int(now - tonumber(ARGV[8]))
local maxBytes = tonumber(ARGV[10])
for _, key in ipairs({ P .. 'ev', P .. 'orphans' }) do
  redis.call('XTRIM', key, 'MINID', '~', oldest, 'LIMIT', TRIM_LIMIT)
  local used = redis.call('MEMORY', 'USAGE', key)
  if used and used > maxBytes then
    redis.call('XTRIM', key, 'MAXLEN', '~', math.floor(redis.call('XLEN', key) * maxBytes / used), 'LIMIT', TRIM_LIMIT)
  end
end

local first = redis.call('ZRANGE', P .. 'exp', 0, 0, 'WITHSCORES')
return { now, looked, redis.call('ZCOUNT', P .. 'exp', '-inf', now), first[2] or '' }
