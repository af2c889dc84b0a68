#!lua flags=no-writes
--[[
  What /metrics reports about the state every replica shares, read in one round trip with
  O(1) commands (ZCARD, and HGETALL of a hash of a few dozen fields), so a scrape costs the
  same with ten leases or ten million. Changes nothing.

  no-writes (the first line): it only reads, so Redis runs it whatever refuses writes (its
  maxmemory, a failed save, min-replicas-to-write).

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)

  Returns {now, holding, pending, claimed, deadLetter, waiting, stats}: holding counts the
  leases that hold resources (active and orphaned), waiting the tickets of waiting acquires,
  stats is P.."stats" as [field, value, ...].
]]
--- @include "includes/prelude"

local function size(key)
  return redis.call('ZCARD', P .. key)
end

return { nowMs(), size('t:'), size('os:pending'), size('os:claimed'), size('os:dead_letter'), size('wexp'),
  redis.call('HGETALL', P .. 'stats') }
