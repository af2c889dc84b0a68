--[[
  Indexes: the sorted sets that find a lease by path (what blocks a request), by holder and
  in token order. A node (a path or an ancestor) longer than NODE_KEY_MAX characters is
  named "#" and its SHA-1 in these keys (see nodeKey).
    P.."ax:"..path   zset   exclusive leases at path         score: blocks-until (ms)
    P.."as:"..path   zset   shared leases at path            score: blocks-until
    P.."bx:"..node   zset   exclusive leases strictly below node, for a node of at most
                            SHALLOW segments                 score: blocks-until
    P.."bs:"..node   zset   shared leases strictly below such a node      score: blocks-until
    P.."deep:x"      zset   one member "<path> <id>" per exclusive resource of more than
                            SHALLOW + 1 segments; all scored 0, read by lex range
    P.."deep:s"      zset   the same for shared resources
    P.."t:"          zset   every lease that holds resources                     score: token
    P.."h:"..holder  zset   leases of a holder that hold resources               score: token
  Waiting tickets are indexed alike in sets of their own (see includes/tickets).

  What lies below a node: for a node of at most SHALLOW segments, its bx/bs sets; for a
  deeper one, the lex range "<node>/" of deep:x/deep:s, which holds exactly the resources
  below it (each is deeper than SHALLOW + 1). A lease so costs at most SHALLOW + 2 entries
  per resource whatever its depth (a below-set entry per ancestor made a maximal lease
  1 024 sorted-set writes, about 3 ms of Redis' time on its own), and the paths most
  leases hold (instances/i-42/volumes/v-7: 4 segments) are found the way they always were.

  Invariant: a lease blocks a path exactly while its entry in that path's ax/as set (for a
  deep member, the entry at the member's path) has a score above Redis' clock, and so for
  bx/bs. Blocks-until is expiresAt + lockDelayMs for a lease without an action and +inf for
  one with an action (it stays reserved as an orphan when it dies), so expiry is exact with
  no background job: live entries are those scored > now. A deep member carries no score:
  whoever reads it asks the at-set, and an acquire that meets a member whose lease no longer
  blocks drops it (the lease's score never rises again once it has stopped blocking, unless
  Redis' clock steps back; a renew then writes the member again, see indexBlocking).
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/records"

local SHALLOW = 3

-- A node's name in index keys (see src/store/node-digests.ts): the node itself up to
-- NODE_KEY_MAX characters, else "#" and its SHA-1 ("#" is no path character, so the two
-- forms never meet). Long keys cost at every turn: Lua hashes every byte of a string it
-- makes, Redis hashes and compares keys byte by byte.
local NODE_KEY_MAX = 64

local function nodeKey(node)
  if #node <= NODE_KEY_MAX then return node end
  return '#' .. redis.sha1hex(node)
end

-- Where the SHA-1s the service sent (nodeDigests in src/store/node-digests.ts) for this
-- call's long nodes are: path -> {text, first}, the path's long nodes shallowest first, 40
-- hex digits each from `first`, so that walking the ancestors of 64 long paths makes no
-- string as long as they are (nor one per digest before it is asked for). Good for the call
-- that set them only (digestsCall); a path not in them has its digests made here.
local digestsOf, digestsCall = {}, -1

-- Takes the digests the service sent for `paths` (a list). Raises before anything is written
-- when they do not fit the paths, or when the first long path's own digest is not its SHA-1
-- (one check, against a caller that hashes something else).
local function useNodeDigests(paths, text)
  local sent, at, checked = {}, 1, false
  for _, path in ipairs(paths) do
    if #path > NODE_KEY_MAX then
      sent[path] = { text = text, first = at }
      local cut = 0
      repeat
        cut = string.find(path, '/', cut + 1, true)
        if (cut and cut - 1 or #path) > NODE_KEY_MAX then at = at + 40 end
      until not cut
      if not checked and string.sub(text, at - 40, at - 1) ~= redis.sha1hex(path) then
        error('the node digests sent are not the SHA-1s of the paths')
      end
      checked = true
    end
  end
  if at ~= #text + 1 then error('the node digests sent do not fit the paths') end
  digestsOf, digestsCall = sent, CALL
end

-- The SHA-1 (hex) of the node of `path` that ends at `cut`, the `ordinal`th long one of it.
local function longNodeDigest(path, cut, ordinal)
  local sent = digestsCall == CALL and digestsOf[path]
  if not sent then return redis.sha1hex(string.sub(path, 1, cut)) end
  local from = sent.first + (ordinal - 1) * 40
  return string.sub(sent.text, from, from + 39)
end

-- nodeKey of the ancestor of `path` that ends at `cut`.
local function ancestorKey(path, cut)
  if cut <= NODE_KEY_MAX then return string.sub(path, 1, cut) end
  local ordinal, at = 0, 0
  repeat
    at = string.find(path, '/', at + 1, true)
    if at - 1 > NODE_KEY_MAX then ordinal = ordinal + 1 end
  until at - 1 >= cut
  return '#' .. longNodeDigest(path, cut, ordinal)
end

-- nodeKey(path).
local function pathKey(path)
  if #path <= NODE_KEY_MAX then return path end
  local long, at = 1, 0
  while true do
    at = string.find(path, '/', at + 1, true)
    if not at then break end
    if at - 1 > NODE_KEY_MAX then long = long + 1 end
  end
  return '#' .. longNodeDigest(path, #path, long)
end

-- The sets of each family. Leases and waiting tickets (see includes/tickets) are indexed
-- alike. One entry per node, not one per question asked of it: an exclusive request reads
-- both below-sets, a shared one only the exclusive one.
local LEASE_SETS = { atX = 'ax:', atS = 'as:', belowS = 'bs:', belowX = 'bx:', deepX = 'deep:x', deepS = 'deep:s' }
local TICKET_SETS = { atX = 'wx:', atS = 'ws:', belowS = 'wbs:', belowX = 'wbx:', deepX = 'wdeep:x', deepS = 'wdeep:s' }

-- True when a node of this many segments keeps below-sets of its own.
local function keepsBelowSets(path)
  local at = 0
  for _ = 1, SHALLOW do
    at = string.find(path, '/', at + 1, true)
    if not at then return true end
  end
  return false
end

-- The lex range of the deep members that lie strictly below `node` ("/" is 0x2F, "0" 0x30).
local function deepRange(node)
  return '[' .. node .. '/', '(' .. node .. '0'
end

-- A deep member's path and id (paths hold no spaces).
local function splitDeepMember(member)
  local space = string.find(member, ' ', 1, true)
  return string.sub(member, 1, space - 1), string.sub(member, space + 1)
end

-- The keys of a resource's entries in the sets of family `sets` (its at-set, then the
-- below-sets of its ancestors of at most SHALLOW segments) and whether it is also a deep
-- member, made once per call: a claim drops the orphaned lease's entries and writes the new
-- lease's at the same keys, and a key of a long node costs a substring and a SHA-1 to make.
-- (Looked up by the strings the call has already: no key is made to find one.)
local keysMade, keysCall = {}, -1
local function entryKeys(r, sets)
  if keysCall ~= CALL then keysMade, keysCall = {}, CALL end
  local byPath = keysMade[sets]
  if not byPath then
    byPath = { exclusive = {}, shared = {} }
    keysMade[sets] = byPath
  end
  local made = byPath[r.mode][r.path]
  if made then return made end
  local exclusive = r.mode == 'exclusive'
  made = { P .. (exclusive and sets.atX or sets.atS) .. pathKey(r.path) }
  local below = P .. (exclusive and sets.belowX or sets.belowS)
  local at = 0
  for depth = 1, SHALLOW + 1 do
    at = string.find(r.path, '/', at + 1, true)
    if not at then break end
    if depth <= SHALLOW then
      made[#made + 1] = below .. ancestorKey(r.path, at - 1)
    else
      made.deep = true
    end
  end
  byPath[r.mode][r.path] = made
  return made
end

-- Writes (`score` given) or drops (`score` nil) the entries of `id`, which holds
-- `resources`, in the sets of family `sets`: its at-sets, the below-sets of its ancestors of
-- at most SHALLOW segments, and one deep member per resource deeper than SHALLOW + 1.
local function writeEntries(resources, sets, id, score)
  local deep = { x = {}, s = {} }
  for _, r in ipairs(resources) do
    local keys = entryKeys(r, sets)
    for _, key in ipairs(keys) do
      if score then redis.call('ZADD', key, score, id) else redis.call('ZREM', key, id) end
    end
    if keys.deep then
      local members = r.mode == 'exclusive' and deep.x or deep.s
      if score then members[#members + 1] = 0 end
      members[#members + 1] = r.path .. ' ' .. id
    end
  end
  for mode, members in pairs(deep) do
    if #members > 0 then
      local key = P .. (mode == 'x' and sets.deepX or sets.deepS)
      if score then redis.call('ZADD', key, unpack(members)) else redis.call('ZREM', key, unpack(members)) end
    end
  end
end

-- The covering walk, shared by the conflict check, the fencing check and the resource view:
-- the keys of the at-sets whose entries are the leases (or, with TICKET_SETS, the tickets)
-- that cover `path`, those of the path and of each of its proper ancestors, shallowest
-- first: each node's exclusive set and then, when `withShared`, its shared set. `records`,
-- when given, also gets {key, cut (the node is path's first `cut` characters), mode of its
-- entries} for each, in the same order. The walk makes no string but the keys (and the
-- names of nodes of at most NODE_KEY_MAX characters): an acquire walks every path it asks
-- for to see whether anything might block it at all, and most often nothing does.
local function coveringSets(path, sets, withShared, records)
  local keys, long, at = {}, 0, 0
  repeat
    at = string.find(path, '/', at + 1, true)
    local cut = at and at - 1 or #path
    local keyX, keyS
    if cut <= NODE_KEY_MAX then
      local name = at and string.sub(path, 1, cut) or path
      keyX, keyS = P .. sets.atX .. name, withShared and (P .. sets.atS .. name)
    else
      long = long + 1
      local digest = longNodeDigest(path, cut, long)
      keyX, keyS = P .. sets.atX .. '#' .. digest, withShared and (P .. sets.atS .. '#' .. digest)
    end
    keys[#keys + 1] = keyX
    if records then records[#records + 1] = { key = keyX, cut = cut, mode = 'exclusive' } end
    if withShared then
      keys[#keys + 1] = keyS
      if records then records[#records + 1] = { key = keyS, cut = cut, mode = 'shared' } end
    end
  until not at
  return keys
end

-- (Re)writes the lease's entries in the blocking sets of its paths with one score: a grant,
-- a renewal, the start of a lock delay. Its deep members carry no score and are written
-- again as they are, so one dropped while the lease had stopped blocking comes back: only a
-- clock that stepped back lets such a lease be renewed, and it must not stay hidden below its
-- deep ancestors for the rest of its life.
local function indexBlocking(lease, score)
  writeEntries(resourcesOf(lease), LEASE_SETS, lease.id, score)
end

local function unindexBlocking(lease)
  writeEntries(resourcesOf(lease), LEASE_SETS, lease.id, nil)
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

-- How many index entries a lease has: per resource its at-set entry, one per ancestor of at
-- most SHALLOW segments, and a deep member past that. The work of writing, moving or
-- dropping them dwarfs the rest of a transition.
-- (Plain finds of one character: a pattern such as '[ /]' steps through every byte in Lua's
-- matcher, about 1 ms over the 32 KiB of a maximal lease, where this asks at most
-- SHALLOW + 2 finds per resource.)
local function indexWeight(lease)
  local stored = lease.res or redis.call('HGET', P .. 'l:' .. lease.id, 'res')
  local weight, from = 0, 1
  while from <= #stored do
    local space = string.find(stored, ' ', from, true) or (#stored + 1)
    local entries, at = 1, from
    while entries < SHALLOW + 2 do
      at = string.find(stored, '/', at + 1, true)
      if not at or at > space then break end
      entries = entries + 1
    end
    weight = weight + entries
    from = space + 1
  end
  return weight
end
