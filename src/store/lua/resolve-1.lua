#!lua flags=allow-oom
--[[
  An operator resolves an orphan that nobody will finish: its reservation ends and its
  resources are free. Only a pending or dead_letter orphan can be resolved; a claimed one
  is being worked on (revoke its lease first, and it comes back pending).
  Invariant: resolving again with the same resolution answers the same orphan and changes
  nothing (retries are safe).

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  orphan id
  ARGV[8]  resolution ("discard")

  Returns {now, "resolved", orphanFields} | {now, "claimed" | "already_resolved", orphanFields}
        | {now, "missing"}
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/events"
--- @include "includes/orphans"
--- @include "includes/lifecycle"
--- @include "includes/read-orphan"

local oid, resolution = ARGV[7], ARGV[8]
local now = nowMs()
local orphan = readOrphan(oid, now)
if not orphan then return { now, 'missing' } end
if orphan.st == 'resolved' then
  return { now, orphan.rsl == resolution and 'resolved' or 'already_resolved', flatOrphan(oid) }
end
if orphan.st == 'claimed' then return { now, 'claimed', flatOrphan(oid) } end

local lease = readLease(orphan.lid)
if lease and lease.st == 'orphaned' then
  entomb(lease, lease.es, tonumber(lease['end']), now, 0)
  announceFreed(lease.res)
else
  -- Only if the lease record was lost (it is never given a TTL while orphaned): drop what
  -- may be left of its index entries all the same.
  lease = { id = orphan.lid, holder = orphan.lh, tok = orphan.ltok, res = orphan.res }
  unindexBlocking(lease)
  unindexListing(lease)
  announceFreed(lease.res)
end
resolveOrphan(oid, resolution, now, lease)
return { now, 'resolved', flatOrphan(oid) }
