--[[
  Reads one lease or its tombstone. A read settles a lease whose expiresAt has passed, so
  the answer never shows a lease as active after Redis' clock has passed its expiry.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms
  ARGV[3]  lease id

  Returns {"found", now, leaseFields} | {"missing", now}
]]
--- @include "includes/core"

local now = nowMs()
local lease = settle(readLease(ARGV[3]), now)
if not lease then return { 'missing', now } end
return { 'found', now, flatLease(lease) }
