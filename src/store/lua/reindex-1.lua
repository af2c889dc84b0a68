--[[
  Moves the index entries of leases and tickets written by a version before the index of
  deep paths and named long nodes (see includes/indexes) to where this version looks for
  them; a store so moved is marked, and the service moves each namespace once, before it
  serves it (src/store/index-format.ts). Before, an entry was in a below-set of every
  ancestor and every key named its node as it is; now below-sets are kept for nodes of at
  most SHALLOW segments, a path deeper than SHALLOW + 1 is a deep member, and a node longer
  than NODE_KEY_MAX is named by its SHA-1.
  Invariant: idempotent (an entry is moved only from where it is, and a deep member added
  twice is one), so a call cut short, or two replicas moving at once, leave the same index;
  an entry keeps its score, so nothing blocks longer or shorter than it did.
  Cost: a batch of records of at most ENTRIES_PER_CALL old entries between them (at least
  one record), each entry one ZSCORE or ZREM and, when it moves, one ZADD.

  KEYS[1]  P.."token"
  ARGV[1]  P          ARGV[2]  tombstone TTL ms      ARGV[3]  deadline      ARGV[4]  stream cap      ARGV[5]  actor      ARGV[6]  lease quota (see prelude)
  ARGV[7]  which records: "t" (leases that hold resources), "exp" (leases due, those in
           their lock delay included), "wexp" (tickets, which also join "wq", their arrival order)
  ARGV[8]  rank to start at (0 first)

  Returns {now, next rank, or "" when the walk is done}
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"
--- @include "includes/indexes"

local ENTRIES_PER_CALL = 2048

local walk, from = ARGV[7], tonumber(ARGV[8])
local sets = walk == 'wexp' and TICKET_SETS or LEASE_SETS
local recordKey = walk == 'wexp' and 'w:' or 'l:'

-- Moves one record's entries (its resources as stored); returns how many it looked at.
local function reindex(id, stored)
  local looked = 0
  for _, r in ipairs(decodeResources(stored)) do
    local exclusive = r.mode == 'exclusive'
    local at = P .. (exclusive and sets.atX or sets.atS)
    local score = redis.call('ZSCORE', at .. r.path, id)
    if score and #r.path > NODE_KEY_MAX then
      redis.call('ZADD', at .. nodeKey(r.path), score, id)
      redis.call('ZREM', at .. r.path, id)
    end
    score = score or redis.call('ZSCORE', at .. nodeKey(r.path), id)
    looked = looked + 1
    -- Not indexed (an ended lease read on its way out): nothing of it blocks, nothing to move.
    if score then
      local below = P .. (exclusive and sets.belowX or sets.belowS)
      local depth, slash = 0, 0
      while true do
        slash = string.find(r.path, '/', slash + 1, true)
        if not slash then break end
        depth = depth + 1
        looked = looked + 1
        local node = string.sub(r.path, 1, slash - 1)
        -- A short node keeps its below-set (and name) up to SHALLOW segments; past that,
        -- below-sets are no more.
        if depth > SHALLOW or #node > NODE_KEY_MAX then
          local removed = redis.call('ZREM', below .. node, id)
          if depth <= SHALLOW and removed == 1 then redis.call('ZADD', below .. nodeKey(node), score, id) end
        end
      end
      if depth > SHALLOW then redis.call('ZADD', P .. (exclusive and sets.deepX or sets.deepS), 0, r.path .. ' ' .. id) end
    end
  end
  return looked
end

local budget, rank = ENTRIES_PER_CALL, from
while budget > 0 do
  local id = redis.call('ZRANGE', P .. walk, rank, rank)[1]
  if not id then return { nowMs(), '' } end
  rank = rank + 1
  local stored = redis.call('HGET', P .. recordKey .. id, 'res')
  if stored then budget = budget - reindex(id, stored) end
  -- A ticket queued before tickets had an arrival order of their own (includes/tickets) joins it.
  local seq = walk == 'wexp' and stored and redis.call('HGET', P .. recordKey .. id, 'seq')
  if seq then redis.call('ZADD', P .. 'wq', 'NX', seq, id) end
end
return { nowMs(), rank }
