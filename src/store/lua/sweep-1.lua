--[[
  Settles leases whose time has come, oldest first, in a bounded batch: active leases past
  expiresAt expire (a lease with an action becomes an orphan, published here if nobody
  noticed it first), and ended leases whose lock delay is over leave the blocking indexes.
  Also drops resolved orphans whose keeping time is over, and the tickets of waiting
  requests that lapsed (their replica died before it could take them out). Running it twice, or from two
  replicas at once, is harmless: each transition happens once, under the script's atomicity.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  batch size

  Returns {now, settled, stillDue, nextDue}: nextDue is the earliest time something is due
  (Redis-clock ms), or "" when nothing is scheduled.
]]
--- @include "includes/core"
--- @include "includes/tickets"

local batch = tonumber(ARGV[5])
local now = nowMs()
local looked = settleDue(batch, now)

for _, oid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'oexp', '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', P .. 'oa', oid)
  redis.call('ZREM', P .. 'os:resolved', oid)
  redis.call('ZREM', P .. 'oexp', oid)
  redis.call('DEL', orphanKey(oid))
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wexp', '-inf', now, 'LIMIT', 0, batch)) do
  dropTicket(id, readHash(ticketKey(id)), true)
end

local first = redis.call('ZRANGE', P .. 'exp', 0, 0, 'WITHSCORES')
return { now, looked, redis.call('ZCOUNT', P .. 'exp', '-inf', now), first[2] or '' }
