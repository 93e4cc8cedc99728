-- read_sets.lua: the members of several sets, in one call (one Redis server only: the sets span
-- hash tags). The audit and ListBudgets read the agents' sets of a page of budgets with a few of
-- these instead of a command per budget.
--
-- KEYS  the sets
--
-- Returns, per set, its members (an empty list when missing).
local out = {}
for k = 1, #KEYS do
  out[k] = redis.call("SMEMBERS", KEYS[k])
end
return out
