-- Renewing: a lease's new expiry, and its blocking entries with it.
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/indexes"

-- Moves an active lease's expiry to now + ttl, never past its holdDeadline, and its
-- blocking entries with it (leases with an action block at +inf and need no rescore).
-- `extra`: fields to set with it (a progress checkpoint), or nil.
local function renewLease(lease, ttl, now, extra)
  local expiresAt = math.min(now + ttl, tonumber(lease.hold))
  setFields(lease, withFields({ ren = int(now), exp = int(expiresAt), ttl = int(ttl) }, extra))
  if not lease.kind then indexBlocking(lease, blocksUntil(lease, expiresAt)) end
  redis.call('ZADD', P .. 'exp', int(expiresAt), lease.id)
  -- Its actor's leases are kept by expiry too (includes/grant, for the quota).
  if lease.by then redis.call('ZADD', P .. 'live:' .. lease.by, 'XX', int(expiresAt), lease.id) end
  return expiresAt
end
