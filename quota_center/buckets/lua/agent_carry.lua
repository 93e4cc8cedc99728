-- agent_carry.lua: carry an agent's holding that a Redis loss took over into its new holding,
-- once: what the agent still has (by its own account) becomes the new holding's balance and
-- reservations, the rest of what it held is booked as consumed (docs/agents.md, "A Redis loss").
-- The ledger already moved the whole amount from the in-doubt holder to the agent.
--
-- KEYS[1]  the agent's holding hash (just opened by agent_report.lua in this generation)
-- ARGV[1]  generation the caller expects
-- ARGV[2]  the in-doubt holder carried over (field "c:<holder>" marks the hash: a second call
--          for the same holder changes nothing)
-- ARGV[3]  units added to the balance
-- ARGV[4]  units added to reserved
-- ARGV[5]  units added to consumed
--
-- Every amount is within 0..2^53-1 and their sum is the in-doubt amount (checked by the caller).
-- Returns {status, ver, bal}: "OK" carried now, "DONE" carried before, "STALE" no hash of this
-- generation (ver holds the hash's generation, 0 if none).
local mark = "c:" .. ARGV[2]
local h = redis.call("HMGET", KEYS[1], "gen", "ver", "bal", mark)
if not h[1] or h[1] ~= ARGV[1] then
  return {"STALE", tonumber(h[1] or "0"), 0}
end
if h[4] then
  return {"DONE", tonumber(h[2]), tonumber(h[3])}
end
local bal = redis.call("HINCRBY", KEYS[1], "bal", ARGV[3])
redis.call("HINCRBY", KEYS[1], "reserved", ARGV[4])
redis.call("HINCRBY", KEYS[1], "consumed", ARGV[5])
redis.call("HSET", KEYS[1], mark, 1)
local ver = redis.call("HINCRBY", KEYS[1], "ver", 1)
return {"OK", ver, bal}
