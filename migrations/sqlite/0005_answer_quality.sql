-- Answer quality (issue 16): the same columns as Postgres's 0006_answer_quality.sql.

ALTER TABLE completions ADD COLUMN selection TEXT;
ALTER TABLE completions ADD COLUMN commit_uid INTEGER;
ALTER TABLE completions ADD COLUMN commit_chars INTEGER;
ALTER TABLE completions ADD COLUMN commit_ms REAL;
ALTER TABLE completions ADD COLUMN failovers TEXT;

ALTER TABLE miner_responses ADD COLUMN axon TEXT;
ALTER TABLE miner_responses ADD COLUMN verdict TEXT;
ALTER TABLE miner_responses ADD COLUMN continuation INTEGER NOT NULL DEFAULT 0;

-- Covering (every column the score refresh reads), so SQLite never looks up the table row.
CREATE INDEX miner_responses_judged_created_at
    ON miner_responses (created_at, hotkey, axon, verdict, time_to_first_byte_ms)
    WHERE verdict IS NOT NULL AND verdict <> 'unknown' AND axon IS NOT NULL;
