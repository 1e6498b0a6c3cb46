-- Revoke: delete the waiting (ready or scheduled) messages of the listed task ids from
-- one or more queues (same slot); leased (running) and dead ones are left alone.
-- KEYS: per queue, 4 keys: {ns:q}:ready, :scheduled, :body, :deliveries
-- ARGV: task ids
-- Returns {queue index, ref, body, ...} for each message deleted.
-- Refs are found by reading the queues' ready and scheduled sets through (there is no
-- index by task id: keeping one would cost every publish and ack), about 0.5 µs per
-- waiting message, during which Redis serves no one else.
local wanted = {}
for _, id in ipairs(ARGV) do wanted[id] = true end

local out = {}
for q = 0, #KEYS / 4 - 1 do
  local body, deliveries = KEYS[q * 4 + 3], KEYS[q * 4 + 4]
  for k = 1, 2 do
    local set = KEYS[q * 4 + k]
    local found = {}
    for start = 0, redis.call('ZCARD', set) - 1, 1000 do
      for _, ref in ipairs(redis.call('ZRANGE', set, start, start + 999)) do
        if wanted[string.match(ref, '^%d+|%d+|(.*)$')] then table.insert(found, ref) end
      end
    end
    for _, ref in ipairs(found) do
      table.insert(out, q)
      table.insert(out, ref)
      table.insert(out, redis.call('HGET', body, ref) or '')
      redis.call('ZREM', set, ref)
      redis.call('HDEL', body, ref)
      redis.call('HDEL', deliveries, ref)
    end
  end
end
return out
