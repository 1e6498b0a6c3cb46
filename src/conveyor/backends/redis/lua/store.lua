-- Store a batch of result records, and announce the final ones.
-- KEYS: ns:result:<id> for each record
-- ARGV: per record: JSON record, TTL in milliseconds, '1' if final (then PUBLISH on
--       ns:done:<id>, which AsyncResult.get() waits on), else '0'; then the namespace last
-- One call per batch instead of two commands per task: the worker's batch of results is
-- one round trip and one reply to parse.
local namespace = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 3
  redis.call('SET', key, ARGV[base + 1], 'PX', ARGV[base + 2])
  if ARGV[base + 3] == '1' then
    redis.call('PUBLISH', namespace .. ':done:' .. string.sub(key, #namespace + 9), '1')
  end
end
return #KEYS
