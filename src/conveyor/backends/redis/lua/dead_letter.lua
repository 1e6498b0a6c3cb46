-- Move a leased message to the dead letters, keeping its body, with the reason.
-- KEYS[1] {ns:q}:leased  KEYS[2] {ns:q}:deliveries  KEYS[3] {ns:q}:dead  KEYS[4] {ns:q}:reason
-- ARGV[1] ref  ARGV[2] fence  ARGV[3] reason
-- Returns 1 if moved, 0 if the lease was lost.
local ref = ARGV[1]
if redis.call('HGET', KEYS[2], ref) ~= ARGV[2] or redis.call('ZREM', KEYS[1], ref) == 0 then
  return 0
end
local t = redis.call('TIME')
redis.call('HDEL', KEYS[2], ref)
redis.call('ZADD', KEYS[3], tonumber(t[1]) + tonumber(t[2]) / 1000000, ref)
redis.call('HSET', KEYS[4], ref, ARGV[3])
return 1
