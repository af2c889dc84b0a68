--[[
  Reads one orphan.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see core)
  ARGV[5]  orphan id

  Returns {now, "found", orphanFields} | {now, "missing"}
]]
--- @include "includes/core"

local now = nowMs()
if redis.call('EXISTS', orphanKey(ARGV[5])) == 0 then return { now, 'missing' } end
return { now, 'found', flatOrphan(ARGV[5]) }
