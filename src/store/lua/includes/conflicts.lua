--[[
  Finding what blocks a request, in O(depth) sorted-set reads per resource.
  For a request on path p with mode m the blocking leases are:
    at p or an ancestor a:  exclusive ones (ax:a); when m is exclusive, shared ones too (as:a)
    strictly below p:       exclusive ones (bx:p); when m is exclusive, shared ones too (bs:p)
  Only entries scored above now count, so expired leases never block anyone, and every live
  entry of those sets is a conflict. Waiting tickets (includes/tickets) are found the same
  way in their own sets.
  Cost, for a request of R resources of depth D: at most R * (2D + 2) range reads of at most
  `limit` entries (a set shared by several of the request's paths is read once), one HMGET
  of six fields per distinct blocker (never its payload; nothing is written), and for an entry of a below-set,
  one pass over that blocker's resources. A set entry names the blocker's path itself (the
  set's node) or, below, the node its path lies under, so no pair of paths is compared.
  Conflicts are appended to `out` as flattened {path, leaseId, holder, mode, state} tuples,
  one per blocking path and blocker, at most `limit`; the search stops once `out` is full.
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

-- The sets to read for (path, mode): {key, node, mode of its entries, below?}.
local function blockingSets(path, mode, sets)
  local found = {}
  coveringSets(path, sets, mode == 'exclusive', found)
  found[#found + 1] = { key = P .. sets.belowX .. path, node = path, mode = 'exclusive', below = true }
  if mode == 'exclusive' then
    found[#found + 1] = { key = P .. sets.belowS .. path, node = path, mode = 'shared', below = true }
  end
  return found
end

-- Just the keys of blockingSets(path, mode, sets).
local function blockingKeys(path, mode, sets)
  local keys = coveringSets(path, sets, mode == 'exclusive')
  keys[#keys + 1] = P .. sets.belowX .. path
  if mode == 'exclusive' then keys[#keys + 1] = P .. sets.belowS .. path end
  return keys
end

-- The state a blocking lease shows in a conflict: active, orphaned, or lock_delay (an
-- expired or revoked lease without an action, still blocking for its lockDelayMs).
local function blockingState(state)
  if state == 'active' or state == 'orphaned' then return state end
  return 'lock_delay'
end

-- Walks the request's blocking sets, each once. `range(key)` reads a set's live
-- entries as {id, score, ...}; `describe(id)` gives a blocker's {holder, state, res} or nil
-- (then it does not block after all). Appends conflict tuples to `out`.
-- A blocker described with `wake = true` is scored by when it stops blocking; tickets are
-- scored by arrival, so their range() lowers `wake` with their own lapse times instead.
local function findBlockers(request, sets, limit, out, wake, range, describe)
  local read, reported, blockers = {}, {}, {}
  local full = false
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
  for _, r in ipairs(request) do
    -- Almost always nothing blocks: one EXISTS over all of a path's sets (an empty sorted
    -- set does not exist) spares reading them one by one.
    local unread = {}
    if redis.call('EXISTS', unpack(blockingKeys(r.path, r.mode, sets))) > 0 then unread = blockingSets(r.path, r.mode, sets) end
    for _, set in ipairs(unread) do
      if full then return end
      if not read[set.key] then
        read[set.key] = true
        local entries = range(set.key)
        for i = 1, #entries, 2 do
          if full then return end
          local id = entries[i]
          if blockers[id] == nil then blockers[id] = describe(id) or false end
          local blocker = blockers[id]
          if blocker and wake and blocker.wake then wake.at = math.min(wake.at, tonumber(entries[i + 1])) end
          if blocker and not set.below then
            report(set.node, id, blocker, set.mode)
          elseif blocker then
            for _, held in ipairs(resourcesOf(blocker)) do
              if held.mode == set.mode and held.path ~= set.node and covers(set.node, held.path) then report(held.path, id, blocker, set.mode) end
            end
          end
        end
      end
    end
  end
end

-- Leases that block `request` (a list of {path, mode}).
local function collectConflicts(request, now, limit, out, wake)
  findBlockers(request, LEASE_SETS, limit, out, wake, function(key)
    return redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
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
-- tickets met on the way (their replica died) are dropped and not reported.
local function collectTicketConflicts(request, beforeSeq, now, limit, out, wake)
  local upTo = beforeSeq and ('(' .. beforeSeq) or '+inf'
  local tickets = {}
  findBlockers(request, TICKET_SETS, limit, out, nil, function(key)
    -- Read again after dropping lapsed tickets, so they cannot hide live ones behind them
    -- (each pass drops at least one, and the sweeper drops them too).
    local entries, again = {}, true
    while again do
      entries, again = {}, false
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', upTo, 'LIMIT', 0, limit)) do
        if tickets[id] == nil then
          local ticket = readHash(ticketKey(id))
          if not ticket or tonumber(ticket.dl) <= now then
            if not ticket then redis.call('ZREM', key, id) end
            dropTicket(id, ticket, true)
            ticket, again = false, true
          elseif wake then
            wake.at = math.min(wake.at, tonumber(ticket.dl))
          end
          tickets[id] = ticket
        end
        if tickets[id] then
          entries[#entries + 1] = id
          entries[#entries + 1] = tickets[id].seq
        end
      end
    end
    return entries
  end, function(id)
    local ticket = tickets[id]
    return { holder = ticket.holder, state = 'waiting', res = ticket.res }
  end)
end
