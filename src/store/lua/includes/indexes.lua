--[[
  Indexes: the sorted sets that find a lease by path (what blocks a request), by holder and
  in token order.
    P.."ax:"..path   zset   exclusive leases at path         score: blocks-until (ms)
    P.."as:"..path   zset   shared leases at path            score: blocks-until
    P.."bs:"..path   zset   shared leases strictly below     score: blocks-until
    P.."bx:"..path   zset   exclusive leases strictly below  score: blocks-until
    P.."t:"          zset   every lease that holds resources                     score: token
    P.."h:"..holder  zset   leases of a holder that hold resources               score: token
  Waiting tickets are indexed alike in sets of their own (see includes/tickets).

  Invariant: a lease blocks a path exactly while its entry in that path's ax/as/bs/bx set
  has a score above Redis' clock. Blocks-until is expiresAt + lockDelayMs for a lease
  without an action and +inf for one with an action (it stays reserved as an orphan when
  it dies), so expiry is exact with no background job: live entries are those scored > now.
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"

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

-- The covering walk, shared by the conflict check, the fencing check and the resource view:
-- the keys of the at-sets whose entries are the leases (or, with TICKET_SETS, the tickets)
-- that cover `path`, those of the path and of each of its proper ancestors, shallowest
-- first: each node's exclusive set and then, when `withShared`, its shared set. `records`,
-- when given, also gets {key, node, mode of its entries} for each, in the same order.
-- Without it the walk makes no table but the list of keys: an acquire walks every path it
-- asks for to see whether anything might block it at all, and most often nothing does.
local function coveringSets(path, sets, withShared, records)
  local keys, nodes = {}, ancestors(path)
  for i = 1, #nodes + 1 do
    local node = nodes[i] or path
    local key = P .. sets.atX .. node
    keys[#keys + 1] = key
    if records then records[#records + 1] = { key = key, node = node, mode = 'exclusive' } end
    if withShared then
      key = P .. sets.atS .. node
      keys[#keys + 1] = key
      if records then records[#records + 1] = { key = key, node = node, mode = 'shared' } end
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

local function blocksUntil(lease, expiresAt)
  if lease.kind then return '+inf' end
  return int(expiresAt + tonumber(lease.ld or '0'))
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
