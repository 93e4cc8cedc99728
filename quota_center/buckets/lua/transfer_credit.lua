-- transfer_credit.lua: credit a transfer to its target once. Called only after
-- the transfer's ledger row is committed; a marker per transfer id makes a repeat
-- (a retry, or the sweeper finishing the transfer) a no-op.
--
-- KEYS[1]  target bucket hash
-- KEYS[2]  credit marker of this transfer id (same hash tag)
-- ARGV[1]  amount, integer 1..2^53-1
-- ARGV[2]  generation the transfer was made in
-- ARGV[3]  retention of the marker, seconds
--
-- Returns {status, n}:
--   {"OK", 0}        credited now
--   {"EXISTS", 0}    already credited
--   {"STALE", gen}   the target was rebuilt since: the ledger already counts the amount
--   {"LOST", 0}      the target does not exist
if redis.call("EXISTS", KEYS[2]) == 1 then
  return {"EXISTS", 0}
end
local g = redis.call("HGET", KEYS[1], "gen")
if not g then
  return {"LOST", 0}
end
if g ~= ARGV[2] then
  return {"STALE", tonumber(g)}
end
redis.call("HINCRBY", KEYS[1], "bal", ARGV[1])
-- Agents' holdings carry a version that every change raises (docs/agents.md); a bucket
-- without one has no use for it.
if redis.call("HEXISTS", KEYS[1], "ver") == 1 then
  redis.call("HINCRBY", KEYS[1], "ver", 1)
end
redis.call("SET", KEYS[2], "1", "EX", ARGV[3])
return {"OK", 0}
