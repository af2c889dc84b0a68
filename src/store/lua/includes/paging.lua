-- One page of a listing index (a sorted set), in score order, for cursor-paged listings.

-- Bytes of a record as a listing answers with it ([name, value, ...]): what the page
-- costs to copy out of Redis and to send.
local function flatBytes(flat)
  local bytes = 0
  for i = 2, #flat, 2 do bytes = bytes + #tostring(flat[i]) end
  return bytes
end

-- Visits the members scored after `cursor` ("" = from the start) in order; `visit(member)`
-- returns the item to list ([name, value, ...]) or nil to skip it, and how many bytes it
-- read to decide (default: the item's). Stops at `limit` items, after `budget` members, or
-- once `maxBytes` were read: a filter that matches little, or a page of wide leases, costs
-- no more than a page of narrow ones that all match. Returns the items and the cursor to go
-- on from ("" when nothing is left).
local function page(key, cursor, limit, budget, maxBytes, visit)
  local after = cursor ~= '' and ('(' .. cursor) or '-inf'
  local items, last, bytes = {}, nil, 0
  while #items < limit and budget > 0 and bytes < maxBytes do
    local batch = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'WITHSCORES', 'LIMIT', 0, math.min(budget, limit - #items + 10))
    if #batch == 0 then return items, '' end
    for i = 1, #batch, 2 do
      last = batch[i + 1]
      budget = budget - 1
      local item, read = visit(batch[i])
      if item then items[#items + 1] = item end
      bytes = bytes + (read or (item and flatBytes(item)) or 0)
      if #items == limit or budget == 0 or bytes >= maxBytes then break end
    end
    after = '(' .. last
  end
  local more = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'LIMIT', 0, 1)
  return items, #more > 0 and last or ''
end
