-- pool_open.lua: mark a sub-bucket so that new deductions go to sub-bucket 0, the end game's
-- pool (docs/center.md#end-game). The mark lasts as long as the bucket's generation: a request
-- id it sent to the pool must never be served here later (deduct.lua answers POOLED).
--
-- KEYS[1]  sub-bucket hash (never sub-bucket 0's)
-- ARGV[1]  generation the caller believes the sub-bucket is in
--
-- Returns {status, gen}: {"OK", gen} marked (or marked already); {"STALE", gen} another
-- generation; {"LOST", 0} the sub-bucket does not exist.
local g = redis.call("HGET", KEYS[1], "gen")
if not g then
  return {"LOST", 0}
end
if tonumber(g) ~= tonumber(ARGV[1]) then
  return {"STALE", tonumber(g)}
end
redis.call("HSET", KEYS[1], "pool", "1")
return {"OK", tonumber(g)}
