-- agent_drop.lua: delete an agent's holding of a generation a rebuild replaced, and only that:
-- two reports of one agent may race, and the other may have opened the holding of the new
-- generation (and received grants into it) in the meantime.
--
-- KEYS[1]  the agent's holding hash
-- KEYS[2]  its pending-transfer hash (same hash tag)
-- ARGV[1]  the current generation: a holding of an older one is deleted
--
-- Returns 1 if it deleted the holding, 0 if the holding is missing or current.
local g = redis.call("HGET", KEYS[1], "gen")
if g and tonumber(g) < tonumber(ARGV[1]) then
  redis.call("DEL", KEYS[1], KEYS[2])
  return 1
end
return 0
