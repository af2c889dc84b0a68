--[[
  The prelude every script starts with: its arguments, Redis' clock and the deadline guard.
  Every script gets
    KEYS[1]  P.."token" (the fencing counter; it names the hash slot every other key shares)
    ARGV[1]  P, the key prefix with its hash tag, e.g. "{lease}:"
    ARGV[2]  how long a tombstone (or a resolved orphan) is kept, ms
    ARGV[3]  deadline: Redis-clock ms after which the caller has given up waiting (0: none)
    ARGV[4]  stream cap: the events and orphans streams keep about this many entries
    ARGV[5]  actor: who asked (a token id; "" when access control is off or for the reaper).
             Events name it, and a lease records who acquired it.
    ARGV[6]  lease quota: the active leases the actor may hold in this namespace (0: no limit);
             acquire and claim refuse a new one past it (see includes/grant).
  Other keys are built from P by the includes that use them, each listed in the header of
  its include: they all carry the same hash tag, so they live in the slot of KEYS[1] on
  Redis Cluster too. Times are ms on Redis' clock.
]]

local P = ARGV[1]
local TOMBSTONE_TTL = tonumber(ARGV[2])
local DEADLINE = tonumber(ARGV[3])
local STREAM_CAP = ARGV[4]
local ACTOR = ARGV[5]
local LEASE_QUOTA = tonumber(ARGV[6])

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A call that reaches Redis after its caller timed out (Redis was paused, or stuck behind a
-- slow command) changes nothing: the caller was told 503, and a grant or release it never
-- hears of would surprise it. Every reply starts with Redis' clock, except this one, which
-- carries it second so that a caller whose deadline was wrong can correct its clock.
if DEADLINE > 0 and nowMs() > DEADLINE then return { 'too_late', nowMs() } end

local function int(n)
  return string.format('%.0f', n)
end
