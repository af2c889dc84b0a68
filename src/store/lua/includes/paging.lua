-- One page of a listing index (a sorted set), in score order, for cursor-paged listings.

-- Visits the members scored after `cursor` ("" = from the start) in order; `visit(member)`
-- returns the item to list, or nil to skip it. Stops at `limit` items or after `budget`
-- members (so a filter that matches little still costs a bounded amount). Returns the
-- items and the cursor to go on from ("" when nothing is left).
local function page(key, cursor, limit, budget, visit)
  local after = cursor ~= '' and ('(' .. cursor) or '-inf'
  local items, last = {}, nil
  while #items < limit and budget > 0 do
    local batch = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'WITHSCORES', 'LIMIT', 0, math.min(budget, limit - #items + 10))
    if #batch == 0 then return items, '' end
    for i = 1, #batch, 2 do
      last = batch[i + 1]
      budget = budget - 1
      local item = visit(batch[i])
      if item then items[#items + 1] = item end
      if #items == limit or budget == 0 then break end
    end
    after = '(' .. last
  end
  local more = redis.call('ZRANGEBYSCORE', key, after, '+inf', 'LIMIT', 0, 1)
  return items, #more > 0 and last or ''
end
