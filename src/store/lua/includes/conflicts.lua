--[[
  Finding what blocks a request, in O(depth) sorted-set reads per resource.
  For a request on path p with mode m the blocking leases are:
    at p or an ancestor a:  exclusive ones (ax:a); when m is exclusive, shared ones too (as:a)
    strictly below p:       exclusive ones; when m is exclusive, shared ones too: those of
                            bx:p (bs:p) when p keeps below-sets, else the deep:x (deep:s)
                            members below p (see includes/indexes)
  Only entries scored above now count (a deep member by its lease's at-set entry), so
  expired leases never block anyone. Waiting tickets (includes/tickets) are found the same
  way in their own sets.
  Cost, for a request of R resources of depth D, per resource: a deep path first asks at
  most 2 * SHALLOW + 2 keys whether anything lies in its subtree at all (see subtreeKeys),
  and most often that is all; else one EXISTS of at most 2D + 2 keys and, only where one
  exists, EXISTS of halves of them to tell which (fewer calls than keys; about log2 of them
  when one exists), and one range read of at most `limit` entries per set that exists (a
  set shared by several of the request's paths is read once). At most DEEP_SCAN deep
  members in all, each with one ZSCORE; one HMGET of six fields per distinct blocker (never
  its payload). Conflicts are appended to `out` as flattened {path, leaseId, holder,
  mode, state} tuples, one per blocking path and blocker, at most `limit`; the search stops
  once `out` is full.
  `wake.at`, when given, is lowered to the earliest time a blocker seen stops blocking by
  itself (an expiry, the end of a lock delay, a ticket lapsing): a waiter looks again then.
  Blockers not seen need no such time: the reaper publishes the paths of every lease it
  settles, which wakes the waiter, and `wake.at` only covers a reaper that is late.
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"
--- @include "includes/indexes"
--- @include "includes/tickets"

-- Deep members one request reads at most. Members of leases that stopped blocking are
-- dropped as they are met (see includes/indexes), so only a crowd of leases that expired
-- together below one path, and that the reaper has not settled yet, can use it up.
local DEEP_SCAN = 256

-- The at-sets and below-sets to read for (path, mode): {key, cut (the node they concern is
-- path's first `cut` characters), mode of its entries, below?}.
local function blockingSets(path, mode, sets)
  local found = {}
  coveringSets(path, sets, mode == 'exclusive', found)
  if keepsBelowSets(path) then
    local name = pathKey(path)
    found[#found + 1] = { key = P .. sets.belowX .. name, cut = #path, mode = 'exclusive', below = true }
    if mode == 'exclusive' then
      found[#found + 1] = { key = P .. sets.belowS .. name, cut = #path, mode = 'shared', below = true }
    end
  end
  return found
end

-- Of `found` (blockingSets), those whose set exists, in the same order: one EXISTS of all,
-- then, while some exist and some do not, EXISTS of each half. A path blocked at one node
-- so costs about log2(#found) small calls where reading every set would cost #found range
-- reads (32 for a path of 16 segments).
local function existingSets(found)
  local keys = {}
  for i, set in ipairs(found) do keys[i] = set.key end
  local existing = {}
  local function split(from, to, count)
    if count == 0 then return end
    if count == to - from + 1 then
      for i = from, to do existing[#existing + 1] = found[i] end
      return
    end
    local middle = math.floor((from + to) / 2)
    local left = redis.call('EXISTS', unpack(keys, from, middle))
    split(from, middle, left)
    split(middle + 1, to, count - left)
  end
  split(1, #keys, redis.call('EXISTS', unpack(keys)))
  return existing
end

-- Just the keys of blockingSets(path, mode, sets).
local function blockingKeys(path, mode, sets)
  local keys = coveringSets(path, sets, mode == 'exclusive')
  if keepsBelowSets(path) then
    local name = pathKey(path)
    keys[#keys + 1] = P .. sets.belowX .. name
    if mode == 'exclusive' then keys[#keys + 1] = P .. sets.belowS .. name end
  end
  return keys
end

-- For a deep path (one that keeps no below-sets): the keys of its shallow ancestors' at-sets
-- and of the deepest one's below-sets, for (path, mode). Whatever could block the path lies
-- at one of those ancestors or strictly below the deepest (its deeper ancestors, the path
-- itself, and what lies below it), so when none of these sets exists nothing blocks it: one
-- EXISTS of at most 2 * SHALLOW + 2 keys, where the full walk asks 2D keys (a key of a long
-- node costs a substring and two concatenations to make) and reads two deep ranges. A lease
-- on 64 such paths in a fresh part of the tree spent most of its conflict check on those.
local function subtreeKeys(path, mode, sets)
  local exclusive = mode == 'exclusive'
  local keys, at, deepest = {}, 0, nil
  for _ = 1, SHALLOW do
    at = string.find(path, '/', at + 1, true)
    deepest = ancestorKey(path, at - 1)
    keys[#keys + 1] = P .. sets.atX .. deepest
    if exclusive then keys[#keys + 1] = P .. sets.atS .. deepest end
  end
  keys[#keys + 1] = P .. sets.belowX .. deepest
  if exclusive then keys[#keys + 1] = P .. sets.belowS .. deepest end
  return keys
end

-- The deep sets to read for (path, mode): {key, mode of its members}; none for a path that
-- keeps below-sets.
local function deepSets(path, mode, sets)
  if keepsBelowSets(path) then return {} end
  local found = { { key = P .. sets.deepX, mode = 'exclusive' } }
  if mode == 'exclusive' then found[2] = { key = P .. sets.deepS, mode = 'shared' } end
  return found
end

-- The state a blocking lease shows in a conflict: active, orphaned, or lock_delay (an
-- expired or revoked lease without an action, still blocking for its lockDelayMs).
local function blockingState(state)
  if state == 'active' or state == 'orphaned' then return state end
  return 'lock_delay'
end

-- Walks the request's blocking sets, each once. `range(key)` reads a set's live
-- entries as {id, score, ...}; `deepScore(path, mode, id, key, member)` gives the score of a
-- deep member that blocks, or nil; `describe(id)` gives a blocker's {holder, state, res} or
-- nil (then it does not block after all). Appends conflict tuples to `out`.
-- A blocker described with `wake = true` is scored by when it stops blocking; tickets are
-- scored by arrival, so their range() lowers `wake` with their own lapse times instead.
-- `mayBlock(r)`, when given, tells whether anything in the sets may block resource r (by
-- default: whether any of them exists). Returns true when DEEP_SCAN deep members were read
-- and more were left unread (then no conflict found is no answer).
local function findBlockers(request, sets, limit, out, wake, range, deepScore, describe, mayBlock)
  local read, reported, blockers = {}, {}, {}
  local full, scanned = false, 0
  local function report(path, id, blocker, mode)
    local tag = id .. ' ' .. path
    if reported[tag] then return end
    reported[tag] = true
    if #out >= limit * 5 then
      full = true
      return
    end
    for _, v in ipairs({ path, id, blocker.holder, mode, blocker.state }) do out[#out + 1] = v end
  end
  local function blocker(id)
    if blockers[id] == nil then blockers[id] = describe(id) or false end
    return blockers[id]
  end
  for _, r in ipairs(request) do
    -- Almost always nothing blocks: a deep path whose subtree holds nothing (see
    -- subtreeKeys) is done with one EXISTS; else one EXISTS over all of a path's sets (an
    -- empty sorted set does not exist) tells whether any may hold a blocker, and only those
    -- that exist are read (see existingSets).
    local unread = {}
    local deepToo = true
    if mayBlock then
      if mayBlock(r) then unread = existingSets(blockingSets(r.path, r.mode, sets)) end
    elseif not keepsBelowSets(r.path) and redis.call('EXISTS', unpack(subtreeKeys(r.path, r.mode, sets))) == 0 then
      deepToo = false
    else
      unread = existingSets(blockingSets(r.path, r.mode, sets))
    end
    for _, set in ipairs(unread) do
      if full then return false end
      if not read[set.key] then
        read[set.key] = true
        local entries = range(set.key)
        for i = 1, #entries, 2 do
          if full then return false end
          local id = entries[i]
          local b = blocker(id)
          if b and wake and b.wake then wake.at = math.min(wake.at, tonumber(entries[i + 1])) end
          if b and not set.below then
            report(set.cut == #r.path and r.path or string.sub(r.path, 1, set.cut), id, b, set.mode)
          elseif b then
            for _, held in ipairs(resourcesOf(b)) do
              if held.mode == set.mode and held.path ~= r.path and covers(r.path, held.path) then report(held.path, id, b, set.mode) end
            end
          end
        end
      end
    end
    -- Deep members name their path: each blocking one is a conflict as it stands. Read a
    -- page at a time after the last member read (a member may be dropped on the way).
    local from, to
    for _, set in ipairs(deepToo and deepSets(r.path, r.mode, sets) or {}) do
      if not from then from, to = deepRange(r.path) end
      local start = from
      while true do
        if full then return false end
        if scanned >= DEEP_SCAN then
          -- Undecided only if some are left unread.
          if #redis.call('ZRANGEBYLEX', set.key, start, to, 'LIMIT', 0, 1) > 0 then return true end
          break
        end
        local want = math.min(limit, DEEP_SCAN - scanned)
        local members = redis.call('ZRANGEBYLEX', set.key, start, to, 'LIMIT', 0, want)
        scanned = scanned + #members
        for _, member in ipairs(members) do
          local held, id = splitDeepMember(member)
          local score = deepScore(held, set.mode, id, set.key, member)
          local b = score and blocker(id)
          if b and wake and b.wake then wake.at = math.min(wake.at, score) end
          if b then report(held, id, b, set.mode) end
          if full then return false end
        end
        if #members < want then break end
        start = '(' .. members[#members]
      end
    end
  end
  return false
end

-- Leases that block `request` (a list of {path, mode}). Returns true when it could not tell
-- whether some resource is blocked (see findBlockers): no conflict found is then no answer.
-- Drops the deep members of leases that no longer block.
local function collectConflicts(request, now, limit, out, wake)
  return findBlockers(request, LEASE_SETS, limit, out, wake, function(key)
    return redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  end, function(path, mode, id, key, member)
    local score = tonumber(redis.call('ZSCORE', P .. (mode == 'exclusive' and LEASE_SETS.atX or LEASE_SETS.atS) .. nodeKey(path), id))
    if score and score > now then return score end
    redis.call('ZREM', key, member)
    return nil
  end, function(id)
    local f = redis.call('HMGET', P .. 'l:' .. id, 'st', 'exp', 'holder', 'res', 'kind', 'act')
    local state = f[1]
    if not state then return nil end
    -- Its entry is live, so an expired one still blocks: as an orphan, or for its lock delay.
    -- Told apart without settling it (which, with an action, writes its orphan): the reaper
    -- does that, and a conflict check costs the same whatever expired before it.
    if state == 'active' and tonumber(f[2]) <= now then state = (f[5] or f[6]) and 'orphaned' or 'lock_delay' end
    if state == 'released' then return nil end
    return { holder = f[3], state = blockingState(state), res = f[4], wake = true }
  end)
end

-- Tickets that block `request`: those that arrived before `beforeSeq` (nil: all). Lapsed
-- tickets met on the way (their replica died) are dropped and not reported. Of the deep
-- members below a path, DEEP_SCAN are looked at; past them (a crowd of tickets below one
-- deep path, later ones among them) it returns true, undecided, as collectConflicts does,
-- so that no request passes a ticket queued before it.
local function collectTicketConflicts(request, beforeSeq, now, limit, out, wake)
  local upTo = beforeSeq and ('(' .. beforeSeq) or '+inf'
  local tickets = {}
  -- A ticket's record, or false when it is gone or lapsed (then it is dropped).
  local function ticketOf(id)
    if tickets[id] == nil then
      local ticket = readHash(ticketKey(id))
      if not ticket or tonumber(ticket.dl) <= now then
        dropTicket(id, ticket, true)
        ticket = false
      elseif wake then
        wake.at = math.min(wake.at, tonumber(ticket.dl))
      end
      tickets[id] = ticket
    end
    return tickets[id]
  end
  return findBlockers(request, TICKET_SETS, limit, out, nil, function(key)
    -- Read again after dropping the entries of tickets gone or lapsed, so they cannot hide
    -- live ones behind them (each pass drops at least one; the sweeper drops them too).
    local entries, again = {}, true
    while again do
      entries, again = {}, false
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', upTo, 'LIMIT', 0, limit)) do
        local ticket = ticketOf(id)
        if ticket then
          entries[#entries + 1] = id
          entries[#entries + 1] = ticket.seq
        else
          redis.call('ZREM', key, id)
          again = true
        end
      end
    end
    return entries
  end, function(_, _, id, key, member)
    local ticket = ticketOf(id)
    if not ticket then
      redis.call('ZREM', key, member)
      return nil
    end
    if beforeSeq and tonumber(ticket.seq) >= tonumber(beforeSeq) then return nil end
    return tonumber(ticket.seq)
  end, function(id)
    local ticket = tickets[id]
    return { holder = ticket.holder, state = 'waiting', res = ticket.res }
  end, beforeSeq and function(r)
    -- A request that waits finds its own ticket in the at-set of each of its paths, which
    -- would send every path down the slow walk (a maximal one's took 10 ms): those two sets
    -- are asked for earlier tickets only, the others whether they exist at all.
    local name = pathKey(r.path)
    local ownX, ownS = P .. TICKET_SETS.atX .. name, P .. TICKET_SETS.atS .. name
    local others = {}
    for _, key in ipairs(blockingKeys(r.path, r.mode, TICKET_SETS)) do
      if key ~= ownX and key ~= ownS then others[#others + 1] = key end
    end
    if #others > 0 and redis.call('EXISTS', unpack(others)) > 0 then return true end
    if redis.call('ZCOUNT', ownX, '-inf', upTo) > 0 then return true end
    return r.mode == 'exclusive' and redis.call('ZCOUNT', ownS, '-inf', upTo) > 0
  end)
end
