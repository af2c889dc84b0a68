#!lua flags=no-writes
--[[
  For resource servers: is this fencing token the token of an active lease that covers
  this path right now? Like Chubby's CheckSequencer, a write carrying the token of a lease
  that has ended (released, expired, revoked, orphaned) is refused.
  Invariant: read-only. The answer is exact whatever the number of leases on the path: the
  token is looked up in the index of tokens (t:) and only its own lease is read. The leases
  listed as current are the first `limit` read; the count of covering entries comes from
  ZCOUNT. Cost: one token lookup, 2 * depth range reads of at most `limit` entries, and at
  most `limit` HMGETs of four fields, never a payload. A lease whose expiresAt has passed
  is not active, whether or not anyone settled it yet.

  no-writes (the first line): it only reads, so Redis runs it whatever refuses writes (its
  maxmemory, a failed save, min-replicas-to-write).

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  path       ARGV[8]  fencing token (decimal)
  ARGV[9]  how many current leases to list at most
  ARGV[10] the SHA-1s of the path's long nodes (see useNodeDigests in includes/indexes)

  Returns {now, valid (1|0), {leaseId, holder, token, leaseId, holder, token, ...}, coveringCount}
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/indexes"

local path, token, limit = ARGV[7], ARGV[8], tonumber(ARGV[9])
useNodeDigests({ path }, ARGV[10])
local now = nowMs()
local live = '(' .. now

local function isActive(f)
  return f[1] == 'active' and tonumber(f[2]) > now
end

local valid = 0
local owner = redis.call('ZRANGEBYSCORE', P .. 't:', token, token, 'LIMIT', 0, 1)[1]
if owner then
  local f = redis.call('HMGET', P .. 'l:' .. owner, 'st', 'exp', 'tok', 'res')
  if isActive(f) and f[3] == token then
    for _, r in ipairs(decodeResources(f[4])) do
      if covers(r.path, path) then valid = 1 end
    end
  end
end

local current, listed, coveringCount = {}, 0, 0
for _, key in ipairs(coveringSets(path, LEASE_SETS, true)) do
  coveringCount = coveringCount + redis.call('ZCOUNT', key, live, '+inf')
  if listed < limit then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, live, '+inf', 'LIMIT', 0, limit - listed)) do
      local f = redis.call('HMGET', P .. 'l:' .. id, 'st', 'exp', 'holder', 'tok')
      if isActive(f) and listed < limit then
        listed = listed + 1
        current[#current + 1] = id
        current[#current + 1] = f[3]
        current[#current + 1] = f[4]
      end
    end
  end
end
return { now, valid, current, coveringCount }
