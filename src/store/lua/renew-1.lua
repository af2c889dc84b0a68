--[[
  The heartbeat: extends one active lease and stores the holder's progress checkpoint.
  Invariant: only a lease that is active by Redis' clock is extended; one whose expiresAt
  has passed expires here (exactly once) and the holder hears it has lost the lease.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline (see core)
  ARGV[4]  lease id
  ARGV[5]  ttlMs, or "" to keep the lease's own
  ARGV[6]  progress JSON, or "" to keep the last one

  Returns {now, "renewed", leaseFields} | {now, "ended", leaseFields} | {now, "missing"}
        | {now, "no_action"}
]]
--- @include "includes/core"
--- @include "includes/renew"

local now = nowMs()
local lease = settle(readLease(ARGV[4]), now)
if not lease then return { now, 'missing' } end
if lease.st ~= 'active' then return { now, 'ended', flatLease(lease) } end
if ARGV[6] ~= '' then
  if not lease.act then return { now, 'no_action' } end
  setFields(lease, { prog = ARGV[6] })
end
renewLease(lease, tonumber(ARGV[5] ~= '' and ARGV[5] or lease.ttl), now)
return { now, 'renewed', flatLease(lease) }
