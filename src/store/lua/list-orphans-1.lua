#!lua flags=allow-oom
--[[
  One page of orphans in the order they were first orphaned (seq), from the index of one
  state or of all, filtered by kind; a claim whose lease has expired is settled first.
  Resolved orphans are listed until they are dropped
  (TOMBSTONE_TTL ms after resolution).
  Invariant: scans at most ARGV[11] index entries, so one call's cost is bounded even when
  the kind filter matches little; the caller gets a cursor to go on from.

  allow-oom (the first line): a read answers even when Redis is at its maxmemory; what it
  settles or drops on the way frees memory.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  state (pending | claimed | dead_letter | resolved), or "" for all
  ARGV[8]  kind, or "" for all
  ARGV[9]  cursor: the seq to start after, or ""
  ARGV[10]  limit      ARGV[11]  scan budget
  ARGV[12] "1" to answer with each orphan's payload and progress, "" to leave them out
  ARGV[13] bytes a page holds at most (its records' values; at least one record)

  Returns {now, nextCursor or "", {orphanFields, orphanFields, ...}}
]]
--- @include "includes/prelude"
--- @include "includes/orphans"
--- @include "includes/paging"

local key = ARGV[7] ~= '' and (P .. 'os:' .. ARGV[7]) or (P .. 'oa')
local kind = ARGV[8]
local limit, budget = tonumber(ARGV[10]), tonumber(ARGV[11])
local now = nowMs()

local items, nextCursor = page(key, ARGV[9], limit, budget, tonumber(ARGV[13]), function(oid)
  local f = redis.call('HMGET', orphanKey(oid), 'st', 'kind')
  if not f[1] then
    redis.call('ZREM', key, oid)
  elseif kind == '' or f[2] == kind then
    -- Presented by Redis' clock, not settled: a page costs the same however many claims expired.
    local overrides = f[1] == 'claimed' and orphanAsOf(oid, now) or nil
    local state = overrides and overrides.st or f[1]
    if ARGV[7] == '' or state == ARGV[7] then return flatOrphan(oid, ARGV[12] ~= '1', overrides) end
  end
end)
return { now, nextCursor, items }
