-- Take the next slot of a pace schedule (GCRA): slot = max(now, tat); tat = slot + interval.
-- KEYS[1]: ns:pace:<key>  (string: the tat, whole microseconds since the epoch, expiring
--          at the tat, when it would answer "now" anyway)
-- ARGV: interval in whole microseconds
-- Returns how many microseconds from now (Redis's clock, `TIME`) the slot starts: 0 = now.
-- Times are microseconds held in doubles: exact up to 2^53, far past any date we meet.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local slot = math.max(now, tat)
local next_tat = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
           'PX', math.max(1, math.ceil((next_tat - now) / 1000)))
return slot - now
