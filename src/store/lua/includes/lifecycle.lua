--[[
  The lease lifecycle: how a lease ends (released, expired or revoked; a tombstone or an
  orphan) and how leases are settled by Redis' clock.
    P.."exp"         zset   leases to settle, score: when (expiry, or end of lock delay)
    P.."rq:"..n..":"..holder..requestId  string  lease id of an idempotent acquire
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/events"
--- @include "includes/orphans"

-- Turns a lease into a tombstone kept TOMBSTONE_TTL ms. Its blocking entries are dropped,
-- unless it must keep blocking until `blockedUntil` (lock delay): then they are rescored
-- and the sweeper drops them once that time has passed. Returns true when it freed the
-- lease's resources (the caller announces it, unless it hands them on in the same script).
local function entomb(lease, state, endedAt, now, blockedUntil, extra)
  unindexListing(lease)
  local key = P .. 'l:' .. lease.id
  -- A tombstone is kept an hour and there may be many: drop what it no longer answers with,
  -- the client's JSON included (payload and progress, up to 80 KiB, live on in the orphan
  -- when the action was left unfinished).
  keepLegacyAction(key, lease)
  rewriteLease(lease, withFields({ st = state, ['end'] = int(endedAt) }, extra), { 'ttl', 'acq', 'ren', 'exp', 'hold', 'fp', 'pay', 'prog', 'act' })
  if lease.rid then
    local requestKey = P .. 'rq:' .. #lease.holder .. ':' .. lease.holder .. lease.rid
    -- The requestId may name a newer lease by now; leave that one's key alone.
    if redis.call('GET', requestKey) == lease.id then redis.call('PEXPIRE', requestKey, TOMBSTONE_TTL) end
  end
  if blockedUntil > now then
    indexBlocking(lease, int(blockedUntil))
    redis.call('ZADD', P .. 'exp', int(blockedUntil), lease.id)
    -- No TTL yet: the sweeper needs this record's paths to drop the blocking entries,
    -- however late it runs; it starts the tombstone's hour when it does (dropTombstoneIndex).
    redis.call('PERSIST', key)
    return false
  end
  unindexBlocking(lease)
  redis.call('ZREM', P .. 'exp', lease.id)
  redis.call('PEXPIRE', key, TOMBSTONE_TTL)
  return true
end

-- The end of an ended lease's lock delay: it stops blocking, and its tombstone's hour starts.
local function dropTombstoneIndex(lease)
  unindexBlocking(lease)
  redis.call('ZREM', P .. 'exp', lease.id)
  redis.call('PEXPIRE', P .. 'l:' .. lease.id, TOMBSTONE_TTL)
  announceFreed(lease.res)
end

-- Ends an active lease as `state` (expired | released | revoked) at `endedAt`. A lease
-- with an action that did not finish (expired, revoked, released "abandoned") becomes an
-- orphan and keeps its resources reserved (its blocking entries stay at +inf). Any other
-- lease becomes a tombstone; one without an action that expired or was revoked keeps
-- blocking for its lockDelayMs. A claim's lease that completed or failed resolves its orphan.
-- `extra`: fields to set with the first write (a release's outcome), or nil.
local function endLease(lease, state, endedAt, now, extra)
  for name, value in pairs(extra or {}) do lease[name] = value end
  -- It stops counting towards its actor's quota (includes/grant), whatever comes next.
  if lease.by then redis.call('ZREM', P .. 'live:' .. lease.by, lease.id) end
  if lease.kind and (state ~= 'released' or lease.out == 'abandoned') then
    setFields(lease, withFields({ st = 'orphaned', es = state, ['end'] = int(endedAt) }, extra))
    redis.call('ZREM', P .. 'exp', lease.id)
    emit(state, endedAt, lease, orphanIdOf(lease))
    writeOrphan(lease, state, endedAt)
    -- The orphan holds the payload and progress now (a claim takes them from there); the
    -- orphaned lease keeps only what answers for it, like a tombstone.
    keepLegacyAction(P .. 'l:' .. lease.id, lease)
    rewriteLease(lease, {}, { 'pay', 'prog', 'act' })
    return
  end
  local blockedUntil = state == 'released' and 0 or endedAt + tonumber(lease.ld or '0')
  if entomb(lease, state, endedAt, now, blockedUntil, extra) then announceFreed(lease.res) end
  emit(state, endedAt, lease, lease.oid)
  if lease.oid then resolveOrphan(lease.oid, lease.out or 'completed', now, lease) end
end

-- Brings a lease up to date with Redis' clock: an active lease whose expiresAt has passed
-- expires now, whoever notices first (an acquire, a renew, a read or the sweeper).
-- An expiry is nobody's act: its events name no actor, whoever noticed it.
local function settle(lease, now)
  if lease and lease.st == 'active' and tonumber(lease.exp) <= now then
    if lease.partial then lease = readLease(lease.id) end
    local actor = ACTOR
    ACTOR = ''
    endLease(lease, 'expired', tonumber(lease.exp), now)
    ACTOR = actor
  end
  return lease
end

-- Whether the actor holds as many active leases as its quota allows (never with no actor or
-- no quota). Expiry is exact here too: as many of its leases past expiresAt as put it at or
-- over its quota are settled first (at most 64; with an unchanged quota, one), which is all
-- this writes when it answers true.
local function overQuota(now)
  if ACTOR == '' or LEASE_QUOTA == 0 then return false end
  local key = P .. 'live:' .. ACTOR
  local excess = redis.call('ZCARD', key) - LEASE_QUOTA + 1
  if excess <= 0 then return false end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, math.min(excess, 64))) do
    local lease = readLease(id)
    if lease then settle(lease, now) else redis.call('ZREM', key, id) end
  end
  return redis.call('ZCARD', key) >= LEASE_QUOTA
