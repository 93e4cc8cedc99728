-- 0003: the write-behind spend log, and the registry of running center instances.
--
-- After a Redis loss, what a lost sub-bucket consumed is read back from spend_log: every
-- deduction and return a center served is written here shortly after it was answered
-- (write-behind, in batches). center_instances says how far each center has written its log,
-- so the settlement can tell when the log of a lost generation is complete.

CREATE TABLE spend_log (
    -- Request ids are global across budgets and kinds, like their claims in Redis.
    request_id   text PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 1024),
    budget_id    text NOT NULL CHECK (length(budget_id) BETWEEN 1 AND 256),
    -- The generation the sub-bucket was in when it served the request, and which one it was.
    gen          integer NOT NULL CHECK (gen >= 1),
    holder       text NOT NULL CHECK (length(holder) BETWEEN 1 AND 256),
    kind         text NOT NULL CHECK (kind IN ('deduct', 'return')),
    amount       bigint NOT NULL CHECK (amount > 0 AND amount <= 9007199254740991),
    -- The deduction a return refunds; NULL for a deduction.
    deduction_id text NULL CHECK (length(deduction_id) BETWEEN 1 AND 1024),
    logged_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'return') = (deduction_id IS NOT NULL))
);

-- What one sub-bucket consumed in one generation.
CREATE INDEX spend_log_holder ON spend_log (budget_id, gen, holder);
-- What a deduction has returned already (to recreate its record after a loss).
CREATE INDEX spend_log_deduction ON spend_log (deduction_id) WHERE deduction_id IS NOT NULL;

-- One row per center process start. flushed_until: every operation that process started before
-- this instant (database clock) has finished, and its log entry is written. stopped_at is set only
-- after the final flush of a clean shutdown.
CREATE TABLE center_instances (
    instance_id   text PRIMARY KEY CHECK (length(instance_id) BETWEEN 1 AND 128),
    name          text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    seen_at       timestamptz NOT NULL DEFAULT now(),
    flushed_until timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz NULL
);

CREATE INDEX center_instances_running ON center_instances (seen_at) WHERE stopped_at IS NULL;

-- The in-doubt holders ('doubt:sub:3@1') and their settlement rows, found without scanning the
-- whole ledger (the sweeper looks for unsettled ones on every pass).
CREATE INDEX ledger_doubt ON ledger (budget_id)
    WHERE from_holder LIKE 'doubt:%' OR to_holder LIKE 'doubt:%';
