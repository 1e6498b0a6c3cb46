-- Remove finished messages for good, if this lease still holds them.
-- KEYS[1] {ns:q}:leased  KEYS[2] {ns:q}:body  KEYS[3] {ns:q}:deliveries
-- ARGV: pairs of ref, fence (as reserve.lua returned it)
-- Returns how many were removed.
local removed = 0
for i = 1, #ARGV, 2 do
  local ref = ARGV[i]
  if redis.call('HGET', KEYS[3], ref) == ARGV[i + 1] and redis.call('ZREM', KEYS[1], ref) == 1 then
    redis.call('HDEL', KEYS[2], ref)
    redis.call('HDEL', KEYS[3], ref)
    removed = removed + 1
  end
end
return removed
