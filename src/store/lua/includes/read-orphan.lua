-- Reading one orphan by Redis' clock. Not in includes/orphans: it settles the claim's lease,
-- and the lifecycle that settles leases writes orphans, so it comes after both.
--- @include "includes/records"
--- @include "includes/orphans"
--- @include "includes/lifecycle"

-- Reads an orphan by Redis' clock: a claimed orphan whose claim's lease has expired is
-- back in the queue (or a dead letter) now, whether or not the reaper has run.
local function readOrphan(oid, now)
  local orphan = readHash(orphanKey(oid))
  if orphan and orphan.st == 'claimed' and orphan.cl then
    local lease = readLeaseSummary(orphan.cl)
    if lease and lease.st == 'active' and settle(lease, now).st ~= 'active' then orphan = readHash(orphanKey(oid)) end
  end
  return orphan
end
