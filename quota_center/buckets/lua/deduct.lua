-- deduct.lua: spend from one sub-bucket, at most once per request id.
--
-- KEYS[1]  sub-bucket hash (fields bal, consumed, draws, gen, state; draws: deductions served,
--          from which the filler sizes slices by a count of them)
-- KEYS[2]  request record of this request id (same hash tag)
-- ARGV[1]  amount, integer 1..2^53-1
-- ARGV[2]  seconds the request record and the claim are kept (the request window)
-- KEYS[3]  (optional, one Redis server only) the request id's claim {q:ID}: the script binds
--          it to ARGV[4] if it is free (SET NX, for ARGV[2] seconds) and goes on only if it
--          holds ARGV[4], so the claim and the deduction are one EVALSHA (a Redis Cluster
--          cannot: the claim lives in another slot, and the caller claims first)
-- ARGV[3]  generation the caller believes the sub-bucket is in; "0" (or absent) accepts any.
--          A mismatch means the budget was rebuilt (or is being rebuilt) after a Redis loss
--          and the caller's view is stale: nothing is spent, so that what a request did before
--          the loss can be looked up first (quota_center/recovery/recall.py).
--
-- ARGV[4]  (with KEYS[3]) the request's fingerprint
-- KEYS[4], KEYS[5]  (optional, one Redis server only, with KEYS[3]) sub-bucket 0's hash and the
--          request's record there: a POOLED answer goes on to the pool in the same call, whose
--          answer is returned with a 4th value, 1
-- ARGV[5]  (optional, one Redis server only) "1": the spend log was consulted for this id already
-- ARGV[6..16]  (optional, one Redis server only) the request-id filters' parameters
--          (seen_lib.lua, prepended): with KEYS[3], an id whose claim is free and that the filters
--          may have seen is not served but answered RECALL (the claim and the record live for a
--          short window only; the spend log remembers the whole retention); a deduction served
--          adds its id to today's filter in the same step, so none served is missing there
--
-- Returns {status, n, gen[, 1]}; gen is the sub-bucket's generation when it served the request
-- (what the write-behind spend log records), 0 when there is none:
--   {"OK", amount, gen}       deducted now
--   {"EXISTS", amount, gen}   this request id already deducted this amount here (gen: when)
--   {"CONFLICT", 0, 0}        this request id was used for something else here
--   {"PAUSED", 0, gen} / {"CLOSED", 0, gen}
--   {"SHORT", balance, gen}   the sub-bucket holds less than amount; nothing changed
--   {"STALE", 0, gen}         the sub-bucket is in another generation than ARGV[3]
--   {"LOST", 0, 0}            the sub-bucket does not exist (Redis lost it)
--   {"UNCLAIMED", 0, 0}       (with KEYS[3]) the id is bound to another request: nothing done
--   {"RECALL", 0, 0}          (with KEYS[3] and the filters) the claim is free and the filters
--                             may have seen the id: nothing done; look it up in the spend log,
--                             then call again with ARGV[5] = "1"
--   {"UNMARKED", 0, 0}        (with KEYS[3] and the filters) the claim is free and the filters'
--                             shard has lost its mark: nothing done; set it, then call again
--   {"POOLED", 0, gen}        the budget's end game serves new deductions from sub-bucket 0 (the
--                             pool), and this sub-bucket has no record of the id: nothing done
--                             here, deduct at the pool (docs/center.md#end-game). Sub-bucket 0 is
--                             never marked, and a mark lasts as long as the generation, so an id
--                             is served here or at the pool, never both.
-- Every check happens before the first write: Redis does not roll back.
local seen = nil
if ARGV[6] then
  seen = seen_args(6)
end
if KEYS[3] then
  local bound = redis.call("GET", KEYS[3])
  if not bound then
    if seen and ARGV[5] ~= "1" then
      if redis.call("EXISTS", KEYS[1]) == 0 then
        -- Redis lost the sub-bucket: the budget is rebuilt first, and then every request of it
        -- is looked up in the spend log anyway (recovery/recall.py).
        return {"LOST", 0, 0}
      end
      local maybe = seen_maybe(seen)
      if maybe == 2 then
        return {"UNMARKED", 0, 0}
      end
      if maybe == 1 then
        return {"RECALL", 0, 0}
      end
    end
    redis.call("SET", KEYS[3], ARGV[4], "EX", ARGV[2])
  elseif bound ~= ARGV[4] then
    return {"UNCLAIMED", 0, 0}
  end
end
local amount = tonumber(ARGV[1])
local want = tonumber(ARGV[3] or "0")

local function serve(bucket, record)
  local rec = redis.call("HMGET", record, "kind", "amount", "gen")
  if rec[1] then
    if rec[1] == "deduct" and tonumber(rec[2]) == amount then
      return {"EXISTS", amount, tonumber(rec[3] or "0")}
    end
    return {"CONFLICT", 0, 0}
  end
  local b = redis.call("HMGET", bucket, "bal", "state", "gen", "pool")
  if not b[1] then
    return {"LOST", 0, 0}
  end
  local gen = tonumber(b[3] or "0")
  if want ~= 0 and want ~= gen then
    return {"STALE", 0, gen}
  end
  if b[2] == "paused" then
    return {"PAUSED", 0, gen}
  end
  if b[2] == "closed" then
    return {"CLOSED", 0, gen}
  end
  if b[4] then
    return {"POOLED", 0, gen}
  end
  local bal = tonumber(b[1])
  if bal < amount then
    return {"SHORT", bal, gen}
  end
  local n = string.format("%d", amount)
  redis.call("HINCRBY", bucket, "bal", "-" .. n)
  redis.call("HINCRBY", bucket, "consumed", n)
  redis.call("HINCRBY", bucket, "draws", 1)
  redis.call("HSET", record, "kind", "deduct", "amount", n, "returned", "0", "gen", string.format("%d", gen))
  redis.call("EXPIRE", record, ARGV[2])
  if seen then
    seen_add(seen)
  end
  return {"OK", amount, gen}
end

local r = serve(KEYS[1], KEYS[2])
if r[1] == "POOLED" and KEYS[5] then
  -- One server: on to the pool in the same call; the 4th value says the pool answered.
  r = serve(KEYS[4], KEYS[5])
  r[4] = 1
end
return r
