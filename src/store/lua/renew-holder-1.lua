#!lua flags=allow-oom
--[[
  One heartbeat for the active leases of a holder (a conductor with many leases renews them
  in one call), at most ARGV[10] of them per call, in token order after the cursor. Leases
  that have expired are neither renewed nor settled here (the reaper settles them).
  Invariant: reads at most ARGV[10] entries of the holder's index and never a payload, so one
  call's cost is bounded however many leases the holder has; the caller goes on from the
  cursor returned, and hears how many entries are left.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  holder
  ARGV[8]  ttlMs, or "" for each lease's own
  ARGV[9]  cursor: the token to go on after, or ""
  ARGV[10]  how many of the holder's leases to look at, at most
  ARGV[11]  index entries to move at most: a lease without an action moves one per resource
           and ancestor when renewed (at least one lease is renewed)

  Appends one "renewed" event for the batch (holder and the first EVENT_PATHS paths, no
  leaseId).

  Returns {now, {leaseId, expiresAt, leaseId, expiresAt, ...}, nextCursor or "", remaining}:
  remaining counts the holder's index entries after nextCursor (active and orphaned leases).
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/renew"

local EVENT_PATHS = 100

local key = P .. 'h:' .. ARGV[7]
local after = ARGV[9] ~= '' and ('(' .. ARGV[9]) or '-inf'
local now = nowMs()
local budget = tonumber(ARGV[11])
local renewed, paths = {}, {}
local entries = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[10]))
local last = nil
for i = 1, #entries, 2 do
  if budget <= 0 then break end
  local id = entries[i]
  last = entries[i + 1]
  -- Only what a renewal needs: not the payload, nor the resources (a lease may list 64 long
  -- paths) unless its index entries move or the event still wants paths.
  local f = redis.call('HMGET', P .. 'l:' .. id, 'st', 'exp', 'ttl', 'hold', 'kind', 'ld', 'by')
  local lease = f[1] and { id = id, partial = true, st = f[1], exp = f[2], ttl = f[3], hold = f[4], kind = f[5] or nil, ld = f[6] or nil, by = f[7] or nil }
  if not lease then
    redis.call('ZREM', key, id)
  elseif lease.st == 'active' and tonumber(lease.exp) > now then
    -- (One that expired is not renewed, nor settled here: the reaper does that, and settling
    -- one with an action writes its orphan, payload and all.)
    local expiresAt = renewLease(lease, tonumber(ARGV[8] ~= '' and ARGV[8] or lease.ttl), now)
    -- What renewing it cost: a lease without an action moved all its index entries; one
    -- with an action, its read, three commands and its share of the event's paths, counted
    -- as 16 entries (measured: about 40 µs a lease, 10 entries' worth, on the bench's
    -- machine; 8 let a call of wide leases with actions take 5.5 ms).
    budget = budget - (lease.kind and 16 or indexWeight(lease))
    renewed[#renewed + 1] = id
    renewed[#renewed + 1] = expiresAt
    if #paths < EVENT_PATHS then
      for _, r in ipairs(resourcesOf(lease)) do
        if #paths < EVENT_PATHS then paths[#paths + 1] = r.path end
      end
    end
  end
end
if #renewed > 0 then
  local entry = { 'type', 'renewed', 'at', int(now), 'holder', ARGV[7], 'paths', pathListJson(paths) }
  if ACTOR ~= '' then
    entry[#entry + 1] = 'actor'
    entry[#entry + 1] = ACTOR
  end
  redis.call('XADD', P .. 'ev', 'MAXLEN', '~', STREAM_CAP, '*', unpack(entry))
end
local nextCursor, remaining = '', 0
if last then
  remaining = redis.call('ZCOUNT', key, '(' .. last, '+inf')
  if remaining > 0 then nextCursor = last end
end
return { now, renewed, nextCursor, remaining }
