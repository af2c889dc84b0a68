--[[
  What holds a resource path: the leases that cover it (at it or at an ancestor) and the
  leases below it (the first `limit`, and how many there are).
  Invariant: the count comes from the path's below-index (ZCOUNT), never from a scan; the
  cost is that of the leases on the path and its ancestors plus `limit` below it (and any
  lock-delayed tombstones read past on the way).

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  path       ARGV[6]  how many leases below to list at most

  Returns {now, {leaseFields, ...} covering, belowCount, {leaseFields, ...} below}
]]
--- @include "includes/core"

local path, limit = ARGV[5], tonumber(ARGV[6])
local now = nowMs()
local live = '(' .. now

local nodes = ancestors(path)
nodes[#nodes + 1] = path
local coveredBy, seen = {}, {}
for _, node in ipairs(nodes) do
  for _, set in ipairs({ 'ax:', 'as:' }) do
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. set .. node, live, '+inf')) do
      local lease = settle(readLease(id), now)
      if lease and not seen[id] and holdsResources(lease) then
        seen[id] = true
        coveredBy[#coveredBy + 1] = flatLease(lease)
      end
    end
  end
end

-- Below the path, exclusive leases first, then shared ones (each mode has its own set).
-- Entries of ended leases still in their lock delay are live there but are not leases to
-- list, so read on past them in pages until `limit` leases are found.
local below, belowCount = {}, 0
for _, set in ipairs({ 'bx:', 'bs:' }) do
  local key, offset = P .. set .. path, 0
  while #below < limit do
    local ids = redis.call('ZRANGEBYSCORE', key, live, '+inf', 'LIMIT', offset, limit)
    if #ids == 0 then break end
    offset = offset + #ids
    for _, id in ipairs(ids) do
      local lease = settle(readLease(id), now)
      if lease and holdsResources(lease) and #below < limit then below[#below + 1] = flatLease(lease) end
    end
  end
  belowCount = belowCount + redis.call('ZCOUNT', key, live, '+inf')
end
return { now, coveredBy, belowCount, below }
