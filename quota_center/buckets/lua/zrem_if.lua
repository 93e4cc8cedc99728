-- zrem_if.lua: remove a member from a sorted set only if its score is still the one the caller
-- read (quota_center/budgets/activity.py: a budget marked active, or scheduled earlier, meanwhile
-- stays).
--
-- KEYS[1]  the sorted set
-- ARGV[1]  the member
-- ARGV[2]  the score read, an integer (ms)
--
-- Returns 1 if removed, 0 if the member is gone or its score changed.
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call("ZREM", KEYS[1], ARGV[1])
end
return 0
