-- Answer quality (issue 16): what the worker decided for each request, and how each reply
-- counts for its miner's reliability score. Every column is nullable or defaulted, so rows of
-- older workers stay valid.

ALTER TABLE completions
    ADD COLUMN selection    jsonb,             -- miners picked, in rank order, with the score each had
    ADD COLUMN commit_uid   integer,           -- the miner committed to
    ADD COLUMN commit_chars integer,           -- characters of usable text it had sent then
    ADD COLUMN commit_ms    double precision,  -- from the fan-out's start to the commit
    ADD COLUMN failovers    jsonb;             -- stalls and failovers: from_uid, to_uid, reason, at_chars, gap_ms

ALTER TABLE miner_responses
    ADD COLUMN axon         text,              -- ip:port asked (scores are per hotkey and axon)
    ADD COLUMN verdict      text,              -- usable / unusable / stalled / failed / unknown
    ADD COLUMN continuation boolean NOT NULL DEFAULT false;  -- asked to continue a stalled answer

-- The workers' score refresh (`verdict_buckets`) reads the recent judged replies every few
-- seconds; the index covers every column it reads, so it can run as an index-only scan (on
-- pages the visibility map marks all-visible) instead of fetching each row from the heap.
CREATE INDEX miner_responses_judged_created_at ON miner_responses (created_at)
    INCLUDE (hotkey, axon, verdict, time_to_first_byte_ms)
    WHERE verdict IS NOT NULL AND verdict <> 'unknown' AND axon IS NOT NULL;
