-- Reserve up to n messages from one or more queues (same slot), best rank first.
-- KEYS: per queue, 7 keys: {ns:q}:ready, :scheduled, :leased, :body, :deliveries, :dead,
-- :reason
-- ARGV[1] n  ARGV[2] lease seconds
-- First moves due scheduled messages and expired leases back to ready (the only way
-- anything becomes ready again: nothing waits in a worker's memory).
-- Each hand-out gets a fence "count:server time in microseconds" in the deliveries hash:
-- unique even when a failover rolled back an earlier hand-out and the count repeats.
-- An entry whose ref is not `seq|priority|id` (written by something else) is moved to
-- the dead letters with the reason, so it can't stop the queue behind it.
-- Returns {queue index, ref, body, fence, ...}, or {-1, next due time} when empty.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local queues = #KEYS / 7
local MALFORMED = 'malformed queue entry: its reference is not seq|priority|task id'

local function rank(ref)
  local seq, priority = string.match(ref, '^(%d+)|(%d)|.')
  if not seq then
    return nil
  end
  return (9 - tonumber(priority)) * 1099511627776 + tonumber(seq)
end

local function dead(q, ref)
  redis.call('ZADD', KEYS[q * 7 + 6], now, ref)
  redis.call('HSET', KEYS[q * 7 + 7], ref, MALFORMED)
end

local next_due = nil
for q = 0, queues - 1 do
  local ready = KEYS[q * 7 + 1]
  for _, source in ipairs({KEYS[q * 7 + 2], KEYS[q * 7 + 3]}) do
    local due = redis.call('ZRANGEBYSCORE', source, '-inf', now, 'LIMIT', 0, 1000)
    for _, ref in ipairs(due) do
      local r = rank(ref)
      if r then
        redis.call('ZADD', ready, r, ref)
      else
        dead(q, ref)
      end
      redis.call('ZREM', source, ref)
    end
    local head = redis.call('ZRANGE', source, 0, 0, 'WITHSCORES')
    if head[2] and (next_due == nil or tonumber(head[2]) < next_due) then
      next_due = tonumber(head[2])
    end
  end
end

-- Candidates: the best n of each queue, merged by rank; the rest go back untouched.
local candidates = {}
for q = 0, queues - 1 do
  local popped = redis.call('ZPOPMIN', KEYS[q * 7 + 1], n)
  for i = 1, #popped, 2 do
    if rank(popped[i]) then
      table.insert(candidates, {q, popped[i], tonumber(popped[i + 1])})
    else
      dead(q, popped[i])
    end
  end
end
if #candidates == 0 then
  return {-1, tostring(next_due or '')}
end
if queues > 1 then
  table.sort(candidates, function(a, b) return a[3] < b[3] end)
end

local out = {}
for i, c in ipairs(candidates) do
  local base = c[1] * 7
  if i <= n then
    local body = redis.call('HGET', KEYS[base + 4], c[2])
    if body then
      redis.call('ZADD', KEYS[base + 3], deadline, c[2])
      local previous = redis.call('HGET', KEYS[base + 5], c[2])
      local count = (previous and tonumber(string.match(previous, '^(%d+)')) or 0) + 1
      local fence = count .. ':' .. t[1] .. string.format('%06d', tonumber(t[2]))
      redis.call('HSET', KEYS[base + 5], c[2], fence)
      table.insert(out, c[1])
      table.insert(out, c[2])
      table.insert(out, body)
      table.insert(out, fence)
    end
  else
    redis.call('ZADD', KEYS[base + 1], c[3], c[2])
  end
end
return out
