--[[
  Shared by every script: key names, Redis' clock, the lease record, the path indexes and
  the transitions that end a lease. Every script gets
    KEYS[1]  P.."token" (the fencing counter; it names the hash slot every other key shares)
    ARGV[1]  P, the key prefix with its hash tag, e.g. "{lease}:"
    ARGV[2]  how long a tombstone is kept, ms
    ARGV[3]  deadline: Redis-clock ms after which the caller has given up waiting (0: none)
  Other keys are built here from P: they all carry the same hash tag, so they live in the
  slot of KEYS[1] on Redis Cluster too.

  Keys:
    P.."l:"..id      hash   a lease; after it ends, its tombstone (with a TTL)
    P.."ax:"..path   zset   exclusive leases at path         score: blocks-until (ms)
    P.."as:"..path   zset   shared leases at path            score: blocks-until
    P.."b:"..path    zset   leases strictly below path       score: blocks-until
    P.."bx:"..path   zset   exclusive leases strictly below  score: blocks-until
    P.."t:"..path    zset   leases holding something at or below path ("" = all)  score: token
    P.."h:"..holder  zset   leases of a holder that hold resources               score: token
    P.."exp"         zset   leases to settle, score: when (expiry, or end of lock delay)
    P.."rq:"..n..":"..holder..requestId  string  lease id of an idempotent acquire

  Invariant: a lease blocks a path exactly while its entry in that path's ax/as/b/bx set
  has a score above Redis' clock. Blocks-until is expiresAt + lockDelayMs for a lease
  without an action and +inf for one with an action (it stays reserved as an orphan when
  it dies), so expiry is exact with no background job: live entries are those scored > now.

  Lease fields: holder, res (JSON [{path, mode}]), tok, st (active | orphaned | released |
  expired | revoked), es (how an orphaned lease ended), ttl, acq, ren, exp, hold, ld,
  act (JSON action), prog (JSON), rid, fp, out, end. Times are ms on Redis' clock.
]]

local P = ARGV[1]
local TOMBSTONE_TTL = tonumber(ARGV[2])
local DEADLINE = tonumber(ARGV[3])

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

