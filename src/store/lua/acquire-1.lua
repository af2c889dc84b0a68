--[[
  Grants a lease on every requested resource, or on none (all-or-nothing), or queues the
  request to wait for the conflict to clear (see includes/tickets).
  Invariant: a grant is recorded in the lease hash and in every index before the caller
  hears of it, and its fencing token is above every token issued before, also after Redis
  restarted from an append-only file that lost its last writes: the token never falls
  below Redis' clock in microseconds. A request never passes an earlier waiting request
  it overlaps.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  new lease id (also the id of its ticket while it waits)
  ARGV[8]  holder
  ARGV[9]  resources, as stored (see decodeResources; validated, no two covering each other)
  ARGV[10]  ttlMs      ARGV[11]  maxHoldMs      ARGV[12] lockDelayMs
  ARGV[13] the action's kind, or "" for no action
  ARGV[14] the action's maxAttempts
  ARGV[15] the action's payload as JSON, or "" for none (stored as given, never decoded)
  ARGV[16] requestId, or "" for none
  ARGV[17] fingerprint of the request (same requestId must mean the same request)
  ARGV[18] how many conflicts to report at most
  ARGV[19] waiting: "" (answer a conflict at once), "open" (queue a ticket on conflict),
           "retry" (the ticket's turn to look again; queued anew if it lapsed),
           "last" (the wait is over: grant, or drop the ticket and answer the conflict)
  ARGV[20] for "open" and "retry": how long a new ticket lives (ms), past which a crashed
           replica's ticket stops blocking others
  ARGV[21] the SHA-1s of the requested paths' long nodes (see useNodeDigests in includes/indexes)

  Returns {now, "granted", leaseFields} | {now, "existing", leaseFields}
        | {now, "conflict", {path, leaseId, holder, mode, state, ...}}
        | {now, "waiting", {path, leaseId, holder, mode, state, ...}, wakeAt or ""}
        | {now, "request_id_reused", leaseId}
        | {now, "undecided"} (nothing blocking found, but more than DEEP_SCAN leases that
          expired and await the reaper, or tickets, lie below a deep path asked for: try
          again shortly)
        | {now, "over_quota"} (the actor holds its quota of active leases; nothing written but
          the settling of its leases past expiresAt)
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"
--- @include "includes/lifecycle"
--- @include "includes/tickets"
--- @include "includes/conflicts"
--- @include "includes/grant"

local id, holder = ARGV[7], ARGV[8]
local resources = decodeResources(ARGV[9])
local paths = {}
for i, r in ipairs(resources) do paths[i] = r.path end
useNodeDigests(paths, ARGV[21])
local ttl, maxHold, lockDelay = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local kind, maxAttempts, payload = ARGV[13], ARGV[14], ARGV[15]
local requestId, fingerprint = ARGV[16], ARGV[17]
local conflictLimit = tonumber(ARGV[18])
local waiting = ARGV[19]
local UNDECIDED_RETRY_MS = 1000
local now = nowMs()

local ticket = nil
if waiting == 'retry' or waiting == 'last' then
  ticket = readHash(ticketKey(id))
  if ticket and tonumber(ticket.dl) <= now then
    dropTicket(id, ticket, true)
    ticket = nil
  end
end

local requestKey = requestId ~= '' and (P .. 'rq:' .. #holder .. ':' .. holder .. requestId)
if requestKey then
  local previousId = redis.call('GET', requestKey)
  if previousId then
    local previous = settle(readLease(previousId), now)
    if previous and previous.st == 'active' then
      -- Either way this request stops waiting; its ticket must not hold up those behind it.
      if ticket then dropTicket(id, ticket, true) end
      if previous.fp ~= fingerprint then return { now, 'request_id_reused', previousId } end
      return { now, 'existing', flatLease(previous) }
    end
  end
end

-- A lease past the actor's quota is refused before anything is written (a waiting request's
-- ticket, if any, is dropped by its caller, which stops waiting).
if overQuota(now) then return { now, 'over_quota' } end

-- Only a request that may wait needs to know when its blockers stop blocking by themselves.
local wake = (waiting == 'open' or waiting == 'retry') and { at = math.huge } or nil
local conflicts = {}
-- Almost always nothing blocks and nobody waits: one look at the tickets' expiry index
-- (every ticket is in it) spares the ticket sets' reads, as many as the lease sets'. For
-- one resource, the most common request, the same EXISTS also asks every lease set that
-- could hold a blocker (an empty sorted set does not exist) and may spare the search; a
-- deep path (see includes/indexes) has its below in a range that EXISTS cannot ask.
-- (Not for many: the search stops at the first `conflictLimit` conflicts, and the sets of
-- 64 deep paths cost more to ask at once than those of the first few blocked ones.)
-- A request that waits already has a ticket of its own: only earlier ones can hold it back,
-- and it asks the arrival order for them, so the first in line is not held up by a crowd of
-- later tickets below its paths (which it would have to read past one by one).
local mayBlock, anyTickets = true, nil
if #resources == 1 and keepsBelowSets(resources[1].path) then
  mayBlock = redis.call('EXISTS', P .. 'wexp', unpack(blockingKeys(resources[1].path, resources[1].mode, LEASE_SETS))) > 0
  anyTickets = mayBlock and ticketsBefore(ticket)
else
  anyTickets = ticketsBefore(ticket)
end
-- Undecided: leases that expired together below a deep path wait for the reaper, or tickets
-- queue there, in such numbers that the search gave up before it saw them all (see
-- includes/conflicts).
local undecided = false
if mayBlock then
  undecided = collectConflicts(resources, now, conflictLimit, conflicts, wake)
  -- (Earlier tickets only add to the conflicts reported: none fit once the list is full.)
  if anyTickets and #conflicts < conflictLimit * 5 then
    undecided = collectTicketConflicts(resources, ticket and ticket.seq, now, conflictLimit, conflicts, wake) or undecided
  end
end

if #conflicts == 0 and not undecided then
  -- The ticket becomes the lease, which blocks all it blocked: nobody behind it may go on.
  if ticket then dropTicket(id, ticket, false) end
  local lease = grant({
    id = id, holder = holder, res = ARGV[9], resources = resources, ttl = ttl, maxHold = maxHold, lockDelay = lockDelay,
    kind = kind ~= '' and kind or nil, ma = kind ~= '' and maxAttempts or nil, pay = payload ~= '' and payload or nil,
    rid = requestId ~= '' and requestId or nil, fp = requestId ~= '' and fingerprint or nil,
  }, now, 'granted')
  if requestKey then redis.call('SET', requestKey, id, 'PX', int(maxHold + TOMBSTONE_TTL)) end
  return { now, 'granted', flatLease(lease) }
end

if waiting == 'open' or waiting == 'retry' then
  if not ticket then openTicket(id, holder, ARGV[9], now + tonumber(ARGV[20])) end
  -- Undecided, it looks again a second later: the dropped members and the reaper's work
  -- make each look shorter.
  if undecided then wake.at = math.min(wake.at, now + UNDECIDED_RETRY_MS) end
  return { now, 'waiting', conflicts, wake.at < math.huge and int(wake.at) or '' }
end
if ticket then dropTicket(id, ticket, true) end
if #conflicts == 0 then return { now, 'undecided' } end
return { now, 'conflict', conflicts }
