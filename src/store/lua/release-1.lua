--[[
  Ends a lease by its holder's choice. "completed" and "failed" free the resources at
  once; "abandoned" hands a lease with an action over as an orphan (resources stay
  reserved), and simply frees the resources of one without.
  Invariant: a release is idempotent: repeating it with the same outcome answers the same
  tombstone and changes nothing.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline (see core)
  ARGV[4]  lease id
  ARGV[5]  outcome: completed | failed | abandoned

  Returns {now, "released", leaseFields} | {now, "ended", leaseFields} | {now, "missing"}
]]
--- @include "includes/core"

local outcome = ARGV[5]
local now = nowMs()
local lease = settle(readLease(ARGV[4]), now)
if not lease then return { now, 'missing' } end

if lease.st == 'active' then
  setFields(lease, { out = outcome })
  if lease.act and outcome == 'abandoned' then
    orphan(lease, 'released', now)
  else
    entomb(lease, 'released', now, now, 0)
  end
  return { now, 'released', flatLease(lease) }
end

local endedAs = lease.st == 'orphaned' and lease.es or lease.st
if endedAs == 'released' and lease.out == outcome then return { now, 'released', flatLease(lease) } end
return { now, 'ended', flatLease(lease) }
