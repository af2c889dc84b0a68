--[[
  The heartbeat: extends one active lease and stores the holder's progress checkpoint.
  Invariant: only a lease that is active by Redis' clock is extended; one whose expiresAt
  has passed expires here (exactly once) and the holder hears it has lost the lease.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms
  ARGV[3]  lease id
  ARGV[4]  ttlMs, or "" to keep the lease's own
  ARGV[5]  progress JSON, or "" to keep the last one

  Returns {"renewed", now, leaseFields} | {"ended", now, leaseFields} | {"missing", now}
        | {"no_action", now}
]]
--- @include "includes/core"
--- @include "includes/renew"

local now = nowMs()
local lease = settle(readLease(ARGV[3]), now)
if not lease then return { 'missing', now } end
if lease.st ~= 'active' then return { 'ended', now, flatLease(lease) } end
if ARGV[5] ~= '' then
  if not lease.act then return { 'no_action', now } end
  setFields(lease, { prog = ARGV[5] })
end
renewLease(lease, tonumber(ARGV[4] ~= '' and ARGV[4] or lease.ttl), now)
return { 'renewed', now, flatLease(lease) }
