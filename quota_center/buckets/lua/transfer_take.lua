-- transfer_take.lua: first step of a transfer between buckets: take the amount
-- from the source and record it as pending there, under the transfer id.
--
-- KEYS[1]  source bucket hash (fields bal, gen, ...)
-- KEYS[2]  source's pending-transfer hash (transfer id -> "amount|target|gen|created_ms")
-- ARGV[1]  transfer id
-- ARGV[2]  amount wanted, integer 1..2^53-1
-- ARGV[3]  "exact" (all or nothing), "upto" (take what there is, if any), or
--          "in": an incoming credit from outside the budget (a top-up): nothing is
--          taken, the record only lets the sweeper finish or drop it by the ledger
-- ARGV[4]  generation the caller expects the source to be in
-- ARGV[5]  target holder name
-- ARGV[6]  now, unix milliseconds
--
-- Returns {status, n}:
--   {"OK", taken}      taken now and recorded as pending
--   {"EXISTS", taken}  this transfer id is already pending here
--   {"SHORT", balance} not enough (exact) or nothing (upto); nothing changed
--   {"STALE", gen}     the source is in another generation (rebuilt after a loss)
--   {"LOST", 0}        the source does not exist
local p = redis.call("HGET", KEYS[2], ARGV[1])
if p then
  return {"EXISTS", tonumber(string.match(p, "^(%d+)"))}
end
local b = redis.call("HMGET", KEYS[1], "bal", "gen")
if not b[1] then
  return {"LOST", 0}
end
if b[2] ~= ARGV[4] then
  return {"STALE", tonumber(b[2])}
end
local bal = tonumber(b[1])
local take = tonumber(ARGV[2])
if ARGV[3] == "in" then
  redis.call("HSET", KEYS[2], ARGV[1], ARGV[2] .. "|" .. ARGV[5] .. "|" .. ARGV[4] .. "|" .. ARGV[6])
  return {"OK", take}
end
if bal < take then
  if ARGV[3] ~= "upto" or bal <= 0 then
    return {"SHORT", bal}
  end
  take = bal
end
local n = string.format("%d", take)
redis.call("HINCRBY", KEYS[1], "bal", "-" .. n)
redis.call("HSET", KEYS[2], ARGV[1], n .. "|" .. ARGV[5] .. "|" .. ARGV[4] .. "|" .. ARGV[6])
return {"OK", take}
