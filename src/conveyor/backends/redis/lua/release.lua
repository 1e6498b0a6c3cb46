-- Release a claim, only if the owner still holds it (never another holder's claim).
-- KEYS[1]: ns:claim:<key>
-- ARGV: owner
-- Returns 1 if released, 0 if the key was free or held by someone else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
