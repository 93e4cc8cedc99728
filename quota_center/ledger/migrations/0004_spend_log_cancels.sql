-- 0004: cancelled reservations in the spend log.
--
-- A cancel moves nothing consumed, but after a Redis loss its retry must still get its answer
-- (EXISTS with what it released), and a confirm retried after the loss must tell a cancelled
-- reservation from one never made. So cancels are logged like deductions; the settlement counts
-- only deductions and returns (spend_log.consumption).

ALTER TABLE spend_log DROP CONSTRAINT spend_log_kind_check;
ALTER TABLE spend_log ADD CONSTRAINT spend_log_kind_check CHECK (kind IN ('deduct', 'return', 'cancel'));
