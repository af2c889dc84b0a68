--[[
  Orphans: the actions of leases that ended unfinished, queued for a claim.
    P.."o:"..oid     hash   an orphan (see writeOrphan)
    P.."oseq"        string orphan counter: an orphan's seq orders queues and listings
    P.."oa"          zset   every orphan not yet dropped           score: seq
    P.."os:"..state  zset   orphans in a state                     score: seq
    P.."oq"          zset   pending orphans, any kind (the queue)  score: seq
    P.."ok:"..kind   zset   pending orphans of a kind              score: seq
    P.."oexp"        zset   resolved orphans to drop               score: when
    P.."orphans"     stream each orphaning, once (capped); other systems read it with XREADGROUP
  Shard channel: P.."pending" (a kind that has a newly pending orphan; claimers retry; SPUBLISH).

  Fields of P.."o:"..oid: st (pending | claimed | dead_letter | resolved),
  why (expired | abandoned | revoked), kind, ma, pay (as a lease holds them),
  att (the attempt that was running when it was orphaned), prog (JSON, the last progress),
  res (resources, see decodeResources), lid, lh, ltok (the last lease, its holder and token), at (orphanedAt),
  seq, cb and cl (claimed by, and the claim's lease), rsl and rat (resolution, resolvedAt).
  While an orphan is pending, claimed or dead_letter, its resources are held by a lease:
  the orphaned lease (pending, dead_letter) or the claim's lease (claimed).
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"
--- @include "includes/events"

local REASONS = { expired = 'expired', released = 'abandoned', revoked = 'revoked' }

local function orphanKey(oid)
  return P .. 'o:' .. oid
end

-- An orphan's fields without the client's JSON (pay, prog), for listings: what
-- SUMMARY_FIELDS are to a lease (see flatRecord).
local ORPHAN_SUMMARY_FIELDS = { 'st', 'why', 'kind', 'ma', 'att', 'res', 'lid', 'lh', 'ltok', 'at', 'seq', 'cb', 'cl', 'rsl', 'rat', 'act' }

-- What a resolved orphan keeps besides st, rsl and rat (kind and ma have fields of their
-- own by then, also in a legacy record: see resolveOrphan).
local ORPHAN_KEPT_FIELDS = { 'why', 'kind', 'ma', 'att', 'res', 'lid', 'lh', 'ltok', 'at', 'seq', 'cb', 'cl' }

local function flatOrphan(oid, withoutJson, overrides)
  return flatRecord(orphanKey(oid), oid, withoutJson and ORPHAN_SUMMARY_FIELDS, overrides)
end

-- Keeps the per-state index and the claim queues in step with an orphan's state.
local function moveOrphan(oid, seq, kind, from, to)
  if from then redis.call('ZREM', P .. 'os:' .. from, oid) end
  redis.call('ZADD', P .. 'os:' .. to, seq, oid)
  if from == 'pending' then
    redis.call('ZREM', P .. 'oq', oid)
    redis.call('ZREM', P .. 'ok:' .. kind, oid)
  end
  if to == 'pending' then
    redis.call('ZADD', P .. 'oq', seq, oid)
    redis.call('ZADD', P .. 'ok:' .. kind, seq, oid)
  end
end

-- The attempt a lease with an action runs (the first when the lease was acquired directly).
local function attemptOf(lease)
  return tonumber(lease.att or '1')
end

-- Publishes the action of a lease that just became orphaned (its holder died, gave up or
-- was revoked): a new orphan, or the orphan it was claimed from, back with this attempt.
-- After maxAttempts attempts it is a dead letter. Each orphaning is appended once to the
-- orphans stream, in the same script as the transition, so it is published exactly once.
-- An orphan's id is derived from the first lease it came from (128 random bits, hashed):
-- Lua in Redis has no randomness of its own.
local function orphanIdOf(lease)
  return lease.oid or string.sub(redis.sha1hex('orphan:' .. lease.id), 1, 32)
end

local function writeOrphan(lease, endState, at)
  local oid = orphanIdOf(lease)
  local key = orphanKey(oid)
  local kind = lease.kind
  local attempt = attemptOf(lease)
  local maxAttempts = tonumber(lease.ma) or 1
  local state = attempt >= maxAttempts and 'dead_letter' or 'pending'
  local known = redis.call('HMGET', key, 'st', 'seq')
  local previous = known[1]
  local seq = previous and known[2] or redis.call('INCR', P .. 'oseq')
  redis.call('HSET', key, 'st', state, 'why', REASONS[endState], 'kind', kind, 'ma', int(maxAttempts),
    'att', int(attempt), 'res', lease.res, 'lid', lease.id, 'lh', lease.holder, 'ltok', lease.tok,
    'at', int(at), 'seq', seq)
  for _, name in ipairs({ 'pay', 'prog' }) do
    if lease[name] then redis.call('HSET', key, name, lease[name]) end
  end
  redis.call('HDEL', key, 'cb', 'cl', 'act')
  if not previous then redis.call('ZADD', P .. 'oa', seq, oid) end
  moveOrphan(oid, seq, kind, previous, state)
  if not lease.oid then setFields(lease, { oid = oid }) end
  redis.call('XADD', P .. 'orphans', 'MAXLEN', '~', STREAM_CAP, '*', 'orphanId', oid, 'state', state,
    'reason', REASONS[endState], 'kind', kind, 'attempt', int(attempt),
    'maxAttempts', int(maxAttempts), 'leaseId', lease.id, 'holder', lease.holder,
    'fencingToken', lease.tok, 'paths', pathsJson(lease.res), 'orphanedAt', int(at))
  emit(state == 'pending' and 'orphaned' or 'dead_lettered', at, lease, oid)
  count('orphaned:' .. REASONS[endState])
  if state == 'pending' then redis.call('SPUBLISH', P .. 'pending', kind) end
  return oid
end

-- An orphan's story ends: its work completed or failed under a claim, or an operator
-- discarded it. It is kept TOMBSTONE_TTL ms for operators, then the sweeper drops it.
local function resolveOrphan(oid, resolution, at, lease)
  local key = orphanKey(oid)
  local f = redis.call('HMGET', key, 'st', 'seq', 'kind', 'act', 'ma')
  if not f[1] or f[1] == 'resolved' then return end
  keepLegacyAction(key, upgradeLegacyAction({ kind = f[3] or nil, act = f[4] or nil, ma = f[5] or nil }))
  -- Kept an hour for operators, like a tombstone, and like one without the client's JSON:
  -- written anew rather than trimmed, so that it leaves the larger encoding its payload
  -- needed (see rewriteLease; measured 875 -> 312 B for a 1 KiB payload and 16 KiB progress).
  local values, kept = redis.call('HMGET', key, unpack(ORPHAN_KEPT_FIELDS)), {}
  for i, name in ipairs(ORPHAN_KEPT_FIELDS) do kept[name] = values[i] or nil end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(appendFields({ 'st', 'resolved', 'rsl', resolution, 'rat', int(at) }, ORPHAN_KEPT_FIELDS, kept)))
  moveOrphan(oid, f[2], f[3], f[1], 'resolved')
  redis.call('ZADD', P .. 'oexp', int(at + TOMBSTONE_TTL), oid)
  emit('resolved', at, lease, oid)
  count('resolved:' .. resolution)
end

-- An orphan by Redis' clock, for a reader of many, without writing (as presentAsOf): a
-- claimed orphan whose claim's lease has expired is orphaned anew by that expiry, pending
-- again or a dead letter once that claim was its last attempt, as writeOrphan will record
-- it. Returns the fields to answer with instead of the stored ones, or nil.
local function orphanAsOf(oid, now)
  local f = redis.call('HMGET', orphanKey(oid), 'st', 'cl', 'cb', 'att', 'ma')
  if f[1] ~= 'claimed' or not f[2] then return nil end
  local claim = redis.call('HMGET', P .. 'l:' .. f[2], 'st', 'exp', 'tok')
  if claim[1] ~= 'active' or tonumber(claim[2]) > now then return nil end
  local attempt = tonumber(f[4]) + 1
  return {
    st = attempt >= (tonumber(f[5]) or 1) and 'dead_letter' or 'pending', why = 'expired', att = int(attempt),
    lid = f[2], lh = f[3], ltok = claim[3], at = claim[2], cb = false, cl = false,
  }
end
