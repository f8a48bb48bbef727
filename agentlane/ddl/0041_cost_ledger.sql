-- The cost ledger: what each run and each tenant's model use per day cost, in millionths of the
-- price table's currency, totalled from the costMicros its Usage events carry (agentlane.pricing).
-- Existing rows start at 0; `agentlane replay rebuild` recomputes them from the log.
ALTER TABLE read_runs ADD COLUMN cost_micros bigint NOT NULL DEFAULT 0;
ALTER TABLE read_usage_daily ADD COLUMN cost_micros bigint NOT NULL DEFAULT 0;
