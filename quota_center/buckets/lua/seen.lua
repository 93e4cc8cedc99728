-- seen.lua: whether a request id may have been served in the days kept, and (ARGV[1] = "1")
-- add it to today's filter in the same step (seen_lib.lua, prepended). Used where the claim and
-- the filter cannot be one script: a Redis Cluster (the claim lives in the id's slot), and
-- returns. Adding before the request is served means a crash after serving cannot leave it out;
-- an id added but then refused only costs a spend-log lookup if it is retried after its window.
--
-- KEYS[1]  today's counter of the id's shard ("<prefix>:<today>"); the shard's other keys share
--          its hash tag
-- ARGV[1]  "1": add; "0": only look
-- ARGV[2..12]  the filter's parameters (seen_lib.lua)
--
-- Returns 1 if the id may have been seen (the spend log decides), 0 if it certainly was not,
-- 2 if the shard's mark is missing (nothing added: the caller sets the mark and asks again).
local s = seen_args(2)
local maybe = seen_maybe(s)
if maybe ~= 2 and ARGV[1] == "1" then
  seen_add(s)
end
return maybe
