-- 0006: the spend log kept per UTC day, so that its retention is dropping a day's partition.
--
-- Redis remembers a request id only for a short window (QUOTA_CENTER_REQUEST_WINDOW_S); a retry
-- after it is answered from this log, which keeps every served request for the retention
-- (QUOTA_CENTER_RETENTION_S). A day older than that is dropped whole (spend_log.expire_days), and
-- what it consumed per sub-bucket and generation is added to spend_rollup first, in the same
-- transaction, so a settlement after a Redis loss still counts it.
--
-- A request id is unique per day (a partitioned table's key includes its partition key); it is
-- logged once, and on the day its answer was written, so a second row on another day can come
-- only from a retry logged across midnight. Readers take the first row of an id
-- (spend_log.lookup, .returned, .consumption) and expire_days skips a row the next days hold.

ALTER TABLE spend_log RENAME TO spend_log_undivided;
ALTER INDEX spend_log_pkey RENAME TO spend_log_undivided_pkey;
ALTER INDEX spend_log_holder RENAME TO spend_log_undivided_holder;
ALTER INDEX spend_log_deduction RENAME TO spend_log_undivided_deduction;

CREATE TABLE spend_log (
    request_id   text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 1024),
    budget_id    text NOT NULL CHECK (length(budget_id) BETWEEN 1 AND 256),
    gen          integer NOT NULL CHECK (gen >= 1),
    holder       text NOT NULL CHECK (length(holder) BETWEEN 1 AND 256),
    kind         text NOT NULL CHECK (kind IN ('deduct', 'return', 'cancel')),
    amount       bigint NOT NULL CHECK (amount > 0 AND amount <= 9007199254740991),
    deduction_id text NULL CHECK (length(deduction_id) BETWEEN 1 AND 1024),
    -- The UTC day the entry was written: its partition (spend_log_YYYYMMDD).
    day          date NOT NULL,
    logged_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'return') = (deduction_id IS NOT NULL)),
    PRIMARY KEY (request_id, day)
) PARTITION BY RANGE (day);

CREATE INDEX spend_log_holder ON spend_log (budget_id, gen, holder);
CREATE INDEX spend_log_deduction ON spend_log (deduction_id) WHERE deduction_id IS NOT NULL;

-- What the dropped days consumed, per sub-bucket and generation (deductions less returns).
CREATE TABLE spend_rollup (
    budget_id text NOT NULL,
    gen       integer NOT NULL,
    holder    text NOT NULL,
    consumed  bigint NOT NULL,
    PRIMARY KEY (budget_id, gen, holder)
);

DO $$
DECLARE
    d date;
BEGIN
    FOR d IN SELECT DISTINCT (logged_at AT TIME ZONE 'UTC')::date FROM spend_log_undivided LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF spend_log FOR VALUES FROM (%L) TO (%L)',
            'spend_log_' || to_char(d, 'YYYYMMDD'), d, d + 1
        );
    END LOOP;
END $$;

INSERT INTO spend_log (request_id, budget_id, gen, holder, kind, amount, deduction_id, day, logged_at)
SELECT request_id, budget_id, gen, holder, kind, amount, deduction_id, (logged_at AT TIME ZONE 'UTC')::date,
       logged_at
FROM spend_log_undivided;

DROP TABLE spend_log_undivided;

-- Whether the seen filters in Redis (quota_center/buckets/seen.py) were ever started for this
-- ledger: a filter shard found without its mark afterwards was lost, not new.
ALTER TABLE ledger_identity ADD COLUMN seen_filters_started boolean NOT NULL DEFAULT false;
