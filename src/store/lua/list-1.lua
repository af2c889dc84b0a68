#!lua flags=allow-oom
--[[
  One page of leases that hold resources (active or orphaned), in fencing-token order,
  which is the order they were granted: a page boundary stays put while leases renew.
  Reads the holder's index when a holder is given. For a prefix alone it reads the
  prefix path's blocking sets (every lease at or below it is in one of them; below a deep
  path, its range of the deep sets, see includes/indexes) when they hold at most ARGV[13]
  entries, and otherwise walks the index of every lease with the
  prefix as a filter. Settles expired leases it meets.
  Invariant: reads at most ARGV[13] index entries, so one call's cost is bounded even
  when filters match little; the caller gets a cursor to go on from. It writes nothing:
  leases that expired unnoticed are presented as ended (see presentAsOf), not settled. Without ARGV[14] no
  payload or progress is read, so a page costs the same whatever they hold.

  allow-oom (the first line): a read answers even when Redis is at its maxmemory; what it
  settles or drops on the way frees memory.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  index: "h" (holder) or "t" (path)
  ARGV[8]  holder, or prefix path ("" = all)
  ARGV[9]  prefix path to filter by when reading a holder's index, or ""
  ARGV[10]  state filter: "", "active" or "orphaned"
  ARGV[11]  cursor: the token to start after, or ""
  ARGV[12]  limit      ARGV[13]  scan budget
  ARGV[14]  "1" to answer with each lease's payload and progress, "" to leave them out
  ARGV[15]  bytes a page reads at most (records' values; at least one record)

  Returns {now, nextCursor or "", {leaseFields, leaseFields, ...}}
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/paging"

local PREFIX_SORT_MAX = 512

local key = P .. ARGV[7] .. ':' .. ARGV[8]
local prefix, wantedState = ARGV[9], ARGV[10]
local limit, budget = tonumber(ARGV[12]), tonumber(ARGV[13])
local withoutJson = ARGV[14] ~= '1'
local maxBytes = tonumber(ARGV[15])
local now = nowMs()

-- underPrefix: the lease was found in the prefix path's own index sets, so it holds
-- something at or below it (no need to decode its resources to know).
local function matches(lease, underPrefix)
  if not holdsResources(lease) then return false end
  if wantedState ~= '' and lease.st ~= wantedState then return false end
  if prefix == '' or underPrefix then return true end
  return storedCovered(lease.res, prefix)
end

-- A prefix with few leases at or below it (PREFIX_SORT_MAX): its blocking sets, sorted by
-- token here; past that, the walk of every lease in token order with the prefix as a filter
-- costs less than the sort would (its page is cut by the budget and read bytes). Only
-- the tokens are read to sort them; then leases are read in order until the page is full.
local function prefixPage(path, cursor)
  local S = LEASE_SETS
  local name = nodeKey(path)
  local sets = { P .. S.atX .. name, P .. S.atS .. name }
  -- Below the prefix: its below-sets, or for a deep one the members in its range of the deep
  -- sets (see includes/indexes), each read as {id, ...}.
  local deep = not keepsBelowSets(path)
  local from, to = deepRange(path)
  if deep then
    sets[3], sets[4] = P .. S.deepX, P .. S.deepS
  else
    sets[3], sets[4] = P .. S.belowX .. name, P .. S.belowS .. name
  end
  local function idsOf(i)
    if i <= 2 or not deep then return redis.call('ZRANGE', sets[i], 0, -1) end
    local ids = {}
    for _, member in ipairs(redis.call('ZRANGEBYLEX', sets[i], from, to)) do
      local _, id = splitDeepMember(member)
      ids[#ids + 1] = id
    end
    return ids
  end
  local size = 0
  for i, set in ipairs(sets) do size = size + ((i <= 2 or not deep) and redis.call('ZCARD', set) or redis.call('ZLEXCOUNT', set, from, to)) end
  if size > math.min(budget, PREFIX_SORT_MAX) then return nil end
  local after = cursor ~= '' and tonumber(cursor) or -1
  local found, seen = {}, {}
  for i = 1, #sets do
    for _, id in ipairs(idsOf(i)) do
      if not seen[id] then
        seen[id] = true
        local token = tonumber(redis.call('HGET', P .. 'l:' .. id, 'tok'))
        if token and token > after then found[#found + 1] = { id = id, tok = token } end
      end
    end
  end
  table.sort(found, function(a, b) return a.tok < b.tok end)
  local items, bytes, last = {}, 0, nil
  for i, entry in ipairs(found) do
    if #items == limit or bytes >= maxBytes then return items, int(last) end
    last = entry.tok
    local lease = presentAsOf(readLeaseSummary(entry.id), now)
    if lease and matches(lease, true) then
      items[#items + 1] = flatLease(lease, withoutJson)
      bytes = bytes + flatBytes(items[#items])
    end
  end
  return items, ''
end

if ARGV[7] == 't' and ARGV[8] ~= '' then
  prefix = ARGV[8]
  local items, nextCursor = prefixPage(prefix, ARGV[11])
  if items then return { now, nextCursor, items } end
  key = P .. 't:'
end

local items, nextCursor = page(key, ARGV[11], limit, budget, maxBytes, function(id)
  local lease = presentAsOf(readLeaseSummary(id), now)
  if not lease then
    redis.call('ZREM', key, id)
  elseif matches(lease, false) then
    return flatLease(lease, withoutJson)
  else
    return nil, #(lease.res or '')
  end
end)
return { now, nextCursor, items }
