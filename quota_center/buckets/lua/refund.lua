-- refund.lua: return part or all of an earlier deduction to the sub-bucket that served it.
--
-- KEYS[1]  sub-bucket hash
-- KEYS[2]  request record of the deduction being refunded
-- KEYS[3]  request record of this return
-- ARGV[1]  amount, integer 1..2^53-1
-- ARGV[2]  the deduction's request id
-- ARGV[3]  seconds the records are kept (the request window)
-- ARGV[4]  generation the caller believes the sub-bucket is in; "0" (or absent) accepts any
-- ARGV[5]  (optional) the deduction's amount, from the spend log, for a deduction whose record is
--          gone (made before a Redis loss, or longer ago than the request window): its record is
--          recreated from ARGV[5] and ARGV[6] if it is missing here
-- ARGV[6]  (with ARGV[5]) what the log says was returned of it already
--
-- Returns {status, amount, refundable, gen}; gen is the sub-bucket's generation when it served
-- the return (what the write-behind spend log records), 0 when there is none:
--   {"OK", amount, left, gen}      refunded now; left = what the deduction can still refund
--   {"EXISTS", amount, left, gen}  this return was already applied (original answer)
--   {"CONFLICT", 0, 0, 0}          this return id was used for something else here
--   {"UNKNOWN", 0, 0, gen}         no such deduction here (never made, past retention, or made
--                                  before a Redis loss and not recreated)
--   {"POOLED", 0, 0, gen}          no such deduction here, and the budget's end game serves new
--                                  deductions from sub-bucket 0: it may be there (deduct.lua)
--   {"EXCEEDS", 0, refundable, gen}  amount is more than the deduction has left to refund
--   {"STALE", 0, 0, gen}           the sub-bucket is in another generation than ARGV[4]
--   {"LOST", 0, 0, 0}              the sub-bucket does not exist (Redis lost it)
-- Every check happens before the first write: Redis does not roll back.
local amount = tonumber(ARGV[1])
local r = redis.call("HMGET", KEYS[3], "kind", "amount", "of", "left", "gen")
if r[1] then
  if r[1] == "return" and tonumber(r[2]) == amount and r[3] == ARGV[2] then
    return {"EXISTS", amount, tonumber(r[4]), tonumber(r[5] or "0")}
  end
  return {"CONFLICT", 0, 0, 0}
end
local h = redis.call("HMGET", KEYS[1], "gen", "pool")
local g = h[1]
if not g then
  return {"LOST", 0, 0, 0}
end
local gen = tonumber(g)
local want = tonumber(ARGV[4] or "0")
if want ~= 0 and want ~= gen then
  return {"STALE", 0, 0, gen}
end
local d = redis.call("HMGET", KEYS[2], "kind", "amount", "returned")
local restore = false
if d[1] ~= "deduct" then
  if d[1] or tonumber(ARGV[5] or "0") <= 0 then
    if h[2] and not d[1] then
      return {"POOLED", 0, 0, gen}
    end
    return {"UNKNOWN", 0, 0, gen}
  end
  d = {"deduct", ARGV[5], ARGV[6]}
  restore = true
end
local refundable = tonumber(d[2]) - tonumber(d[3])
if amount > refundable then
  return {"EXCEEDS", 0, refundable, gen}
end
local n = string.format("%d", amount)
local left = string.format("%d", refundable - amount)
if restore then
  redis.call("HSET", KEYS[2], "kind", "deduct", "amount", d[2], "returned", d[3], "gen", g)
  redis.call("EXPIRE", KEYS[2], ARGV[3])
end
redis.call("HINCRBY", KEYS[2], "returned", n)
-- The deduction's record lives a window past its last return: a record gone means every return
-- of it is old enough to be in the spend log, where a later return finds them (ARGV[5], ARGV[6]).
redis.call("EXPIRE", KEYS[2], ARGV[3])
redis.call("HINCRBY", KEYS[1], "bal", n)
redis.call("HINCRBY", KEYS[1], "consumed", "-" .. n)
redis.call("HSET", KEYS[3], "kind", "return", "amount", n, "of", ARGV[2], "left", left, "gen", g)
redis.call("EXPIRE", KEYS[3], ARGV[3])
return {"OK", amount, refundable - amount, gen}
