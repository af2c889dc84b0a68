--[[
  Records: a lease's hash, read and written, and what a lease answers with.
    P.."l:"..id      hash   a lease; after it ends, its tombstone (with a TTL)

  Lease fields: holder, res (see decodeResources), tok, st (active | orphaned | released |
  expired | revoked), es (how an orphaned lease ended), ttl, acq, ren, exp, hold, ld,
  kind and ma (the action's kind and maxAttempts; a lease has an action exactly when it has
  a kind), pay (the action's payload, JSON, absent when null), att (attempt), prog (JSON),
  rid, fp, out, end, oid (its orphan). Times are ms on Redis' clock.

  The scripts never decode a client's JSON (pay, prog): it is stored and handed back as the
  service gave it. What a script decides on has a field of its own, so a payload a Lua JSON
  decoder would refuse cannot make a script fail half-way (Redis does not roll back the
  writes of a script that fails).
]]
--- @include "includes/prelude"
--- @include "includes/paths"

local function readHash(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local record = {}
  for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
  return record
end

-- Records written before kind, ma and pay had fields of their own kept the action as one
-- JSON field, act. They are read as if written today; one that does not decode keeps its
-- action (so it still becomes an orphan) with an unknown kind.
local function upgradeLegacyAction(record)
  if not record.act or record.ma then return record end
  local ok, action = pcall(cjson.decode, record.act)
  if not ok or type(action) ~= 'table' then action = {} end
  record.kind = record.kind or (type(action.kind) == 'string' and action.kind) or 'unknown'
  record.ma = int(tonumber(action.maxAttempts) or 1)
  if ok and action.payload ~= nil and action.payload ~= cjson.null then
    local encoded, json = pcall(cjson.encode, action.payload)
    if encoded then record.pay = json end
  end
  return record
end

-- Before a legacy record's act is dropped, its action's kind and maxAttempts get fields.
local function keepLegacyAction(key, record)
  if record.act then redis.call('HSET', key, 'kind', record.kind, 'ma', record.ma) end
end

-- What a record answers with: [name, value, ...] led by its id (which the hash does not
-- store), every field or only `fields`. Listings leave the client's JSON (pay, prog) out
-- unless asked, so a page costs the same whatever the payloads hold.
local SUMMARY_FIELDS = { 'holder', 'res', 'tok', 'st', 'es', 'ttl', 'acq', 'ren', 'exp', 'hold', 'ld', 'kind', 'ma', 'att', 'out', 'end', 'oid', 'act', 'by' }
-- Every field a lease answers with (not act, which a legacy record is read without).
local LEASE_FIELDS = { 'holder', 'res', 'tok', 'st', 'es', 'ttl', 'acq', 'ren', 'exp', 'hold', 'ld', 'kind', 'ma', 'pay', 'att', 'prog', 'rid', 'fp', 'out', 'end', 'oid', 'by' }

-- Appends [name, value] to `flat` for each of `names` that `record` has (never act, which a
-- legacy record is answered without and rewritten without).
local function appendFields(flat, names, record)
  for _, name in ipairs(names) do
    if record[name] and name ~= 'act' then
      flat[#flat + 1] = name
      flat[#flat + 1] = record[name]
    end
  end
  return flat
end

-- `overrides`: fields to answer with instead of the stored ones (see presentAsOf).
local function flatRecord(key, id, fields, overrides)
  local record
  if fields then
    local values = redis.call('HMGET', key, unpack(fields))
    record = {}
    for i, name in ipairs(fields) do record[name] = values[i] or nil end
  else
    record = readHash(key) or {}
  end
  upgradeLegacyAction(record)
  if fields then record.pay = nil end
  record.act = nil
  for name, value in pairs(overrides or {}) do record[name] = value or nil end -- false: absent
  local flat = { 'id', id }
  for name, value in pairs(record) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  return flat
end

-- Records are read without decoding their resources: a lease may hold 64 paths of 512
-- characters, and making those strings is most of what reading it costs. resourcesOf()
-- decodes them the first time they are needed.
local function readLease(id)
  local lease = readHash(P .. 'l:' .. id)
  if not lease then return nil end
  lease.id = id
  -- Every field of the hash is in the table, and stays so: whatever changes the hash after
  -- this changes the table too (setFields, rewriteLease), so flatLease answers from it.
  lease.complete = true
  return upgradeLegacyAction(lease)
end

local function resourcesOf(record)
  if not record.resources then
    -- A lease read without its resources (see renew-holder) reads them now.
    record.res = record.res or redis.call('HGET', P .. 'l:' .. record.id, 'res')
    record.resources = decodeResources(record.res)
  end
  return record.resources
end

-- A lease without the client's JSON (pay, prog), for readers that do not answer with it:
-- reading it costs the same whatever the payload holds. settle() reads the rest when it
-- must end the lease.
local function readLeaseSummary(id)
  local values = redis.call('HMGET', P .. 'l:' .. id, unpack(SUMMARY_FIELDS))
  if not values[1] then return nil end
  local lease = { id = id, partial = true }
  for i, name in ipairs(SUMMARY_FIELDS) do lease[name] = values[i] or nil end
  return upgradeLegacyAction(lease)
end

-- Whether a caller bound to the holders `pattern` matches (a Lua pattern; "" for anyone)
-- may act on this lease. A lease's holder never changes, but the check is made here, in
-- the script that would change it, so a refused call fails before its first write.
local function mayActAs(lease, pattern)
  return pattern == '' or string.find(lease.holder, pattern) ~= nil
end

-- `fields` with the fields of `extra` (a table, or nil) added.
local function withFields(fields, extra)
  for name, value in pairs(extra or {}) do fields[name] = value end
  return fields
end

local function setFields(lease, fields)
  lease.written = nil -- (no longer the whole record: see flatLease)
  local flat = {}
  for name, value in pairs(fields) do
    lease[name] = value
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  redis.call('HSET', P .. 'l:' .. lease.id, unpack(flat))
end

-- Sets the fields `changes` and drops those named in `dropped`, in a lease's hash and in its
-- table. A lease read whole is written anew (DEL, then one HSET of what is left) rather than
-- trimmed: a hash that ever held a value over 64 bytes (a payload, a checkpoint) keeps Redis'
-- larger encoding after HDEL, and a tombstone or an orphaned lease is kept for an hour or
-- more (measured: a released lease's tombstone, 1 KiB payload and 16 KiB checkpoint: 772 B
-- trimmed, 232 B written anew).
local function rewriteLease(lease, changes, dropped)
  lease.written = nil
  for name, value in pairs(changes) do lease[name] = value end
  for _, name in ipairs(dropped) do lease[name] = nil end
  local key = P .. 'l:' .. lease.id
  if lease.complete then
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(appendFields({}, LEASE_FIELDS, lease)))
    return
  end
  local flat = {}
  for name, value in pairs(changes) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
  redis.call('HDEL', key, unpack(dropped))
end

local function holdsResources(lease)
  return lease.st == 'active' or lease.st == 'orphaned'
end

-- What a lease is by Redis' clock, for a reader, without writing anything: an active lease
-- past its expiresAt has ended (without an action it holds nothing any more; with one it is
-- orphaned, and whoever settles it, a writer or the reaper, publishes its orphan). Readers
-- of many leases present them so rather than settle them, so that a page of leases that
-- expired unnoticed costs no more than a page of live ones: settling one with an action
-- writes its orphan, payload and all. A lease presented so has `unsettled` set.
local function presentAsOf(lease, now)
  if lease and lease.st == 'active' and tonumber(lease.exp) <= now then
    lease.st = lease.kind and 'orphaned' or 'expired'
    lease.es = 'expired'
    lease['end'] = lease.exp
    lease.unsettled = true
  end
  return lease
end

local function flatLease(lease, withoutJson)
  if lease.written and not withoutJson then
    -- Just granted (includes/grant): its record is the list it wrote, and nothing since.
    local flat = { 'id', lease.id }
    for i = 1, #lease.written do flat[i + 2] = lease.written[i] end
    return flat
  end
  -- Read whole (readLease) and kept in step with its hash since, or read by readLeaseSummary
  -- for an answer without the JSON: answer from what was read (as presented, when
  -- presentAsOf changed it).
  if lease.complete or (withoutJson and lease.partial) then
    return appendFields({ 'id', lease.id }, withoutJson and SUMMARY_FIELDS or LEASE_FIELDS, lease)
  end
  local overrides = lease.unsettled and { st = lease.st, es = lease.es, ['end'] = lease['end'] } or nil
  return flatRecord(P .. 'l:' .. lease.id, lease.id, withoutJson and SUMMARY_FIELDS, overrides)
end
