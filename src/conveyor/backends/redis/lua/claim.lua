-- Claim a key for an owner: take it if it is free or already the owner's (a renewal).
-- KEYS[1]: ns:claim:<key>  (string: the holder's name, with PX expiry)
-- ARGV: owner, TTL in milliseconds
-- Returns the holder afterwards: the owner if the claim succeeded, else whoever holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
