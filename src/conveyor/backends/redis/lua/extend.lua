-- Renew the leases of running messages that this lease still holds.
-- KEYS[1] {ns:q}:leased  KEYS[2] {ns:q}:deliveries
-- ARGV[1] lease seconds, then pairs of ref, fence
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV, 2 do
  local ref = ARGV[i]
  if redis.call('HGET', KEYS[2], ref) == ARGV[i + 1] and redis.call('ZSCORE', KEYS[1], ref) then
    redis.call('ZADD', KEYS[1], deadline, ref)
    renewed = renewed + 1
  end
end
return renewed
