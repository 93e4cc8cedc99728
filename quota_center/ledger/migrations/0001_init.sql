-- 0001: budgets and the append-only double-entry ledger.
--
-- PostgreSQL is the commit point of the quota center: a unit of budget leaves the main bucket only
-- through a ledger row written here. Redis state can always be rebuilt from these two tables.

CREATE TABLE budgets (
    budget_id     text PRIMARY KEY CHECK (length(budget_id) BETWEEN 1 AND 256),
    unit          text NOT NULL CHECK (length(unit) BETWEEN 1 AND 64),
    -- Redis Lua numbers are doubles: every amount must stay an exact integer there.
    total         bigint NOT NULL CHECK (total >= 0 AND total <= 9007199254740991),
    -- The total at creation, kept so a retried create can be recognised after later top-ups.
    initial_total bigint NOT NULL CHECK (initial_total >= 0 AND initial_total <= total),
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'closed')),
    valid_from    timestamptz NULL,
    valid_until   timestamptz NULL,
    policy        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(policy) = 'object'),
    sub_buckets   integer NOT NULL CHECK (sub_buckets >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until)
);

CREATE INDEX budgets_state_id ON budgets (state, budget_id);

-- One row per movement of budget between two holders. transfer_id is UNIQUE over the whole table:
-- it is the idempotency key, and the race between a late write and a sweeper's abort is decided by
-- whichever insert of that id commits first.
CREATE TABLE ledger (
    seq         bigserial PRIMARY KEY,
    budget_id   text NOT NULL REFERENCES budgets (budget_id),
    transfer_id text NOT NULL UNIQUE CHECK (length(transfer_id) BETWEEN 1 AND 1024),
    kind        text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,31}$'),
    from_holder text NOT NULL CHECK (length(from_holder) BETWEEN 1 AND 256),
    to_holder   text NOT NULL CHECK (length(to_holder) BETWEEN 1 AND 256),
    amount      bigint NOT NULL CHECK (amount >= 0 AND amount <= 9007199254740991),
    actor       text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Marker rows move nothing; a self-transfer of a positive amount would be a bug upstream.
    CHECK (kind NOT IN ('abort', 'state') OR amount = 0),
    CHECK (from_holder <> to_holder OR amount = 0)
);

CREATE INDEX ledger_budget_seq ON ledger (budget_id, seq);

-- History is never rewritten: corrections are new rows.
CREATE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TRIGGER ledger_no_truncate
    BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
