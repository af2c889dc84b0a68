--[[
  Reads one lease or its tombstone. A read settles a lease whose expiresAt has passed, so
  the answer never shows a lease as active after Redis' clock has passed its expiry.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  lease id

  Returns {now, "found", leaseFields} | {now, "missing"}
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/lifecycle"

local now = nowMs()
local lease = settle(readLease(ARGV[7]), now)
if not lease then return { now, 'missing' } end
return { now, 'found', flatLease(lease) }
