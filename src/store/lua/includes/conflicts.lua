--[[
  Finding what blocks a request, in O(depth) sorted-set reads per resource.
  For a request on path p with mode m the blocking leases are:
    at p or an ancestor a:  exclusive ones (ax:a); when m is exclusive, shared ones too (as:a)
    strictly below p:       exclusive ones (bx:p); when m is exclusive, shared ones too (bs:p)
  Only entries scored above now count, so expired leases never block anyone. Waiting
  tickets (includes/tickets) are found the same way in their own sets.
  Conflicts are appended to `out` as flattened {path, leaseId, holder, mode, state} tuples;
  `wake.at` is lowered to the earliest time one of them stops blocking by itself (an expiry,
  the end of a lock delay, a ticket lapsing), so a waiter knows when to look again.
]]
local function blockingKeys(path, mode, sets)
  local keys = {}
  local nodes = ancestors(path)
  nodes[#nodes + 1] = path
  for _, node in ipairs(nodes) do
    keys[#keys + 1] = P .. sets.atX .. node
    if mode == 'exclusive' then keys[#keys + 1] = P .. sets.atS .. node end
  end
  keys[#keys + 1] = P .. sets.belowX .. path
  if mode == 'exclusive' then keys[#keys + 1] = P .. sets.belowS .. path end
  return keys
end

-- The state a blocking lease shows in a conflict: active, orphaned, or lock_delay (an
-- expired or revoked lease without an action, still blocking for its lockDelayMs).
local function blockingState(lease)
  if holdsResources(lease) then return lease.st end
  return 'lock_delay'
end

-- Appends the tuples of `resources` entries that conflict with (path, mode); false once
-- `out` is full.
local function addConflicts(path, mode, id, holder, resources, state, limit, out)
  for _, r in ipairs(resources) do
    if (covers(r.path, path) or covers(path, r.path)) and (r.mode == 'exclusive' or mode == 'exclusive') then
      if #out >= limit * 5 then return false end
      for _, v in ipairs({ r.path, id, holder, r.mode, state }) do out[#out + 1] = v end
    end
  end
  return true
end

local function collectConflicts(path, mode, now, limit, out, wake)
  local seen = {}
  for _, key in ipairs(blockingKeys(path, mode, LEASE_SETS)) do
    local entries = redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
    for i = 1, #entries, 2 do
      local id = entries[i]
      if not seen[id] then
        seen[id] = true
        local lease = settle(readLease(id), now)
        if lease and lease.st ~= 'released' then
          wake.at = math.min(wake.at, tonumber(entries[i + 1]))
          if not addConflicts(path, mode, id, lease.holder, lease.resources, blockingState(lease), limit, out) then return end
        end
      end
    end
  end
end

-- Tickets that block (path, mode): those that arrived before `beforeSeq` (nil: all).
-- Lapsed tickets met on the way (their replica died) are dropped.
local function collectTicketConflicts(path, mode, beforeSeq, now, limit, out, wake)
  local seen = {}
  local upTo = beforeSeq and ('(' .. beforeSeq) or '+inf'
  for _, key in ipairs(blockingKeys(path, mode, TICKET_SETS)) do
    local again = true
    while again do
      again = false
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', upTo, 'LIMIT', 0, limit)) do
        local ticket = readHash(ticketKey(id))
        if not ticket or tonumber(ticket.dl) <= now then
          if not ticket then redis.call('ZREM', key, id) end
          dropTicket(id, ticket, true)
          again = true
        elseif not seen[id] then
          seen[id] = true
          wake.at = math.min(wake.at, tonumber(ticket.dl))
          if not addConflicts(path, mode, id, ticket.holder, decodeResources(ticket.res), 'waiting', limit, out) then return end
        end
      end
    end
  end
end
