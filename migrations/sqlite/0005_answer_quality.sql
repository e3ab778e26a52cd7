-- Answer quality (issue 16): the same columns as Postgres's 0006_answer_quality.sql.

ALTER TABLE completions ADD COLUMN selection TEXT;
ALTER TABLE completions ADD COLUMN commit_uid INTEGER;
ALTER TABLE completions ADD COLUMN commit_chars INTEGER;
ALTER TABLE completions ADD COLUMN commit_ms REAL;
ALTER TABLE completions ADD COLUMN failovers TEXT;

ALTER TABLE miner_responses ADD COLUMN axon TEXT;
ALTER TABLE miner_responses ADD COLUMN verdict TEXT;
ALTER TABLE miner_responses ADD COLUMN continuation INTEGER NOT NULL DEFAULT 0;

CREATE INDEX miner_responses_judged_created_at ON miner_responses (created_at)
    WHERE verdict IS NOT NULL AND verdict <> 'unknown';
