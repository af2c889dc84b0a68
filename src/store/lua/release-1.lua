--[[
  Ends a lease by its holder's choice. "completed" and "failed" free the resources at
  once; "abandoned" hands a lease with an action over as an orphan (resources stay
  reserved), and simply frees the resources of one without.
  Invariant: a release is idempotent: repeating it with the same outcome answers the same
  tombstone and changes nothing.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms
  ARGV[3]  lease id
  ARGV[4]  outcome: completed | failed | abandoned

  Returns {"released", now, leaseFields} | {"ended", now, leaseFields} | {"missing", now}
]]
--- @include "includes/core"

local outcome = ARGV[4]
local now = nowMs()
local lease = settle(readLease(ARGV[3]), now)
if not lease then return { 'missing', now } end

if lease.st == 'active' then
  setFields(lease, { out = outcome })
  if lease.act and outcome == 'abandoned' then
    orphan(lease, 'released', now)
  else
    entomb(lease, 'released', now, now, 0)
  end
  return { 'released', now, flatLease(lease) }
end

local endedAs = lease.st == 'orphaned' and lease.es or lease.st
if endedAs == 'released' and lease.out == outcome then return { 'released', now, flatLease(lease) } end
return { 'ended', now, flatLease(lease) }
