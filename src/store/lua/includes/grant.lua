-- Granting: the fencing token and the record and indexes of a new active lease, and each
-- actor's active leases, for its quota.
--   P.."live:"..actor   zset   the active leases the actor acquired or claimed, score: their
--                              expiresAt (renewLease moves it, endLease drops the lease)
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/indexes"
--- @include "includes/events"

-- max(last + 1, Redis' clock in µs): strictly increasing, and above every token issued
-- before even after Redis restarted from an append-only file that lost its last writes.
-- (The clock as this call began: a call is atomic, and last + 1 keeps two in one µs apart.)
-- One SET ... GET in the usual case, where the clock has moved on since the last token; a
-- second SET when it has not (two grants in one µs, a clock stepped back).
local function nextToken()
  local clock = int(NOW_US)
  local last = tonumber(redis.call('SET', KEYS[1], clock, 'GET') or '0')
  if last < NOW_US then return clock end
  local token = int(last + 1)
  redis.call('SET', KEYS[1], token)
  return token
end

-- Records and indexes a new active lease. `spec`: id, holder, res (resources as stored, and
-- decoded as resources when the caller has them already), ttl,
-- maxHold, lockDelay (numbers) and, when present, kind and ma (its action's kind and
-- maxAttempts), pay (the payload, JSON), att (attempt, when not the first), prog (JSON),
-- rid (requestId), fp (fingerprint), oid (the orphan it claims).
-- Appends the `eventType` event and returns the lease.
local function grant(spec, now, eventType)
  local hold = now + spec.maxHold
  local expiresAt = math.min(now + spec.ttl, hold)
  local lease = {
    id = spec.id, holder = spec.holder, res = spec.res, resources = spec.resources or decodeResources(spec.res),
    tok = nextToken(), ld = int(spec.lockDelay), oid = spec.oid,
  }
  local fields = {
    'holder', spec.holder, 'res', spec.res, 'tok', lease.tok, 'st', 'active',
    'ttl', int(spec.ttl), 'acq', int(now), 'ren', int(now), 'exp', int(expiresAt), 'hold', int(hold),
  }
  -- Who acquired it (a token id), when access control names one; it counts towards its quota.
  if ACTOR ~= '' then
    lease.by = ACTOR
    fields[#fields + 1] = 'by'
    fields[#fields + 1] = ACTOR
    redis.call('ZADD', P .. 'live:' .. ACTOR, int(expiresAt), spec.id)
  end
  -- Absent means 0: most leases have no lock delay, and every field costs memory.
  if spec.lockDelay > 0 then
    fields[#fields + 1] = 'ld'
    fields[#fields + 1] = lease.ld
  end
  for _, name in ipairs({ 'kind', 'ma', 'pay', 'att', 'prog', 'rid', 'fp', 'oid' }) do
    if spec[name] then
      lease[name] = spec[name]
      fields[#fields + 1] = name
      fields[#fields + 1] = spec[name]
    end
  end
  redis.call('HSET', P .. 'l:' .. spec.id, unpack(fields))
  -- The whole record, as written: flatLease answers with it rather than read it back.
  lease.written = fields
  indexBlocking(lease, blocksUntil(lease, expiresAt))
  indexListing(lease)
  redis.call('ZADD', P .. 'exp', int(expiresAt), spec.id)
  emit(eventType, now, lease, spec.oid)
  return lease
end
