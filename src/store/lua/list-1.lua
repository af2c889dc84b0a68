--[[
  One page of leases that hold resources (active or orphaned), in fencing-token order,
  which is the order they were granted: a page boundary stays put while leases renew.
  Reads the holder's index when a holder is given, else the index of the prefix path
  ("" = every lease). Settles expired leases it meets.
  Invariant: scans at most ARGV[11] index entries, so one call's cost is bounded even
  when filters match little; the caller gets a cursor to go on from.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  index: "h" (holder) or "t" (path)
  ARGV[6]  holder, or prefix path ("" = all)
  ARGV[7]  prefix path to filter by when reading a holder's index, or ""
  ARGV[8]  state filter: "", "active" or "orphaned"
  ARGV[9]  cursor: the token to start after, or ""
  ARGV[10]  limit      ARGV[11]  scan budget

  Returns {now, nextCursor or "", {leaseFields, leaseFields, ...}}
]]
--- @include "includes/core"
--- @include "includes/paging"

local key = P .. ARGV[5] .. ':' .. ARGV[6]
local prefix, wantedState = ARGV[7], ARGV[8]
local limit, budget = tonumber(ARGV[10]), tonumber(ARGV[11])
local now = nowMs()

local function matches(lease)
  if not holdsResources(lease) then return false end
  if wantedState ~= '' and lease.st ~= wantedState then return false end
  if prefix == '' then return true end
  for _, r in ipairs(lease.resources) do
    if covers(prefix, r.path) then return true end
  end
  return false
end

local items, nextCursor = page(key, ARGV[9], limit, budget, function(id)
  local lease = settle(readLease(id), now)
  if not lease then
    redis.call('ZREM', key, id)
  elseif matches(lease) then
    return flatLease(lease)
  end
end)
return { now, nextCursor, items }
