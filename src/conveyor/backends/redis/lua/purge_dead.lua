-- Delete dead letters of one queue: all of them, or those whose task id is listed.
-- KEYS[1] {ns:q}:dead  KEYS[2] {ns:q}:reason  KEYS[3] {ns:q}:body
-- ARGV[1] '*' for all, else ARGV are task ids
-- Returns how many were deleted.
local wanted = nil
if ARGV[1] ~= '*' then
  wanted = {}
  for _, id in ipairs(ARGV) do wanted[id] = true end
end
local deleted = 0
for _, ref in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local id = string.match(ref, '^%d+|%d+|(.*)$')
  if wanted == nil or wanted[id] then
    redis.call('ZREM', KEYS[1], ref)
    redis.call('HDEL', KEYS[2], ref)
    redis.call('HDEL', KEYS[3], ref)
    deleted = deleted + 1
  end
end
return deleted
