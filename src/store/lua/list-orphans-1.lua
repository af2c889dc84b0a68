--[[
  One page of orphans in the order they were first orphaned (seq), from the index of one
  state or of all, filtered by kind; a claim whose lease has expired is settled first.
  Resolved orphans are listed until they are dropped
  (TOMBSTONE_TTL ms after resolution).
  Invariant: scans at most ARGV[9] index entries, so one call's cost is bounded even when
  the kind filter matches little; the caller gets a cursor to go on from.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  state (pending | claimed | dead_letter | resolved), or "" for all
  ARGV[6]  kind, or "" for all
  ARGV[7]  cursor: the seq to start after, or ""
  ARGV[8]  limit      ARGV[9]  scan budget

  Returns {now, nextCursor or "", {orphanFields, orphanFields, ...}}
]]
--- @include "includes/core"

local key = ARGV[5] ~= '' and (P .. 'os:' .. ARGV[5]) or (P .. 'oa')
local kind = ARGV[6]
local limit, budget = tonumber(ARGV[8]), tonumber(ARGV[9])
local after = ARGV[7] ~= '' and ('(' .. ARGV[7]) or '-inf'
local now = nowMs()

local items, last = {}, nil
while #items < limit and budget > 0 do
  local batch = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'WITHSCORES', 'LIMIT', 0, math.min(budget, limit - #items + 10))
  if #batch == 0 then return { now, '', items } end
  for i = 1, #batch, 2 do
    local oid = batch[i]
    last = batch[i + 1]
    budget = budget - 1
    local f = redis.call('HMGET', orphanKey(oid), 'st', 'kind')
    if not f[1] then
      redis.call('ZREM', key, oid)
    elseif kind == '' or f[2] == kind then
      local state = f[1] == 'claimed' and readOrphan(oid, now).st or f[1]
      if ARGV[5] == '' or state == ARGV[5] then items[#items + 1] = flatOrphan(oid) end
    end
    if #items == limit or budget == 0 then break end
  end
  after = '(' .. last
end
local more = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'LIMIT', 0, 1)
return { now, #more > 0 and last or '', items }
