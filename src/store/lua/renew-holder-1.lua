--[[
  One heartbeat for every active lease of a holder (a conductor with many leases renews
  them all in one call). Leases that have expired are settled, not renewed.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  holder
  ARGV[6]  ttlMs, or "" for each lease's own

  Appends one "renewed" event for the batch (holder and paths, no leaseId).

  Returns {now, {leaseId, expiresAt, leaseId, expiresAt, ...}}
]]
--- @include "includes/core"
--- @include "includes/renew"

local now = nowMs()
local renewed, paths = {}, {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'h:' .. ARGV[5], 0, -1)) do
  -- Orphaned leases stay listed under their holder; skip them without reading payloads.
  local state = redis.call('HGET', P .. 'l:' .. id, 'st')
  local lease = state == 'active' and settle(readLease(id), now) or nil
  if not state then
    redis.call('ZREM', P .. 'h:' .. ARGV[5], id)
  elseif lease and lease.st == 'active' then
    local expiresAt = renewLease(lease, tonumber(ARGV[6] ~= '' and ARGV[6] or lease.ttl), now)
    renewed[#renewed + 1] = id
    renewed[#renewed + 1] = expiresAt
    for _, r in ipairs(lease.resources) do paths[#paths + 1] = r.path end
  end
end
if #renewed > 0 then
  redis.call('XADD', P .. 'ev', 'MAXLEN', '~', STREAM_CAP, '*', 'type', 'renewed', 'at', int(now), 'holder', ARGV[5],
    'paths', cjson.encode(paths))
end
return { now, renewed }
