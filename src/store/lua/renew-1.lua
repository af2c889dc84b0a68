#!lua flags=allow-oom
--[[
  The heartbeat: extends one active lease and stores the holder's progress checkpoint.
  Invariant: only a lease that is active by Redis' clock is extended; one whose expiresAt
  has passed expires here (exactly once) and the holder hears it has lost the lease.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap (see prelude)
  ARGV[5]  lease id
  ARGV[6]  ttlMs, or "" to keep the lease's own
  ARGV[7]  progress JSON, or "" to keep the last one

  Returns {now, "renewed", leaseFields} | {now, "ended", leaseFields} | {now, "missing"}
        | {now, "no_action"}
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/events"
--- @include "includes/lifecycle"
--- @include "includes/renew"

local now = nowMs()
local lease = settle(readLease(ARGV[5]), now)
if not lease then return { now, 'missing' } end
if lease.st ~= 'active' then return { now, 'ended', flatLease(lease) } end
if ARGV[7] ~= '' then
  if not lease.kind then return { now, 'no_action' } end
  setFields(lease, { prog = ARGV[7] })
end
renewLease(lease, tonumber(ARGV[6] ~= '' and ARGV[6] or lease.ttl), now)
emit('renewed', now, lease, lease.oid)
return { now, 'renewed', flatLease(lease) }
