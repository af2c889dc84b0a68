#!lua flags=allow-oom
--[[
  Ends a lease by its holder's choice. "completed" and "failed" free the resources at
  once; "abandoned" hands a lease with an action over as an orphan (resources stay
  reserved), and simply frees the resources of one without.
  Invariant: a release is idempotent: repeating it with the same outcome answers the same
  tombstone and changes nothing.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  lease id
  ARGV[8]  outcome: completed | failed | abandoned
  ARGV[9]  the holders the caller may act as, a Lua pattern, or "" for any

  Returns {now, "released", leaseFields} | {now, "ended", leaseFields} | {now, "missing"}
        | {now, "forbidden"} (another holder's lease: nothing changed)
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/lifecycle"

local outcome = ARGV[8]
local now = nowMs()
local lease = readLease(ARGV[7])
if not lease then return { now, 'missing' } end
if not mayActAs(lease, ARGV[9]) then return { now, 'forbidden' } end
lease = settle(lease, now)

if lease.st == 'active' then
  endLease(lease, 'released', now, now, { out = outcome })
  return { now, 'released', flatLease(lease) }
end

local endedAs = lease.st == 'orphaned' and lease.es or lease.st
if endedAs == 'released' and lease.out == outcome then return { now, 'released', flatLease(lease) } end
return { now, 'ended', flatLease(lease) }
