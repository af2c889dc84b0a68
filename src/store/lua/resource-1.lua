#!lua flags=no-writes
--[[
  What holds a resource path: the leases that cover it (at it or at an ancestor) and the
  leases below it, the first `limit` of each, and how many there are.
  Invariant: the counts come from the index (ZCOUNT), never from a scan, but below a deep
  path (see includes/indexes), where the members in its range are read while the budget
  lasts and those past it counted as they stand (ZLEXCOUNT: a lease per resource, ended
  ones that await the reaper included). The cost is at most 2 * depth + 2 range reads of at
  most `limit` entries each, `budget` index entries (with one ZSCORE each below a deep path)
  and lease reads in all (lock-delayed tombstones read past on the way included), and, with
  ARGV[9], `limit` payloads and progress checkpoints per list.

  no-writes (the first line): it only reads, so Redis runs it whatever refuses writes (its
  maxmemory, a failed save, min-replicas-to-write).

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  path       ARGV[8]  how many leases to list at most, covering and below each
  ARGV[9]  "1" to answer with payloads and progress, "" to leave them out
  ARGV[10]  how many index entries to read at most in all (the budget)
  ARGV[11]  bytes each list reads at most (records' values; at least one record)
  ARGV[12]  the SHA-1s of the path's long nodes (see useNodeDigests in includes/indexes)

  Returns {now, {leaseFields, ...} covering, coveringCount, belowCount, {leaseFields, ...} below}
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/paging"

local path, limit = ARGV[7], tonumber(ARGV[8])
local withoutJson = ARGV[9] ~= '1'
local budget, maxBytes = tonumber(ARGV[10]), tonumber(ARGV[11])
useNodeDigests({ path }, ARGV[12])
local now = nowMs()
local live = '(' .. now

-- Reads a set's live entries from the start, `limit` at a time, until `limit` leases that
-- hold resources are in `into` or the budget is spent. Entries of ended leases still in
-- their lock delay are live there but are not leases to list, so it reads on past them.
local seen = {}
local function listFrom(key, into)
  local offset = 0
  into.bytes = into.bytes or 0 -- a named field: it does not reach the reply, only the array part does
  while #into < limit and budget > 0 and into.bytes < maxBytes do
    local ids = redis.call('ZRANGEBYSCORE', key, live, '+inf', 'LIMIT', offset, math.min(limit, budget))
    if #ids == 0 then return end
    offset = offset + #ids
    budget = budget - #ids
    for _, id in ipairs(ids) do
      if #into >= limit or into.bytes >= maxBytes then return end
      local lease = not seen[id] and presentAsOf(readLeaseSummary(id), now)
      seen[id] = true
      if lease and holdsResources(lease) and #into < limit and into.bytes < maxBytes then
        into[#into + 1] = flatLease(lease, withoutJson)
        into.bytes = into.bytes + flatBytes(into[#into])
      elseif lease then
        into.bytes = into.bytes + #lease.res -- read past, and counted: tombstones may be wide too
      end
    end
  end
end

local coveredBy, coveringCount = {}, 0
for _, key in ipairs(coveringSets(path, LEASE_SETS, true)) do
  listFrom(key, coveredBy)
  coveringCount = coveringCount + redis.call('ZCOUNT', key, live, '+inf')
end

-- Deep members read at most per list: each costs a ZSCORE of its lease's at-set (and a SHA-1
-- of its path when that is long), where a below-set's count costs one ZCOUNT.
local DEEP_READ_MAX = 100

-- Below a deep path (see includes/indexes): the members of `key` (of leases of `mode`) in
-- its range, in path order, a page at a time while the budget (and DEEP_READ_MAX) lasts.
-- Returns how many leases among them block (each counted once); the members left unread
-- when the budget runs out are added as they stand, leases that ended and await the reaper
-- included.
local function listDeep(key, mode, into)
  local from, to = deepRange(path)
  local count, counted, left = 0, {}, DEEP_READ_MAX
  into.bytes = into.bytes or 0
  while true do
    if budget <= 0 or left <= 0 then return count + redis.call('ZLEXCOUNT', key, from, to) end
    local want = math.min(limit, budget, left)
    local members = redis.call('ZRANGEBYLEX', key, from, to, 'LIMIT', 0, want)
    budget, left = budget - #members, left - #members
    for _, member in ipairs(members) do
      local held, id = splitDeepMember(member)
      local score = tonumber(redis.call('ZSCORE', P .. (mode == 'exclusive' and LEASE_SETS.atX or LEASE_SETS.atS) .. nodeKey(held), id))
      if score and score > now and not counted[id] then
        counted[id] = true
        count = count + 1
        if #into < limit and into.bytes < maxBytes and not seen[id] then
          seen[id] = true
          local lease = presentAsOf(readLeaseSummary(id), now)
          if lease and holdsResources(lease) then
            into[#into + 1] = flatLease(lease, withoutJson)
            into.bytes = into.bytes + flatBytes(into[#into])
          elseif lease then
            into.bytes = into.bytes + #lease.res
          end
        end
      end
    end
    if #members < want then return count end
    from = '(' .. members[#members]
  end
end

-- Below the path, exclusive leases first, then shared ones (each mode has its own set).
local below, belowCount = {}, 0
if keepsBelowSets(path) then
  for _, set in ipairs({ LEASE_SETS.belowX, LEASE_SETS.belowS }) do
    local key = P .. set .. pathKey(path)
    listFrom(key, below)
    belowCount = belowCount + redis.call('ZCOUNT', key, live, '+inf')
  end
else
  belowCount = listDeep(P .. LEASE_SETS.deepX, 'exclusive', below) + listDeep(P .. LEASE_SETS.deepS, 'shared', below)
end
return { now, coveredBy, coveringCount, belowCount, below }
