--[[
  An operator's force-end of an active lease. A lease with an action becomes an orphan
  (its work is half-done and must be finished or rolled back); one without frees its
  resources after its lockDelayMs, so a holder that was only slow has time to notice.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms
  ARGV[3]  lease id

  Returns {"revoked", now, leaseFields} | {"ended", now, leaseFields} | {"missing", now}
]]
--- @include "includes/core"

local now = nowMs()
local lease = settle(readLease(ARGV[3]), now)
if not lease then return { 'missing', now } end
if lease.st ~= 'active' then return { 'ended', now, flatLease(lease) } end
if lease.act then
  orphan(lease, 'revoked', now)
else
  entomb(lease, 'revoked', now, now, now + tonumber(lease.ld or '0'))
end
return { 'revoked', now, flatLease(lease) }