-- Proper ancestors of a path, shallowest first: "a/b/c" -> {"a", "a/b"}.
local function ancestors(path)
  local list = {}
  local at = 0
  while true do
    at = string.find(path, '/', at + 1, true)
    if not at then return list end
    list[#list + 1] = string.sub(path, 1, at - 1)
  end
end

-- True when a lease on `outer` covers `inner` (equal, or inner lies below outer).
local function covers(outer, inner)
  return outer == inner or (#inner > #outer and string.sub(inner, 1, #outer + 1) == outer .. '/')
end

local function readLease(id)
  local flat = redis.call('HGETALL', P .. 'l:' .. id)
  if #flat == 0 then return nil end
  local lease = { id = id }
  for i = 1, #flat, 2 do lease[flat[i]] = flat[i + 1] end
  lease.resources = cjson.decode(lease.res)
  return lease
end

local function blocksUntil(lease, expiresAt)
  if lease.act then return '+inf' end
  return int(expiresAt + tonumber(lease.ld or '0'))
end

-- (Re)writes the lease's entries in the blocking sets of its paths with one score.
local function indexBlocking(lease, score)
  local id = lease.id
  for _, r in ipairs(lease.resources) do
    local exclusive = r.mode == 'exclusive'
    redis.call('ZADD', P .. (exclusive and 'ax:' or 'as:') .. r.path, score, id)
    for _, a in ipairs(ancestors(r.path)) do
      redis.call('ZADD', P .. 'b:' .. a, score, id)
      if exclusive then redis.call('ZADD', P .. 'bx:' .. a, score, id) end
    end
  end
end

local function unindexBlocking(lease)
  local id = lease.id
  for _, r in ipairs(lease.resources) do
    local exclusive = r.mode == 'exclusive'
    redis.call('ZREM', P .. (exclusive and 'ax:' or 'as:') .. r.path, id)
    for _, a in ipairs(ancestors(r.path)) do
      redis.call('ZREM', P .. 'b:' .. a, id)
      if exclusive then redis.call('ZREM', P .. 'bx:' .. a, id) end
    end
  end
end

local function indexListing(lease)
  local id, token = lease.id, lease.tok
  redis.call('ZADD', P .. 't:', token, id)
  redis.call('ZADD', P .. 'h:' .. lease.holder, token, id)
  for _, r in ipairs(lease.resources) do
    redis.call('ZADD', P .. 't:' .. r.path, token, id)
    for _, a in ipairs(ancestors(r.path)) do redis.call('ZADD', P .. 't:' .. a, token, id) end
  end
end

local function unindexListing(lease)
  local id = lease.id
  redis.call('ZREM', P .. 't:', id)
  redis.call('ZREM', P .. 'h:' .. lease.holder, id)
  for _, r in ipairs(lease.resources) do
    redis.call('ZREM', P .. 't:' .. r.path, id)
    for _, a in ipairs(ancestors(r.path)) do redis.call('ZREM', P .. 't:' .. a, id) end
  end
end

local function setFields(lease, fields)
  local flat = {}
  for name, value in pairs(fields) do
    lease[name] = value
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  redis.call('HSET', P .. 'l:' .. lease.id, unpack(flat))
end

-- The lease stops being anyone's; with an action it becomes an orphan and keeps its
-- resources reserved (its blocking entries stay at +inf) until claimed or resolved.
local function orphan(lease, endState, endedAt)
  setFields(lease, { st = 'orphaned', es = endState, ['end'] = int(endedAt) })
  redis.call('ZREM', P .. 'exp', lease.id)
end

-- Turns a lease into a tombstone kept TOMBSTONE_TTL ms. Its blocking entries are dropped,
-- unless it must keep blocking until `blockedUntil` (lock delay): then they are rescored
-- and the sweeper drops them once that time has passed.
local function entomb(lease, state, endedAt, now, blockedUntil)
  setFields(lease, { st = state, ['end'] = int(endedAt) })
  unindexListing(lease)
  local key = P .. 'l:' .. lease.id
  -- A tombstone is kept an hour and there may be many: drop what it no longer answers with.
  redis.call('HDEL', key, 'ttl', 'acq', 'ren', 'exp', 'hold', 'fp')
  if blockedUntil > now then
    indexBlocking(lease, int(blockedUntil))
    redis.call('ZADD', P .. 'exp', int(blockedUntil), lease.id)
    -- No TTL yet: the sweeper needs this record's paths to drop the blocking entries,
    -- however late it runs; it starts the tombstone's hour when it does (dropTombstoneIndex).
    redis.call('PERSIST', key)
  else
    unindexBlocking(lease)
    redis.call('ZREM', P .. 'exp', lease.id)
    redis.call('PEXPIRE', key, TOMBSTONE_TTL)
  end
  if lease.rid then
    local requestKey = P .. 'rq:' .. #lease.holder .. ':' .. lease.holder .. lease.rid
    -- The requestId may name a newer lease by now; leave that one's key alone.
    if redis.call('GET', requestKey) == lease.id then redis.call('PEXPIRE', requestKey, TOMBSTONE_TTL) end
  end
end

-- The end of an ended lease's lock delay: it stops blocking, and its tombstone's hour starts.
local function dropTombstoneIndex(lease)
  unindexBlocking(lease)
  redis.call('ZREM', P .. 'exp', lease.id)
  redis.call('PEXPIRE', P .. 'l:' .. lease.id, TOMBSTONE_TTL)
end

local function expire(lease, now)
  local expiresAt = tonumber(lease.exp)
  if lease.act then
    orphan(lease, 'expired', expiresAt)
  else
    entomb(lease, 'expired', expiresAt, now, expiresAt + tonumber(lease.ld or '0'))
  end
end

-- Brings a lease up to date with Redis' clock: an active lease whose expiresAt has passed
-- expires now, whoever notices first (an acquire, a renew, a read or the sweeper).
local function settle(lease, now)
  if lease and lease.st == 'active' and tonumber(lease.exp) <= now then expire(lease, now) end
  return lease
end

local function holdsResources(lease)
  return lease.st == 'active' or lease.st == 'orphaned'
end

-- The lease's fields as HGETALL gives them, led by its id (which the hash does not store).
local function flatLease(lease)
  local flat = redis.call('HGETALL', P .. 'l:' .. lease.id)
  table.insert(flat, 1, lease.id)
  table.insert(flat, 1, 'id')
  return flat
end
