#!lua flags=allow-oom
--[[
  An operator's force-end of an active lease. A lease with an action becomes an orphan
  (its work is half-done and must be finished or rolled back); one without frees its
  resources after its lockDelayMs, so a holder that was only slow has time to notice.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  lease id

  Returns {now, "revoked", leaseFields} | {now, "ended", leaseFields} | {now, "missing"}
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/lifecycle"

local now = nowMs()
local lease = settle(readLease(ARGV[7]), now)
if not lease then return { now, 'missing' } end
if lease.st ~= 'active' then return { now, 'ended', flatLease(lease) } end
endLease(lease, 'revoked', now, now)
return { now, 'revoked', flatLease(lease) }
