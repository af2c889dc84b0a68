--[[
  Hands the oldest pending orphan (of the given kinds) to one caller, with a new active
  lease on the same resources, a greater fencing token, the next attempt number and the
  last progress the dead holder reported.
  Invariant: the resources never become free in between: the orphaned lease's reservation
  and the new lease's are swapped in this one script, so no other acquire can slip in, and
  an orphan is claimed by exactly one caller.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  new lease id
  ARGV[8]  holder
  ARGV[9]  ttlMs      ARGV[10]  maxHoldMs
  ARGV[11]  kinds, each on a line of its own (kinds are printable: they hold no newline), or
           "" for any kind

  Returns {now, "claimed", orphanFields, leaseFields} | {now, "none"}
        | {now, "over_quota"} (the actor holds its quota of active leases; nothing written but
          the settling of its leases past expiresAt)
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/orphans"
--- @include "includes/lifecycle"
--- @include "includes/grant"

local CLAIM_SETTLE_BATCH, CLAIM_SETTLE_ENTRIES = 50, 256

local id, holder = ARGV[7], ARGV[8]
local kinds = {}
for kind in string.gmatch(ARGV[11], '[^\n]+') do kinds[#kinds + 1] = kind end
local now = nowMs()
if overQuota(now) then return { now, 'over_quota' } end

-- Expiry is exact without the reaper: a claim's lease that has just expired puts its orphan
-- back in the queue before we look at it (a bounded batch of what is due, as the reaper does).
-- Strictly within the budget: a lease too wide for it is left to the reaper, which settles
-- it within REAPER_INTERVAL_MS, so that a claim costs at most one lease's index work (its own).
settleDue(CLAIM_SETTLE_BATCH, now, CLAIM_SETTLE_ENTRIES, true)

-- The queues are ordered by seq (first orphaned first), so the oldest is the lowest head.
local oid
if ARGV[11] == '' then
  oid = redis.call('ZRANGE', P .. 'oq', 0, 0)[1]
else
  local best
  for _, kind in ipairs(kinds) do
    local head = redis.call('ZRANGE', P .. 'ok:' .. kind, 0, 0, 'WITHSCORES')
    if head[1] and (not best or tonumber(head[2]) < best) then oid, best = head[1], tonumber(head[2]) end
  end
end
if not oid then return { now, 'none' } end

local orphan = readHash(orphanKey(oid))
if orphan then upgradeLegacyAction(orphan) end
if not orphan or orphan.st ~= 'pending' then
  -- The queue and the record disagree (only after data loss): mend the queue, claim nothing.
  redis.call('ZREM', P .. 'oq', oid)
  for _, kind in ipairs(kinds) do redis.call('ZREM', P .. 'ok:' .. kind, oid) end
  return { now, 'none' }
end
local previous = readLease(orphan.lid)
if previous and previous.st == 'orphaned' then
  -- Its reservation passes to the new lease below; nothing is freed, so nothing is announced.
  entomb(previous, previous.es, tonumber(previous['end']), now, 0)
end

local lease = grant({
  id = id, holder = holder, res = orphan.res, ttl = tonumber(ARGV[9]), maxHold = tonumber(ARGV[10]), lockDelay = 0,
  kind = orphan.kind, ma = orphan.ma, pay = orphan.pay, att = int(tonumber(orphan.att) + 1), prog = orphan.prog, oid = oid,
}, now, 'claimed')
redis.call('HSET', orphanKey(oid), 'st', 'claimed', 'cb', holder, 'cl', id)
moveOrphan(oid, orphan.seq, orphan.kind, 'pending', 'claimed')
return { now, 'claimed', flatOrphan(oid), flatLease(lease) }
