--[[
  One page of leases that hold resources (active or orphaned), in fencing-token order,
  which is the order they were granted: a page boundary stays put while leases renew.
  Reads the holder's index when a holder is given. For a prefix alone it reads the
  prefix path's blocking sets (every lease at or below it is in one of them) when they
  hold at most ARGV[11] entries, and otherwise walks the index of every lease with the
  prefix as a filter. Settles expired leases it meets.
  Invariant: reads at most ARGV[11] index entries, so one call's cost is bounded even
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

-- A prefix with few leases at or below it: its blocking sets, sorted by token here.
local function prefixPage(path, cursor)
  local sets = { P .. 'ax:' .. path, P .. 'as:' .. path, P .. 'bx:' .. path, P .. 'bs:' .. path }
  local size = 0
  for _, set in ipairs(sets) do size = size + redis.call('ZCARD', set) end
  if size > budget then return nil end
  local after = cursor ~= '' and tonumber(cursor) or -1
  local found, seen = {}, {}
  for _, set in ipairs(sets) do
    for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
      if not seen[id] then
        seen[id] = true
        local lease = settle(readLease(id), now)
        if lease and tonumber(lease.tok) > after and matches(lease) then found[#found + 1] = lease end
      end
    end
  end
  table.sort(found, function(a, b) return tonumber(a.tok) < tonumber(b.tok) end)
  local items = {}
  for i = 1, math.min(limit, #found) do items[i] = flatLease(found[i]) end
  return items, #found > limit and found[limit].tok or ''
end

if ARGV[5] == 't' and ARGV[6] ~= '' then
  prefix = ARGV[6]
  local items, nextCursor = prefixPage(prefix, ARGV[9])
  if items then return { now, nextCursor, items } end
  key = P .. 't:'
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
