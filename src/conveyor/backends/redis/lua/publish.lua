-- Publish messages to one queue. Ready ones go to `ready`, future ones to `scheduled`.
-- KEYS[1] {ns:q}:seq  KEYS[2] {ns:q}:ready  KEYS[3] {ns:q}:scheduled
-- KEYS[4] {ns:q}:body KEYS[5] {ns:q}:signal
-- ARGV: groups of 4: task id, priority (0..9), eta ('' = now), body
-- Returns the number of messages ready now.
-- A plain delay() runs this alone, so it does no command it doesn't need: the clock is
-- read only for an eta, and the signal list trimmed only once it outgrows 64.
local count = #ARGV / 4
local seq = redis.call('INCRBY', KEYS[1], count) - count
local ready = 0
local now
for i = 1, #ARGV, 4 do
  seq = seq + 1
  local priority = tonumber(ARGV[i + 1])
  local ref = seq .. '|' .. priority .. '|' .. ARGV[i]
  redis.call('HSET', KEYS[4], ref, ARGV[i + 3])
  local eta = tonumber(ARGV[i + 2])
  if eta and not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  if eta and eta > now then
    redis.call('ZADD', KEYS[3], eta, ref)
  else
    redis.call('ZADD', KEYS[2], (9 - priority) * 1099511627776 + seq, ref)
    ready = ready + 1
  end
end
if ready > 0 and redis.call('LPUSH', KEYS[5], 1) > 64 then
  redis.call('LTRIM', KEYS[5], 0, 63)
end
return ready
