--[[
  The prelude of the library: every function's arguments, Redis' clock and the deadline guard.
  Every function gets
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

-- The library's functions take their keys and arguments as parameters; begin() puts them in
-- these upvalues, which every include reads, at the start of each call (Redis runs one
-- call at a time, so one set serves all).
local KEYS, ARGV
local P, TOMBSTONE_TTL, DEADLINE, STREAM_CAP, ACTOR, LEASE_QUOTA
-- Counts calls: a cache that must last one call only compares it (see entryKeys in includes/indexes).
local CALL = 0

-- Redis' clock, read once per call by begin(): a call is atomic, so one reading serves all
-- of it, and each TIME costs a crossing into Redis (a few microseconds; an acquire read it
-- three times).
local NOW_MS, NOW_US

-- Redis' clock at the start of this call, ms.
local function nowMs()
  return NOW_MS
end

-- Every function starts with this. True when the call reached Redis after its caller timed
-- out (Redis was paused, or stuck behind a slow command): it then changes nothing, since the
-- caller was told 503, and a grant or release it never hears of would surprise it. Every
-- reply starts with Redis' clock, except that one ({ 'too_late', now }), which carries it
-- second so that a caller whose deadline was wrong can correct its clock.
local function begin(keys, args)
  KEYS, ARGV = keys, args
  P = ARGV[1]
  TOMBSTONE_TTL = tonumber(ARGV[2])
  DEADLINE = tonumber(ARGV[3])
  STREAM_CAP = ARGV[4]
  ACTOR = ARGV[5]
  LEASE_QUOTA = tonumber(ARGV[6])
  CALL = CALL + 1
  local t = redis.call('TIME')
  NOW_US = tonumber(t[1]) * 1000000 + tonumber(t[2])
  NOW_MS = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return DEADLINE > 0 and NOW_MS > DEADLINE
end

-- A whole number (a time, a token: below 2^53) as Redis and the service read it, without
-- Lua's "1.7e+15". As '%.0f' would (a fraction rounds half up, not to even), but printed
-- with '%d': '%.0f' takes glibc's multi-precision float printer, and a profile of acquires
-- put number formatting at 5%. '%d' prints a C long, 32 bits on a 32-bit Redis: numbers
-- past 1e9 go in two halves. (Only fractions are rounded: n + 0.5 is inexact past 2^52.)
local function int(n)
  if n % 1 ~= 0 then n = math.floor(n + 0.5) end
  if not (n >= 0 and n < 1e18) then return string.format('%.0f', n) end -- (negative, inf, nan)
  if n < 1e9 then return string.format('%d', n) end
  local high = math.floor(n / 1e9)
  return string.format('%d%09d', high, n - high * 1e9)
end
