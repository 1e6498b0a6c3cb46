-- Add members to sets and return each set's size after its addition.
-- KEYS: ns:set:<key> per entry (a set; one key may appear more than once)
-- ARGV: the member of each entry, in order; then the TTL in milliseconds last, which
--       every join renews for the whole set
-- Adding a member twice counts it once. On Redis Cluster the caller sends one entry per
-- call, since the keys of one call must share a slot.
local ttl = ARGV[#ARGV]
local sizes = {}
for i, key in ipairs(KEYS) do
  redis.call('SADD', key, ARGV[i])
  redis.call('PEXPIRE', key, ttl)
  sizes[i] = redis.call('SCARD', key)
end
return sizes
