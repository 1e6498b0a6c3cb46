-- Delete a queue's ready and scheduled messages; leased (running) ones are left alone.
-- KEYS[1] {ns:q}:ready  KEYS[2] {ns:q}:scheduled  KEYS[3] {ns:q}:body  KEYS[4] {ns:q}:deliveries
-- Returns how many were deleted.
local deleted = 0
for k = 1, 2 do
  while true do
    local refs = redis.call('ZRANGE', KEYS[k], 0, 999)
    if #refs == 0 then break end
    redis.call('ZREM', KEYS[k], unpack(refs))
    redis.call('HDEL', KEYS[3], unpack(refs))
    redis.call('HDEL', KEYS[4], unpack(refs))
    deleted = deleted + #refs
  end
end
return deleted
