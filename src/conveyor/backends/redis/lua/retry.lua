-- Put a leased message back with a new body: ready at once, or scheduled at `at`.
-- KEYS[1] {ns:q}:ready  KEYS[2] {ns:q}:scheduled  KEYS[3] {ns:q}:leased
-- KEYS[4] {ns:q}:body   KEYS[5] {ns:q}:deliveries KEYS[6] {ns:q}:signal
-- ARGV[1] ref  ARGV[2] fence  ARGV[3] body  ARGV[4] at ('' = now)
-- Returns 1 if it was put back, 0 if the lease was lost.
local ref = ARGV[1]
if redis.call('HGET', KEYS[5], ref) ~= ARGV[2] or redis.call('ZREM', KEYS[3], ref) == 0 then
  return 0
end
redis.call('HSET', KEYS[4], ref, ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = tonumber(ARGV[4])
if at and at > now then
  redis.call('ZADD', KEYS[2], at, ref)
else
  local seq, priority = string.match(ref, '^(%d+)|(%d+)|')
  redis.call('ZADD', KEYS[1], (9 - tonumber(priority)) * 1099511627776 + tonumber(seq), ref)
  redis.call('LPUSH', KEYS[6], 1)
  redis.call('LTRIM', KEYS[6], 0, 63)
end
return 1
