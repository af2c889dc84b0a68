#!lua flags=allow-oom
--[[
  Reads one orphan. A claim whose lease has expired is settled first, so the answer never
  shows an orphan as claimed after Redis' clock has passed its claim's expiry.

  allow-oom (the first line): a read answers even when Redis is at its maxmemory; what it
  settles or drops on the way frees memory.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  orphan id

  Returns {now, "found", orphanFields} | {now, "missing"}
]]
--- @include "includes/prelude"
--- @include "includes/orphans"
--- @include "includes/read-orphan"

local now = nowMs()
if not readOrphan(ARGV[7], now) then return { now, 'missing' } end
return { now, 'found', flatOrphan(ARGV[7]) }
