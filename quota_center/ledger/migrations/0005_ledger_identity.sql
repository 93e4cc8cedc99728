-- 0005: the ledger's identity.
--
-- A few Redis keys belong to the ledger rather than to one budget: the active set and the
-- schedule of reservation expiries (quota_center/budgets/activity.py). They carry this id, so
-- that ledgers sharing one Redis (a staging and a test ledger, say) keep theirs apart.

CREATE TABLE ledger_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id        text NOT NULL
);
INSERT INTO ledger_identity (id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 16));
