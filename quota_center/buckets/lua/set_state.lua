-- set_state.lua: mirror a budget's state onto one of its buckets, so that the
-- deduction script can refuse paused and closed budgets without another round trip.
--
-- KEYS[1]  bucket hash
-- ARGV[1]  state: active, paused or closed
--
-- Returns 1 if the bucket exists and was updated, 0 if it does not exist.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return 0
end
redis.call("HSET", KEYS[1], "state", ARGV[1])
return 1
