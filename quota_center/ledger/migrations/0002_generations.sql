-- 0002: Redis generations.
--
-- After Redis loses a budget's buckets the center rebuilds them from the ledger under a new
-- generation. Every ledger row says in which generation it moved budget, so what the lost
-- sub-buckets held stays visible per (holder, generation) as in doubt, and a transfer started in
-- an old generation can be refused (fenced) instead of being counted twice.
--
-- ADD COLUMN with a constant default does not rewrite rows, so the append-only trigger is not hit.

ALTER TABLE budgets
    ADD COLUMN redis_gen integer NOT NULL DEFAULT 1 CHECK (redis_gen >= 1);

ALTER TABLE ledger
    ADD COLUMN gen integer NOT NULL DEFAULT 1 CHECK (gen >= 1);

-- A rebuild is recorded as a marker row: it moves nothing.
ALTER TABLE ledger
    ADD CONSTRAINT ledger_rebuild_moves_nothing CHECK (kind <> 'rebuild' OR amount = 0);
