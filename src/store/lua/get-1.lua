#!lua flags=allow-oom
--[[
  Reads one lease or its tombstone. A read settles a lease whose expiresAt has passed, so
  the answer never shows a lease as active after Redis' clock has passed its expiry.

  allow-oom (the first line): a read answers even when Redis is at its maxmemory; what it
  settles or drops on the way frees memory.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  lease id
  ARGV[8]  the holders the caller may read, a Lua pattern, or "" for any

  Returns {now, "found", leaseFields} | {now, "missing"}
        | {now, "forbidden"} (another holder's lease: nothing read out, nothing settled)
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/lifecycle"

local now = nowMs()
local lease = readLease(ARGV[7])
if not lease then return { now, 'missing' } end
if not mayActAs(lease, ARGV[8]) then return { now, 'forbidden' } end
lease = settle(lease, now)
return { now, 'found', flatLease(lease) }
