-- agent_expire.lua: when an agent's lease has run out (plus a clock-skew margin), move its
-- balance out of reach: into a pending transfer to an in-doubt holder, and mark the holding
-- lost so that no renewal revives it. The agent stopped spending at its own, earlier
-- deadline; its next report settles the amount (agent_restore.lua).
--
-- KEYS[1]  the agent's holding hash
-- KEYS[2]  its pending-transfer hash
-- ARGV[1]  now, unix ms on the center's clock
-- ARGV[2]  clock-skew margin, ms
-- ARGV[3]  transfer id prefix (the loss number is appended)
-- ARGV[4]  in-doubt holder prefix (the loss number is appended)
--
-- Returns {status, amount, transfer id, holder}:
--   {"OK", bal, tid, holder}  expired now; bal (maybe 0) is pending to holder under tid
--   {"LIVE", lease, "", ""}   the lease (plus margin) has not run out
--   {"EXISTS", 0, "", ""}     already lost
--   {"MISSING", 0, "", ""}    no such holding
local h = redis.call("HMGET", KEYS[1], "gen", "bal", "lease", "lost", "losses", "ver")
if not h[1] then
  return {"MISSING", 0, "", ""}
end
if h[4] == "1" then
  return {"EXISTS", 0, "", ""}
end
local lease = tonumber(h[3] or "0")
if lease + tonumber(ARGV[2]) > tonumber(ARGV[1]) then
  return {"LIVE", lease, "", ""}
end
local n = tonumber(h[5] or "0") + 1
local bal = tonumber(h[2])
local tid = ARGV[3] .. n
local holder = ARGV[4] .. n
redis.call("HSET", KEYS[1], "bal", 0, "lost", 1, "losses", n, "lost_amount", h[2], "lost_holder", holder,
  "ver", tonumber(h[6]) + 1)
if bal > 0 then
  redis.call("HSET", KEYS[2], tid, h[2] .. "|" .. holder .. "|" .. h[1] .. "|" .. ARGV[1])
end
return {"OK", bal, tid, holder}
