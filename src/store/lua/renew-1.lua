#!lua flags=allow-oom
--[[
  The heartbeat: extends one active lease and stores the holder's progress checkpoint.
  Invariant: only a lease that is active by Redis' clock is extended; one whose expiresAt
  has passed expires here (exactly once) and the holder hears it has lost the lease.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  lease id
  ARGV[8]  ttlMs, or "" to keep the lease's own
  ARGV[9]  progress JSON, or "" to keep the last one
  ARGV[10]  the holders the caller may act as, a Lua pattern, or "" for any

  Returns {now, "renewed", leaseFields} | {now, "ended", leaseFields} | {now, "missing"}
        | {now, "no_action"} | {now, "forbidden"} (another holder's lease: nothing changed)
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/events"
--- @include "includes/lifecycle"
--- @include "includes/renew"

local now = nowMs()
local lease = readLease(ARGV[7])
if not lease then return { now, 'missing' } end
if not mayActAs(lease, ARGV[10]) then return { now, 'forbidden' } end
lease = settle(lease, now)
if lease.st ~= 'active' then return { now, 'ended', flatLease(lease) } end
if ARGV[9] ~= '' and not lease.kind then return { now, 'no_action' } end
renewLease(lease, tonumber(ARGV[8] ~= '' and ARGV[8] or lease.ttl), now, ARGV[9] ~= '' and { prog = ARGV[9] } or nil)
emit('renewed', now, lease, lease.oid)
return { now, 'renewed', flatLease(lease) }
