--[[
  For resource servers: is this fencing token the token of an active lease that covers
  this path right now? Like Chubby's CheckSequencer, a write carrying the token of a lease
  that has ended (released, expired, revoked, orphaned) is refused.
  Invariant: read-only, and reads three fields per covering lease, never a payload; a
  lease whose expiresAt has passed is not active, whether or not anyone settled it yet.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  path       ARGV[6]  fencing token (decimal)

  Returns {now, valid (1|0), {leaseId, holder, token, leaseId, holder, token, ...}}
]]
--- @include "includes/core"

local path, token = ARGV[5], ARGV[6]
local now = nowMs()
local nodes = ancestors(path)
nodes[#nodes + 1] = path
local current, valid = {}, 0
for _, node in ipairs(nodes) do
  for _, set in ipairs({ 'ax:', 'as:' }) do
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. set .. node, '(' .. now, '+inf')) do
      local f = redis.call('HMGET', P .. 'l:' .. id, 'st', 'exp', 'holder', 'tok')
      if f[1] == 'active' and tonumber(f[2]) > now then
        current[#current + 1] = id
        current[#current + 1] = f[3]
        current[#current + 1] = f[4]
        if f[4] == token then valid = 1 end
      end
    end
  end
end
return { now, valid, current }
