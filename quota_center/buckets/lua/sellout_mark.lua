-- sellout_mark.lua: mark a budget sold out, unless its supply changed since the caller looked.
--
-- KEYS[1]  main hash (field "supply": a version bumped by everything that can make budget
--          available again, see sellout_clear.lua)
-- KEYS[2]  the budget's sold-out mark (same hash tag)
-- ARGV[1]  the supply version read before the caller read the balances it decided on
-- ARGV[2]  how long the mark holds unless confirmed again, ms
--
-- Returns {status, version}: {"OK", v} marked, v the new version; {"STALE", v} the supply
-- changed meanwhile (a return, a release, a top-up...): nothing marked, look again;
-- {"LOST", 0} main does not exist.
if redis.call("HEXISTS", KEYS[1], "gen") == 0 then
  return {"LOST", 0}
end
local v = tonumber(redis.call("HGET", KEYS[1], "supply") or "0")
if v ~= tonumber(ARGV[1]) then
  return {"STALE", v}
end
v = redis.call("HINCRBY", KEYS[1], "supply", 1)
redis.call("SET", KEYS[2], v, "PX", ARGV[2])
return {"OK", v}
