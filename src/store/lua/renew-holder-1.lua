--[[
  One heartbeat for every active lease of a holder (a conductor with many leases renews
  them all in one call). Leases that have expired are settled, not renewed.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline (see core)
  ARGV[4]  holder
  ARGV[5]  ttlMs, or "" for each lease's own

  Returns {now, {leaseId, expiresAt, leaseId, expiresAt, ...}}
]]
--- @include "includes/core"
--- @include "includes/renew"

local now = nowMs()
local renewed = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'h:' .. ARGV[4], 0, -1)) do
  -- Orphaned leases stay listed under their holder; skip them without reading payloads.
  local state = redis.call('HGET', P .. 'l:' .. id, 'st')
  local lease = state == 'active' and settle(readLease(id), now) or nil
  if not state then
    redis.call('ZREM', P .. 'h:' .. ARGV[4], id)
  elseif lease and lease.st == 'active' then
    local expiresAt = renewLease(lease, tonumber(ARGV[5] ~= '' and ARGV[5] or lease.ttl), now)
    renewed[#renewed + 1] = id
    renewed[#renewed + 1] = expiresAt
  end
end
return { now, renewed }