end

-- How many bytes of resources a strict settle may read to count the entries of leases that
-- might not fit (see fitsStrictly).
local STRICT_SCAN_BYTES = 16384

-- Whether the lease `id` has at most `budget` index entries, and what is left of `scan` (the
-- bytes of resources it may still read). Its stored resources are at least twice as long as
-- its entries are many (a resource of d segments is stored in at least 2d characters and has
-- at most d entries), so their length, asked without reading them, clears most; one that
-- might not fit is counted exactly when `scan` allows, else taken not to fit. Reading the
-- resources of 50 maximal leases to count them (32 KiB each) cost a claim 30 ms.
local function fitsStrictly(id, budget, scan)
  local length = redis.call('HSTRLEN', P .. 'l:' .. id, 'res')
  if length <= 2 * budget then return true, scan end
  if length > scan then return false, scan end
  return indexWeight({ id = id }) <= budget, scan - length
end

-- Settles up to `batch` leases whose time has come, oldest first: active leases past
-- expiresAt expire, ended leases whose lock delay is over leave the blocking indexes.
-- Stops once the leases it settled had `budget` index entries between them, so a batch of
-- wide leases costs no more than one of narrow ones: at least one lease is settled, unless
-- `strict`, when a lease that would take it past the budget is passed over (left to the
-- reaper) and those behind it are looked at. Returns how many it looked at, and what is left of the budget.
local function settleDue(batch, now, budget, strict)
  local due = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, batch)
  local looked, scan = 0, STRICT_SCAN_BYTES
  for _, id in ipairs(due) do
    if budget <= 0 then break end
    -- (Strict: one too wide is passed over, not waited on; those behind it may fit.)
    local fits = true
    if strict then fits, scan = fitsStrictly(id, budget, scan) end
    if fits then
      local lease = readLeaseSummary(id)
      looked = looked + 1
      if not lease then
        redis.call('ZREM', P .. 'exp', id)
      elseif lease.st == 'active' then
        lease = settle(lease, now)
        if lease.st == 'active' then redis.call('ZADD', P .. 'exp', lease.exp, id) end
      elseif lease.st == 'expired' or lease.st == 'revoked' then
        dropTombstoneIndex(lease)
      else
        redis.call('ZREM', P .. 'exp', id)
      end
      if lease then budget = budget - indexWeight(lease) end
    end
  end
  return looked, budget
end
