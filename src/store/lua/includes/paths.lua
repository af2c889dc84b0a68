--[[
  Paths: which paths cover which, and resources as lease, orphan and ticket records store
  them. Reads and writes no key.
]]
--- @include "includes/prelude"

-- True when a lease on `outer` covers `inner` (equal, or inner lies below outer).
local function covers(outer, inner)
  return outer == inner or (#inner > #outer and string.sub(inner, 1, #outer + 1) == outer .. '/')
end

-- Resources as lease, orphan and ticket hashes store them: "x<path> s<path>" (a mode
-- letter, then the path; paths hold no spaces). Half the size of JSON, so a one-resource
-- lease hash stays under Redis' 64-byte listpack value limit (src/store/resource-codec.ts).
-- (Plain finds, not a pattern: matching %S+ over 64 paths of 512 characters costs 20 times
-- as much, and every reader of a wide lease pays it.)
-- Byte values of "s", " " and "/" (a library's top level may call no function: Redis gives
-- it no string library while it loads).
local SHARED, SPACE, SLASH = 115, 32, 47

local function decodeResources(stored)
  local resources, at = {}, 1
  while at <= #stored do
    local space = string.find(stored, ' ', at, true) or (#stored + 1)
    resources[#resources + 1] = { path = string.sub(stored, at + 1, space - 1), mode = string.byte(stored, at) == SHARED and 'shared' or 'exclusive' }
    at = space + 1
  end
  return resources
end

-- True when one of the stored resources is `path` or lies below it, read off the stored
-- string without decoding it: a path starts right after its mode letter, which starts the
-- string or follows a space, and a match must end at a "/", a space or the end.
local function storedCovered(stored, path)
  local from = 1
  while true do
    local at = string.find(stored, path, from, true)
    if not at then return false end
    local after = string.byte(stored, at + #path)
    if (at == 2 or (at > 2 and string.byte(stored, at - 2) == SPACE)) and (after == nil or after == SPACE or after == SLASH) then return true end
    from = at + 1
  end
end

-- A JSON array of the paths. Written by hand because cjson escapes "/" as "\/"; paths are
-- validated to hold only letters, digits and ._:@-/ so nothing else needs escaping.
local function pathListJson(paths)
  if #paths == 0 then return '[]' end
  return '["' .. table.concat(paths, '","') .. '"]'
end

-- The same from resources as stored ("xa/b sc/d" -> ["a/b","c/d"]): one pass over the
-- string, without making a string per path.
local function pathsJson(stored)
  -- (Most leases hold one resource: no pattern to run.)
  if not string.find(stored, ' ', 1, true) then return '["' .. string.sub(stored, 2) .. '"]' end
  return '["' .. (string.gsub(string.sub(stored, 2), ' [xs]', '","')) .. '"]'
end
