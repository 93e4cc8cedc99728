-- snapshot.lua: the balances of several buckets of one budget and what is moving out of (or into)
-- them, read in one step (one Redis server only: the buckets' keys span hash tags). A refusal
-- decided on it is honest even while another center process moves budget between the buckets.
--
-- KEYS[2k-1], KEYS[2k]  a bucket's hash and its pending-transfer hash, for each bucket
-- ARGV[1]  the generation whose pending transfers count ("0": all)
-- ARGV[2]  how many buckets, from the first, have all their pending transfers counted; of the
--          others (agents' holdings) only those on their way to main count (a release): what
--          leaves an agent for an in-doubt holder is not free until it is settled
--
-- Returns {bal_1, ..., bal_n, moving}: each bucket's balance (-1 when it does not exist), then the
-- sum of the counted pending transfers' amounts ("amount|target|gen|created_ms") of that
-- generation.
local want = tonumber(ARGV[1])
local counted = tonumber(ARGV[2])
local out = {}
local moving = 0
for k = 1, #KEYS, 2 do
  local bal = redis.call("HGET", KEYS[k], "bal")
  out[#out + 1] = bal and tonumber(bal) or -1
  local all = (k + 1) / 2 <= counted
  for _, rec in ipairs(redis.call("HVALS", KEYS[k + 1])) do
    local amount, target, gen = string.match(rec, "^(%d+)|([^|]*)|(%d+)|")
    if amount and (want == 0 or tonumber(gen) == want) and (all or target == "main") then
      moving = moving + tonumber(amount)
    end
  end
end
out[#out + 1] = moving
return out
