-- sellout_clear.lua: budget may be available again: bump the supply version (so that a sold-out
-- decision taken on balances read before cannot be marked) and drop the sold-out mark.
--
-- KEYS[1]  main hash
-- KEYS[2]  the budget's sold-out mark (same hash tag)
--
-- Returns {was_marked, version, gen}: 1 if the budget was marked sold out, the new version and
-- main's generation; {0, 0, 0} when main does not exist (Redis lost it: the rebuild clears again).
local g = redis.call("HGET", KEYS[1], "gen")
if not g then
  redis.call("DEL", KEYS[2])
  return {0, 0, 0}
end
local v = redis.call("HINCRBY", KEYS[1], "supply", 1)
local was = redis.call("DEL", KEYS[2])
return {was, v, tonumber(g)}
