#!lua flags=allow-oom
--[[
  A waiting acquire gives up (its client went away, or its replica is shutting down): its
  ticket leaves the queue, and the requests queued behind it are told to look again.
  Harmless when the ticket is already gone.

  allow-oom (the first line): it runs even when Redis is at its maxmemory, since it frees
  memory or keeps what is held as it is; scripts that add (acquire, claim) are refused then.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  ticket id

  Returns {now, dropped (1|0)}
]]
--- @include "includes/prelude"
--- @include "includes/records"
--- @include "includes/tickets"

local now = nowMs()
local ticket = readHash(ticketKey(ARGV[7]))
if not ticket then return { now, 0 } end
dropTicket(ARGV[7], ticket, true)
return { now, 1 }
