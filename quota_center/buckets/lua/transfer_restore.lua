-- transfer_restore.lua: undo the take of a transfer that was aborted (its ledger
-- row will never exist): put the amount back on the source and drop the pending record.
--
-- KEYS[1]  source bucket hash
-- KEYS[2]  source's pending-transfer hash
-- ARGV[1]  transfer id
-- ARGV[2]  the source's holder name: a record whose target is the source itself is
--          an incoming credit that took nothing, so it is only dropped
--
-- Returns {status, amount}:
--   {"OK", amount}   put back now
--   {"GONE", 0}      no such pending transfer (already resolved)
--   {"STALE", 0}     the source was rebuilt since the take: the rebuilt balance
--                    already includes the amount, so the record is only dropped
local p = redis.call("HGET", KEYS[2], ARGV[1])
if not p then
  return {"GONE", 0}
end
local amount, target, gen = string.match(p, "^(%d+)|([^|]*)|(%d+)|")
redis.call("HDEL", KEYS[2], ARGV[1])
if target == ARGV[2] then
  return {"OK", 0}
end
if redis.call("HGET", KEYS[1], "gen") ~= gen then
  return {"STALE", 0}
end
redis.call("HINCRBY", KEYS[1], "bal", amount)
if redis.call("HEXISTS", KEYS[1], "ver") == 1 then
  redis.call("HINCRBY", KEYS[1], "ver", 1)  -- an agent's holding: see transfer_credit.lua
end
return {"OK", tonumber(amount)}
