-- agent_restore.lua: give a lost holding back its in-doubt amount, once, after the ledger
-- recorded the transfer from the in-doubt holder (the agent reported again: what it spent
-- is then applied by agent_report.lua as usual).
--
-- KEYS[1]  the agent's holding hash
-- KEYS[2]  credit marker of the restoring transfer (same hash tag)
-- ARGV[1]  amount, the in-doubt amount (0 allowed)
-- ARGV[2]  generation
-- ARGV[3]  retention of the marker, seconds
--
-- Returns {status, bal}: "OK" restored now, "EXISTS" already, "STALE"/"MISSING" nothing done.
local h = redis.call("HMGET", KEYS[1], "gen", "bal", "ver")
if not h[1] then
  return {"MISSING", 0}
end
if h[1] ~= ARGV[2] then
  return {"STALE", 0}
end
if redis.call("EXISTS", KEYS[2]) == 1 then
  redis.call("HSET", KEYS[1], "lost", 0)
  return {"EXISTS", tonumber(h[2])}
end
local bal = tonumber(h[2]) + tonumber(ARGV[1])
redis.call("HSET", KEYS[1], "bal", string.format("%d", bal), "lost", 0, "lost_amount", 0,
  "ver", tonumber(h[3]) + 1)
redis.call("SET", KEYS[2], "1", "EX", ARGV[3])
return {"OK", bal}
