--[[
  Settles leases whose time has come, oldest first, in a bounded batch: active leases past
  expiresAt expire (a lease with an action becomes an orphan), and ended leases whose lock
  delay is over leave the blocking indexes. Running it twice, or from two replicas at
  once, is harmless: each lease's transition happens once, under the script's atomicity.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline (see core)
  ARGV[4]  batch size

  Returns {now, settled, stillDue}
]]
--- @include "includes/core"

local now = nowMs()
local due = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(due) do
  local lease = readLease(id)
  if not lease then
    redis.call('ZREM', P .. 'exp', id)
  elseif lease.st == 'active' then
    settle(lease, now)
    if lease.st == 'active' then redis.call('ZADD', P .. 'exp', lease.exp, id) end
  elseif lease.st == 'expired' or lease.st == 'revoked' then
    dropTombstoneIndex(lease)
  else
    redis.call('ZREM', P .. 'exp', id)
  end
end
return { now, #due, redis.call('ZCOUNT', P .. 'exp', '-inf', now) }
