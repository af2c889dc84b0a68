--[[
  Finding what blocks a request, in O(depth) sorted-set reads per resource.
  For a request on path p with mode m the blocking leases are:
    at p or an ancestor a:  exclusive ones (ax:a); when m is exclusive, shared ones too (as:a)
    strictly below p:       when m is exclusive any (b:p); when m is shared exclusive ones (bx:p)
  Only entries scored above now count, so expired leases never block anyone.
]]

local function blockingKeys(path, mode)
  local keys = {}
  local nodes = ancestors(path)
  nodes[#nodes + 1] = path
  for _, node in ipairs(nodes) do
    keys[#keys + 1] = P .. 'ax:' .. node
    if mode == 'exclusive' then keys[#keys + 1] = P .. 'as:' .. node end
  end
  keys[#keys + 1] = P .. (mode == 'exclusive' and 'b:' or 'bx:') .. path
  return keys
end

-- The state a blocking lease shows in a conflict: active, orphaned, or lock_delay (an
-- expired or revoked lease without an action, still blocking for its lockDelayMs).
local function blockingState(lease)
  if holdsResources(lease) then return lease.st end
  return 'lock_delay'
end

-- Appends {path, leaseId, holder, mode, state} tuples (flattened) to `out` for leases that
-- block (path, mode); stops once `out` holds `limit` tuples. `seen` avoids reporting the
-- same lease twice for one requested path.
local function collectConflicts(path, mode, now, limit, out)
  local seen = {}
  for _, key in ipairs(blockingKeys(path, mode)) do
    local ids = redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf', 'LIMIT', 0, limit)
    for _, id in ipairs(ids) do
      if not seen[id] then
        seen[id] = true
        local lease = settle(readLease(id), now)
        if lease and lease.st ~= 'released' then
          for _, r in ipairs(lease.resources) do
            if (covers(r.path, path) or covers(path, r.path)) and (r.mode == 'exclusive' or mode == 'exclusive') then
              if #out >= limit * 5 then return end
              for _, v in ipairs({ r.path, id, lease.holder, r.mode, blockingState(lease) }) do out[#out + 1] = v end
            end
          end
        end
      end
    end
  end
end
