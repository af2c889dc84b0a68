--[[
  Grants a lease on every requested resource, or on none (all-or-nothing).
  Invariant: a grant is recorded in the lease hash and in every index before the caller
  hears of it, and its fencing token is above every token issued before, also after Redis
  restarted from an append-only file that lost its last writes: the token never falls
  below Redis' clock in microseconds.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline (see core)
  ARGV[4]  new lease id
  ARGV[5]  holder
  ARGV[6]  resources JSON [{path, mode}] (validated, no two covering each other)
  ARGV[7]  ttlMs      ARGV[8]  maxHoldMs      ARGV[9]  lockDelayMs
  ARGV[10] action JSON, or "" for none
  ARGV[11] requestId, or "" for none
  ARGV[12] fingerprint of the request (same requestId must mean the same request)
  ARGV[13] how many conflicts to report at most

  Returns {now, "granted", leaseFields} | {now, "existing", leaseFields}
        | {now, "conflict", {path, leaseId, holder, mode, state, ...}}
        | {now, "request_id_reused", leaseId}
]]
--- @include "includes/core"
--- @include "includes/conflicts"

local id, holder = ARGV[4], ARGV[5]
local resources = cjson.decode(ARGV[6])
local ttl, maxHold, lockDelay = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local action, requestId, fingerprint = ARGV[10], ARGV[11], ARGV[12]
local conflictLimit = tonumber(ARGV[13])
local now = nowMs()

local requestKey = P .. 'rq:' .. #holder .. ':' .. holder .. requestId
if requestId ~= '' then
  local previousId = redis.call('GET', requestKey)
  if previousId then
    local previous = settle(readLease(previousId), now)
    if previous and previous.st == 'active' then
      if previous.fp ~= fingerprint then return { now, 'request_id_reused', previousId } end
      return { now, 'existing', flatLease(previous) }
    end
  end
end

local conflicts = {}
for _, r in ipairs(resources) do
  collectConflicts(r.path, r.mode, now, conflictLimit, conflicts)
end
if #conflicts > 0 then return { now, 'conflict', conflicts } end

local t = redis.call('TIME')
local clockMicros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local token = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, clockMicros)
redis.call('SET', KEYS[1], int(token))

local hold = now + maxHold
local expiresAt = math.min(now + ttl, hold)
local lease = { id = id, holder = holder, resources = resources, tok = int(token) }
local fields = {
  'holder', holder, 'res', ARGV[6], 'tok', lease.tok, 'st', 'active',
  'ttl', int(ttl), 'acq', int(now), 'ren', int(now), 'exp', int(expiresAt), 'hold', int(hold),
  'ld', int(lockDelay), 'fp', fingerprint,
}
if action ~= '' then
  lease.act = action
  fields[#fields + 1] = 'act'
  fields[#fields + 1] = action
end
if requestId ~= '' then
  fields[#fields + 1] = 'rid'
  fields[#fields + 1] = requestId
  redis.call('SET', requestKey, id, 'PX', int(maxHold + TOMBSTONE_TTL))
end
lease.ld = int(lockDelay)
redis.call('HSET', P .. 'l:' .. id, unpack(fields))
indexBlocking(lease, blocksUntil(lease, expiresAt))
indexListing(lease)
redis.call('ZADD', P .. 'exp', int(expiresAt), id)
return { now, 'granted', flatLease(lease) }
