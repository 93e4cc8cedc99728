-- read_buckets.lua: the fields and pending transfers of several buckets, in one call (one Redis
-- server only: the buckets' keys span hash tags). A page of ListBudgets or Audit reads its buckets
-- with a pipeline of these, one per budget, instead of two commands per bucket.
--
-- KEYS[2k-1], KEYS[2k]  a bucket's hash and its pending-transfer hash, for each bucket
-- ARGV[1]  "pending": the pending-transfer hashes only (the bucket hashes' lists come back empty)
--
-- Returns, per bucket, two flat field/value lists (HGETALL of each hash; empty when missing).
local pending_only = ARGV[1] == "pending"
local out = {}
for k = 1, #KEYS, 2 do
  out[#out + 1] = pending_only and {} or redis.call("HGETALL", KEYS[k])
  out[#out + 1] = redis.call("HGETALL", KEYS[k + 1])
end
return out
