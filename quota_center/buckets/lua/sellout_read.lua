-- sellout_read.lua: a budget's supply version and sold-out mark, read in one step.
--
-- KEYS[1]  main hash
-- KEYS[2]  the budget's sold-out mark (same hash tag)
--
-- Returns {gen, supply, marked, ttl_ms}: main's generation (0: main does not exist), its supply
-- version, 1 if the budget is marked sold out, and how long the mark still holds (ms).
local h = redis.call("HMGET", KEYS[1], "gen", "supply")
local ttl = redis.call("PTTL", KEYS[2])
local marked = 0
if ttl > 0 then
  marked = 1
else
  ttl = 0
end
return {tonumber(h[1] or "0"), tonumber(h[2] or "0"), marked, ttl}
