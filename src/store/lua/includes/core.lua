--[[
  Shared by every script: key names, Redis' clock, the lease and orphan records, the path
  indexes and the transitions that end a lease. Every script gets
    KEYS[1]  P.."token" (the fencing counter; it names the hash slot every other key shares)
    ARGV[1]  P, the key prefix with its hash tag, e.g. "{lease}:"
    ARGV[2]  how long a tombstone (or a resolved orphan) is kept, ms
    ARGV[3]  deadline: Redis-clock ms after which the caller has given up waiting (0: none)
    ARGV[4]  stream cap: the events and orphans streams keep about this many entries
  Other keys are built here from P: they all carry the same hash tag, so they live in the
  slot of KEYS[1] on Redis Cluster too.

  Keys:
    P.."l:"..id      hash   a lease; after it ends, its tombstone (with a TTL)
    P.."ax:"..path   zset   exclusive leases at path         score: blocks-until (ms)
    P.."as:"..path   zset   shared leases at path            score: blocks-until
    P.."bs:"..path   zset   shared leases strictly below     score: blocks-until
    P.."bx:"..path   zset   exclusive leases strictly below  score: blocks-until
    P.."t:"          zset   every lease that holds resources                     score: token
    P.."h:"..holder  zset   leases of a holder that hold resources               score: token
    P.."exp"         zset   leases to settle, score: when (expiry, or end of lock delay)
    P.."rq:"..n..":"..holder..requestId  string  lease id of an idempotent acquire
    P.."o:"..oid     hash   an orphan (see writeOrphan)
    P.."oseq"        string orphan counter: an orphan's seq orders queues and listings
    P.."oa"          zset   every orphan not yet dropped           score: seq
    P.."os:"..state  zset   orphans in a state                     score: seq
    P.."oq"          zset   pending orphans, any kind (the queue)  score: seq
    P.."ok:"..kind   zset   pending orphans of a kind              score: seq
    P.."oexp"        zset   resolved orphans to drop               score: when
    P.."ev"          stream lifecycle events (capped)
    P.."orphans"     stream each orphaning, once (capped); other systems read it with XREADGROUP
    P.."stats"       hash   cluster-wide counters for /metrics: expired, revoked, claimed,
                            dead_lettered, "orphaned:"..reason and "resolved:"..resolution
  Channels: P.."freed" (JSON paths that stopped being blocked; waiters retry) and
  P.."pending" (a kind that has a newly pending orphan; claimers retry).

  Invariant: a lease blocks a path exactly while its entry in that path's ax/as/bs/bx set
  has a score above Redis' clock. Blocks-until is expiresAt + lockDelayMs for a lease
  without an action and +inf for one with an action (it stays reserved as an orphan when
  it dies), so expiry is exact with no background job: live entries are those scored > now.

  Lease fields: holder, res (see decodeResources), tok, st (active | orphaned | released |
  expired | revoked), es (how an orphaned lease ended), ttl, acq, ren, exp, hold, ld,
  kind and ma (the action's kind and maxAttempts; a lease has an action exactly when it has
  a kind), pay (the action's payload, JSON, absent when null), att (attempt), prog (JSON),
  rid, fp, out, end, oid (its orphan). Times are ms on Redis' clock.

  The scripts never decode a client's JSON (pay, prog): it is stored and handed back as the
  service gave it. What a script decides on has a field of its own, so a payload a Lua JSON
  decoder would refuse cannot make a script fail half-way (Redis does not roll back the
  writes of a script that fails).
]]

local P = ARGV[1]
local TOMBSTONE_TTL = tonumber(ARGV[2])
local DEADLINE = tonumber(ARGV[3])
local STREAM_CAP = ARGV[4]

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

-- Proper ancestors of a path, shallowest first: "a/b/c" -> {"a", "a/b"}. A request's paths
-- are walked by the conflict check and again by the grant; making a long substring is much
-- of a wide request's cost, so each path's list is made once per script. Do not change it.
local ancestorsOf = {}
local function ancestors(path)
  local list = ancestorsOf[path]
  if list then return list end
  list = {}
  local at = 0
  while true do
    at = string.find(path, '/', at + 1, true)
    if not at then break end
    list[#list + 1] = string.sub(path, 1, at - 1)
  end
  ancestorsOf[path] = list
  return list
end

-- The path and its proper ancestors, shallowest first: the nodes whose leases cover it.
local function coveringNodes(path)
  local nodes = {}
  for i, node in ipairs(ancestors(path)) do nodes[i] = node end
  nodes[#nodes + 1] = path
  return nodes
end

-- True when a lease on `outer` covers `inner` (equal, or inner lies below outer).
local function covers(outer, inner)
  return outer == inner or (#inner > #outer and string.sub(inner, 1, #outer + 1) == outer .. '/')
end

local function readHash(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local record = {}
  for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
  return record
end

-- Resources as lease, orphan and ticket hashes store them: "x<path> s<path>" (a mode
-- letter, then the path; paths hold no spaces). Half the size of JSON, so a one-resource
-- lease hash stays under Redis' 64-byte listpack value limit (src/store/resource-codec.ts).
-- (Plain finds, not a pattern: matching %S+ over 64 paths of 512 characters costs 20 times
-- as much, and every reader of a wide lease pays it.)
local SHARED, SPACE, SLASH = string.byte('s'), string.byte(' '), string.byte('/')

local function decodeResources(stored)
  local resources, at = {}, 1
  while at <= #stored do
    local space = string.find(stored, ' ', at, true) or (#stored + 1)
    resources[#resources + 1] = { path = string.sub(stored, at + 1, space - 1), mode = string.byte(stored, at) == SHARED and 'shared' or 'exclusive' }
    at = space + 1
  end
  return resources
end

-- True when one of the stored resources is `path` or lies below it, read off the stored
-- string without decoding it: a path starts right after its mode letter, which starts the
-- string or follows a space, and a match must end at a "/", a space or the end.
local function storedCovered(stored, path)
  local from = 1
  while true do
    local at = string.find(stored, path, from, true)
    if not at then return false end
    local after = string.byte(stored, at + #path)
    if (at == 2 or (at > 2 and string.byte(stored, at - 2) == SPACE)) and (after == nil or after == SPACE or after == SLASH) then return true end
    from = at + 1
  end
end

-- Records written before kind, ma and pay had fields of their own kept the action as one
-- JSON field, act. They are read as if written today; one that does not decode keeps its
-- action (so it still becomes an orphan) with an unknown kind.
local function upgradeLegacyAction(record)
  if not record.act or record.ma then return record end
  local ok, action = pcall(cjson.decode, record.act)
  if not ok or type(action) ~= 'table' then action = {} end
  record.kind = record.kind or (type(action.kind) == 'string' and action.kind) or 'unknown'
  record.ma = int(tonumber(action.maxAttempts) or 1)
  if ok and action.payload ~= nil and action.payload ~= cjson.null then
    local encoded, json = pcall(cjson.encode, action.payload)
    if encoded then record.pay = json end
  end
  return record
end

-- Before a legacy record's act is dropped, its action's kind and maxAttempts get fields.
local function keepLegacyAction(key, record)
  if record.act then redis.call('HSET', key, 'kind', record.kind, 'ma', record.ma) end
end

-- What a record answers with: [name, value, ...] led by its id (which the hash does not
-- store), every field or only `fields`. Listings leave the client's JSON (pay, prog) out
-- unless asked, so a page costs the same whatever the payloads hold.
local SUMMARY_FIELDS = { 'holder', 'res', 'tok', 'st', 'es', 'ttl', 'acq', 'ren', 'exp', 'hold', 'ld', 'kind', 'ma', 'att', 'out', 'end', 'oid', 'act' }
local ORPHAN_SUMMARY_FIELDS = { 'st', 'why', 'kind', 'ma', 'att', 'res', 'lid', 'lh', 'ltok', 'at', 'seq', 'cb', 'cl', 'rsl', 'rat', 'act' }

-- `overrides`: fields to answer with instead of the stored ones (see presentAsOf).
local function flatRecord(key, id, fields, overrides)
  local record
  if fields then
    local values = redis.call('HMGET', key, unpack(fields))
    record = {}
    for i, name in ipairs(fields) do record[name] = values[i] or nil end
  else
    record = readHash(key) or {}
  end
  upgradeLegacyAction(record)
  if fields then record.pay = nil end
  record.act = nil
  for name, value in pairs(overrides or {}) do record[name] = value or nil end -- false: absent
  local flat = { 'id', id }
  for name, value in pairs(record) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  return flat
end

-- Records are read without decoding their resources: a lease may hold 64 paths of 512
-- characters, and making those strings is most of what reading it costs. resourcesOf()
-- decodes them the first time they are needed.
local function readLease(id)
  local lease = readHash(P .. 'l:' .. id)
  if not lease then return nil end
  lease.id = id
  return upgradeLegacyAction(lease)
end

local function resourcesOf(record)
  if not record.resources then
    -- A lease read without its resources (see renew-holder) reads them now.
    record.res = record.res or redis.call('HGET', P .. 'l:' .. record.id, 'res')
    record.resources = decodeResources(record.res)
  end
  return record.resources
end

-- A lease without the client's JSON (pay, prog), for readers that do not answer with it:
-- reading it costs the same whatever the payload holds. settle() reads the rest when it
-- must end the lease.
local function readLeaseSummary(id)
  local values = redis.call('HMGET', P .. 'l:' .. id, unpack(SUMMARY_FIELDS))
  if not values[1] then return nil end
  local lease = { id = id, partial = true }
  for i, name in ipairs(SUMMARY_FIELDS) do lease[name] = values[i] or nil end
  return upgradeLegacyAction(lease)
end

local function blocksUntil(lease, expiresAt)
  if lease.kind then return '+inf' end
  return int(expiresAt + tonumber(lease.ld or '0'))
end

-- The sets a holder of `resources` is entered in: at each path and below each proper
-- ancestor, in the set of its mode. One entry per node, not one per question asked of it:
-- an exclusive request reads both below-sets, a shared one only the exclusive one, so a
-- lease costs one sorted-set entry per ancestor (memory is per entry). Leases and waiting
-- tickets (see includes/tickets) are indexed alike, each family in its own sets.
local LEASE_SETS = { atX = 'ax:', atS = 'as:', belowS = 'bs:', belowX = 'bx:' }
local TICKET_SETS = { atX = 'wx:', atS = 'ws:', belowS = 'wbs:', belowX = 'wbx:' }

local function entryKeys(resources, sets)
  local keys = {}
  for _, r in ipairs(resources) do
    local exclusive = r.mode == 'exclusive'
    keys[#keys + 1] = P .. (exclusive and sets.atX or sets.atS) .. r.path
    for _, a in ipairs(ancestors(r.path)) do
      keys[#keys + 1] = P .. (exclusive and sets.belowX or sets.belowS) .. a
    end
  end
  return keys
end

-- (Re)writes the lease's entries in the blocking sets of its paths with one score.
local function indexBlocking(lease, score)
  for _, key in ipairs(entryKeys(resourcesOf(lease), LEASE_SETS)) do redis.call('ZADD', key, score, lease.id) end
end

local function unindexBlocking(lease)
  for _, key in ipairs(entryKeys(resourcesOf(lease), LEASE_SETS)) do redis.call('ZREM', key, lease.id) end
end

-- Listing by prefix needs no index of its own: the blocking sets of the prefix path already
-- hold every lease at or below it (see list-1.lua), and an index per ancestor would cost a
-- sorted-set entry per ancestor per lease.
local function indexListing(lease)
  redis.call('ZADD', P .. 't:', lease.tok, lease.id)
  redis.call('ZADD', P .. 'h:' .. lease.holder, lease.tok, lease.id)
end

local function unindexListing(lease)
  redis.call('ZREM', P .. 't:', lease.id)
  redis.call('ZREM', P .. 'h:' .. lease.holder, lease.id)
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

-- A JSON array of the paths. Written by hand because cjson escapes "/" as "\/"; paths are
-- validated to hold only letters, digits and ._:@-/ so nothing else needs escaping.
local function pathListJson(paths)
  if #paths == 0 then return '[]' end
  return '["' .. table.concat(paths, '","') .. '"]'
end

-- The same from resources as stored ("xa/b sc/d" -> ["a/b","c/d"]): one pass over the
-- string, without making a string per path.
local function pathsJson(stored)
  return '["' .. (string.gsub(string.sub(stored, 2), ' [xs]', '","')) .. '"]'
end

-- Appends a lifecycle event {type, at, leaseId, holder, paths, fencingToken, orphanId?} to
-- the capped events stream; the stream entry's id is when it was recorded, `at` when it
-- happened (an expiry happens at expiresAt, whoever notices it later).
-- Counts a transition in P.."stats". Prometheus reads these counters at scrape time, so
-- they are right whichever replica (or script) made the transition.
local function count(name)
  redis.call('HINCRBY', P .. 'stats', name, 1)
end

-- The event types /metrics reports from P.."stats". Grants, renewals and releases are
-- counted by the replica that answers them, so heartbeats write nothing more here.
local COUNTED_EVENTS = { expired = true, revoked = true, claimed = true, dead_lettered = true }

local function emit(kind, at, lease, orphanId)
  local entry = { 'type', kind, 'at', int(at), 'leaseId', lease.id, 'holder', lease.holder,
    'paths', pathsJson(lease.res), 'fencingToken', lease.tok }
  if orphanId then
    entry[#entry + 1] = 'orphanId'
    entry[#entry + 1] = orphanId
  end
  redis.call('XADD', P .. 'ev', 'MAXLEN', '~', STREAM_CAP, '*', unpack(entry))
  if COUNTED_EVENTS[kind] then count(kind) end
end

-- Tells waiting acquires (on every replica) that these paths may have stopped being blocked.
local function announceFreed(stored)
  redis.call('PUBLISH', P .. 'freed', pathsJson(stored))
end

-- The attempt a lease with an action runs (the first when the lease was acquired directly).
local function attemptOf(lease)
  return tonumber(lease.att or '1')
end

--[[
  Orphans. Fields of P.."o:"..oid: st (pending | claimed | dead_letter | resolved),
  why (expired | abandoned | revoked), kind, ma, pay (as a lease holds them),
  att (the attempt that was running when it was orphaned), prog (JSON, the last progress),
  res (resources, see decodeResources), lid, lh, ltok (the last lease, its holder and token), at (orphanedAt),
  seq, cb and cl (claimed by, and the claim's lease), rsl and rat (resolution, resolvedAt).
  While an orphan is pending, claimed or dead_letter, its resources are held by a lease:
  the orphaned lease (pending, dead_letter) or the claim's lease (claimed).
]]
local REASONS = { expired = 'expired', released = 'abandoned', revoked = 'revoked' }

local function orphanKey(oid)
  return P .. 'o:' .. oid
end

local function flatOrphan(oid, withoutJson, overrides)
  return flatRecord(orphanKey(oid), oid, withoutJson and ORPHAN_SUMMARY_FIELDS, overrides)
end

-- Keeps the per-state index and the claim queues in step with an orphan's state.
local function moveOrphan(oid, seq, kind, from, to)
  if from then redis.call('ZREM', P .. 'os:' .. from, oid) end
  redis.call('ZADD', P .. 'os:' .. to, seq, oid)
  if from == 'pending' then
    redis.call('ZREM', P .. 'oq', oid)
    redis.call('ZREM', P .. 'ok:' .. kind, oid)
  end
  if to == 'pending' then
    redis.call('ZADD', P .. 'oq', seq, oid)
    redis.call('ZADD', P .. 'ok:' .. kind, seq, oid)
  end
end

-- Publishes the action of a lease that just became orphaned (its holder died, gave up or
-- was revoked): a new orphan, or the orphan it was claimed from, back with this attempt.
-- After maxAttempts attempts it is a dead letter. Each orphaning is appended once to the
-- orphans stream, in the same script as the transition, so it is published exactly once.
-- An orphan's id is derived from the first lease it came from (128 random bits, hashed):
-- Lua in Redis has no randomness of its own.
local function orphanIdOf(lease)
  return lease.oid or string.sub(redis.sha1hex('orphan:' .. lease.id), 1, 32)
end

local function writeOrphan(lease, endState, at)
  local oid = orphanIdOf(lease)
  local key = orphanKey(oid)
  local kind = lease.kind
  local attempt = attemptOf(lease)
  local maxAttempts = tonumber(lease.ma) or 1
  local state = attempt >= maxAttempts and 'dead_letter' or 'pending'
  local known = redis.call('HMGET', key, 'st', 'seq')
  local previous = known[1]
  local seq = previous and known[2] or redis.call('INCR', P .. 'oseq')
  redis.call('HSET', key, 'st', state, 'why', REASONS[endState], 'kind', kind, 'ma', int(maxAttempts),
    'att', int(attempt), 'res', lease.res, 'lid', lease.id, 'lh', lease.holder, 'ltok', lease.tok,
    'at', int(at), 'seq', seq)
  for _, name in ipairs({ 'pay', 'prog' }) do
    if lease[name] then redis.call('HSET', key, name, lease[name]) end
  end
  redis.call('HDEL', key, 'cb', 'cl', 'act')
  if not previous then redis.call('ZADD', P .. 'oa', seq, oid) end
  moveOrphan(oid, seq, kind, previous, state)
  if not lease.oid then setFields(lease, { oid = oid }) end
  redis.call('XADD', P .. 'orphans', 'MAXLEN', '~', STREAM_CAP, '*', 'orphanId', oid, 'state', state,
    'reason', REASONS[endState], 'kind', kind, 'attempt', int(attempt),
    'maxAttempts', int(maxAttempts), 'leaseId', lease.id, 'holder', lease.holder,
    'fencingToken', lease.tok, 'paths', pathsJson(lease.res), 'orphanedAt', int(at))
  emit(state == 'pending' and 'orphaned' or 'dead_lettered', at, lease, oid)
  count('orphaned:' .. REASONS[endState])
  if state == 'pending' then redis.call('PUBLISH', P .. 'pending', kind) end
  return oid
end

-- An orphan's story ends: its work completed or failed under a claim, or an operator
-- discarded it. It is kept TOMBSTONE_TTL ms for operators, then the sweeper drops it.
local function resolveOrphan(oid, resolution, at, lease)
  local key = orphanKey(oid)
  local f = redis.call('HMGET', key, 'st', 'seq', 'kind', 'act', 'ma')
  if not f[1] or f[1] == 'resolved' then return end
  keepLegacyAction(key, upgradeLegacyAction({ kind = f[3] or nil, act = f[4] or nil, ma = f[5] or nil }))
  redis.call('HSET', key, 'st', 'resolved', 'rsl', resolution, 'rat', int(at))
  -- Kept an hour for operators, like a tombstone, and like one without the client's JSON.
  redis.call('HDEL', key, 'pay', 'prog', 'act')
  moveOrphan(oid, f[2], f[3], f[1], 'resolved')
  redis.call('ZADD', P .. 'oexp', int(at + TOMBSTONE_TTL), oid)
  emit('resolved', at, lease, oid)
  count('resolved:' .. resolution)
end

-- Turns a lease into a tombstone kept TOMBSTONE_TTL ms. Its blocking entries are dropped,
-- unless it must keep blocking until `blockedUntil` (lock delay): then they are rescored
-- and the sweeper drops them once that time has passed. Returns true when it freed the
-- lease's resources (the caller announces it, unless it hands them on in the same script).
local function entomb(lease, state, endedAt, now, blockedUntil)
  setFields(lease, { st = state, ['end'] = int(endedAt) })
  unindexListing(lease)
  local key = P .. 'l:' .. lease.id
  -- A tombstone is kept an hour and there may be many: drop what it no longer answers with,
  -- the client's JSON included (payload and progress, up to 80 KiB, live on in the orphan
  -- when the action was left unfinished).
  keepLegacyAction(key, lease)
  redis.call('HDEL', key, 'ttl', 'acq', 'ren', 'exp', 'hold', 'fp', 'pay', 'prog', 'act')
  lease.pay, lease.prog = nil, nil
  if lease.rid then
    local requestKey = P .. 'rq:' .. #lease.holder .. ':' .. lease.holder .. lease.rid
    -- The requestId may name a newer lease by now; leave that one's key alone.
    if redis.call('GET', requestKey) == lease.id then redis.call('PEXPIRE', requestKey, TOMBSTONE_TTL) end
  end
  if blockedUntil > now then
    indexBlocking(lease, int(blockedUntil))
    redis.call('ZADD', P .. 'exp', int(blockedUntil), lease.id)
    -- No TTL yet: the sweeper needs this record's paths to drop the blocking entries,
    -- however late it runs; it starts the tombstone's hour when it does (dropTombstoneIndex).
    redis.call('PERSIST', key)
    return false
  end
  unindexBlocking(lease)
  redis.call('ZREM', P .. 'exp', lease.id)
  redis.call('PEXPIRE', key, TOMBSTONE_TTL)
  return true
end

-- The end of an ended lease's lock delay: it stops blocking, and its tombstone's hour starts.
local function dropTombstoneIndex(lease)
  unindexBlocking(lease)
  redis.call('ZREM', P .. 'exp', lease.id)
  redis.call('PEXPIRE', P .. 'l:' .. lease.id, TOMBSTONE_TTL)
  announceFreed(lease.res)
end

-- Ends an active lease as `state` (expired | released | revoked) at `endedAt`. A lease
-- with an action that did not finish (expired, revoked, released "abandoned") becomes an
-- orphan and keeps its resources reserved (its blocking entries stay at +inf). Any other
-- lease becomes a tombstone; one without an action that expired or was revoked keeps
-- blocking for its lockDelayMs. A claim's lease that completed or failed resolves its orphan.
local function endLease(lease, state, endedAt, now)
  if lease.kind and (state ~= 'released' or lease.out == 'abandoned') then
    setFields(lease, { st = 'orphaned', es = state, ['end'] = int(endedAt) })
    redis.call('ZREM', P .. 'exp', lease.id)
    emit(state, endedAt, lease, orphanIdOf(lease))
    writeOrphan(lease, state, endedAt)
    -- The orphan holds the payload and progress now (a claim takes them from there); the
    -- orphaned lease keeps only what answers for it, like a tombstone.
    local key = P .. 'l:' .. lease.id
    keepLegacyAction(key, lease)
    redis.call('HDEL', key, 'pay', 'prog', 'act')
    lease.pay, lease.prog = nil, nil
    return
  end
  local blockedUntil = state == 'released' and 0 or endedAt + tonumber(lease.ld or '0')
  if entomb(lease, state, endedAt, now, blockedUntil) then announceFreed(lease.res) end
  emit(state, endedAt, lease, lease.oid)
  if lease.oid then resolveOrphan(lease.oid, lease.out or 'completed', now, lease) end
end

-- Brings a lease up to date with Redis' clock: an active lease whose expiresAt has passed
-- expires now, whoever notices first (an acquire, a renew, a read or the sweeper).
local function settle(lease, now)
  if lease and lease.st == 'active' and tonumber(lease.exp) <= now then
    if lease.partial then lease = readLease(lease.id) end
    endLease(lease, 'expired', tonumber(lease.exp), now)
  end
  return lease
end

-- Settles up to `batch` leases whose time has come, oldest first: active leases past
-- expiresAt expire, ended leases whose lock delay is over leave the blocking indexes.
-- Returns how many it looked at.
-- How many index entries a lease has (one per resource and per ancestor of it): the work
-- of writing, moving or dropping them, which dwarfs the rest of a transition.
local function indexWeight(lease)
  -- Each resource's depth is its slashes plus one; the stored string has one space between two.
  local stored = lease.res or redis.call('HGET', P .. 'l:' .. lease.id, 'res')
  local weight, at = 1, 0
  while true do
    at = string.find(stored, '[ /]', at + 1)
    if not at then return weight end
    weight = weight + 1
  end
end

-- Stops once the leases it settled had `budget` index entries between them (at least one
-- lease is settled), so a batch of wide leases costs no more than one of narrow ones.
-- Returns how many it looked at, and what is left of the budget.
local function settleDue(batch, now, budget)
  local due = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, batch)
  local looked = 0
  for _, id in ipairs(due) do
    if budget <= 0 then break end
    looked = looked + 1
    local lease = readLeaseSummary(id)
    if not lease then
      redis.call('ZREM', P .. 'exp', id)
    elseif lease.st == 'active' then
      lease = settle(lease, now)
      if lease.st == 'active' then redis.call('ZADD', P .. 'exp', lease.exp, id) end
    elseif lease.st == 'expired' or lease.st == 'revoked' then
      dropTombstoneIndex(lease)
    else
      redis.call('ZREM', P .. 'exp', id)
    end
    if lease then budget = budget - indexWeight(lease) end
  end
  return looked, budget
end

-- Reads an orphan by Redis' clock: a claimed orphan whose claim's lease has expired is
-- back in the queue (or a dead letter) now, whether or not the reaper has run.
local function readOrphan(oid, now)
  local orphan = readHash(orphanKey(oid))
  if orphan and orphan.st == 'claimed' and orphan.cl then
    local lease = readLeaseSummary(orphan.cl)
    if lease and lease.st == 'active' and settle(lease, now).st ~= 'active' then orphan = readHash(orphanKey(oid)) end
  end
  return orphan
end

-- An orphan by Redis' clock, for a reader of many, without writing (as presentAsOf): a
-- claimed orphan whose claim's lease has expired is orphaned anew by that expiry, pending
-- again or a dead letter once that claim was its last attempt, as writeOrphan will record
-- it. Returns the fields to answer with instead of the stored ones, or nil.
local function orphanAsOf(oid, now)
  local f = redis.call('HMGET', orphanKey(oid), 'st', 'cl', 'cb', 'att', 'ma')
  if f[1] ~= 'claimed' or not f[2] then return nil end
  local claim = redis.call('HMGET', P .. 'l:' .. f[2], 'st', 'exp', 'tok')
  if claim[1] ~= 'active' or tonumber(claim[2]) > now then return nil end
  local attempt = tonumber(f[4]) + 1
  return {
    st = attempt >= (tonumber(f[5]) or 1) and 'dead_letter' or 'pending', why = 'expired', att = int(attempt),
    lid = f[2], lh = f[3], ltok = claim[3], at = claim[2], cb = false, cl = false,
  }
end

local function holdsResources(lease)
  return lease.st == 'active' or lease.st == 'orphaned'
end

-- What a lease is by Redis' clock, for a reader, without writing anything: an active lease
-- past its expiresAt has ended (without an action it holds nothing any more; with one it is
-- orphaned, and whoever settles it, a writer or the reaper, publishes its orphan). Readers
-- of many leases present them so rather than settle them, so that a page of leases that
-- expired unnoticed costs no more than a page of live ones: settling one with an action
-- writes its orphan, payload and all. A lease presented so has `unsettled` set.
local function presentAsOf(lease, now)
  if lease and lease.st == 'active' and tonumber(lease.exp) <= now then
    lease.st = lease.kind and 'orphaned' or 'expired'
    lease.es = 'expired'
    lease['end'] = lease.exp
    lease.unsettled = true
  end
  return lease
end

local function flatLease(lease, withoutJson)
  if withoutJson and lease.partial then
    -- Read by readLeaseSummary already: answer from what was read.
    local flat = { 'id', lease.id }
    for _, name in ipairs(SUMMARY_FIELDS) do
      if lease[name] and name ~= 'act' then
        flat[#flat + 1] = name
        flat[#flat + 1] = lease[name]
      end
    end
    return flat
  end
  local overrides = lease.unsettled and { st = lease.st, es = lease.es, ['end'] = lease['end'] } or nil
  return flatRecord(P .. 'l:' .. lease.id, lease.id, withoutJson and SUMMARY_FIELDS, overrides)
end
