--[[
  Tickets: acquires that wait (waitMs > 0) for a conflict to clear, queued in arrival order.
  A ticket is indexed like a lease, in its own sets scored by its arrival seq:
    P.."w:"..id        hash  holder, res (as a lease stores it), seq, dl (Redis-clock ms when it lapses)
    P.."wx:"..path     zset  exclusive tickets at path            score: seq
    P.."ws:"..path     zset  shared tickets at path               score: seq
    P.."wbs:"..node    zset  shared tickets strictly below        score: seq
    P.."wbx:"..node    zset  exclusive tickets strictly below     score: seq
    P.."wdeep:x"       zset  "<path> <id>" of exclusive tickets on deep paths (lex, see includes/indexes)
    P.."wdeep:s"       zset  the same for shared tickets
    P.."wexp"          zset  tickets by dl, so the reaper drops those of a crashed replica
    P.."wq"            zset  tickets by seq: whether any ticket came before a given one is one
                             ZCOUNT, whatever crowd of later ones lies below its paths
    P.."wseq"          string the arrival counter
  A request conflicts with live leases and with earlier tickets it overlaps, so it queues
  behind them: a stream of shared requests cannot pass a waiting exclusive one. The id of a
  ticket is the id of the lease it becomes.
]]
--- @include "includes/prelude"
--- @include "includes/paths"
--- @include "includes/indexes"
--- @include "includes/events"

local function ticketKey(id)
  return P .. 'w:' .. id
end

-- Queues a waiting request at the back; returns the ticket.
local function openTicket(id, holder, res, lapsesAt)
  local seq = redis.call('INCR', P .. 'wseq')
  local ticket = { holder = holder, res = res, seq = tostring(seq), dl = int(lapsesAt) }
  redis.call('HSET', ticketKey(id), 'holder', holder, 'res', res, 'seq', seq, 'dl', ticket.dl)
  writeEntries(decodeResources(res), TICKET_SETS, id, seq)
  redis.call('ZADD', P .. 'wexp', ticket.dl, id)
  redis.call('ZADD', P .. 'wq', seq, id)
  return ticket
end

-- Takes a ticket out of the queue (granted, given up, or lapsed). Unless it became a lease
-- (which blocks whatever the ticket blocked), the requests queued behind it may go on.
local function dropTicket(id, ticket, announce)
  if ticket then
    writeEntries(decodeResources(ticket.res), TICKET_SETS, id, nil)
    if announce then announceFreed(ticket.res) end
  end
  redis.call('DEL', ticketKey(id))
  redis.call('ZREM', P .. 'wexp', id)
  redis.call('ZREM', P .. 'wq', id)
end

-- Whether any ticket is queued before `ticket` (nil: before a request without one, so any
-- ticket at all). Lapsed tickets count until they are dropped.
local function ticketsBefore(ticket)
  if not ticket then return redis.call('ZCARD', P .. 'wexp') > 0 end
  return redis.call('ZCOUNT', P .. 'wq', '-inf', '(' .. ticket.seq) > 0
end
