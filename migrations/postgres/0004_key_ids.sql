-- Key ids (issue #17, finding 7). An API key's id used to be `static-` + 12 hex digits of an
-- unsalted SHA-256 of the key, so a weak key could be recovered from its id by trying guesses.
-- The api now writes `kid-` + an HMAC-SHA256 keyed with the server-side KEY_ID_SECRET, which
-- SQL cannot compute for old rows (the keys are not stored). Old ids become opaque
-- `legacy-<n>`: the rows of one old key keep one id (n numbers the old keys in the order of
-- their first request), and the hash is gone. Safe to run again (n continues after the
-- highest legacy number), e.g. for rows an old api replica wrote during a rolling upgrade.
-- The same statement is in migrations/sqlite/0003_key_ids.sql.
WITH old AS (
    SELECT api_key_id AS id,
           row_number() OVER (ORDER BY min(created_at), api_key_id) AS n
    FROM completions
    WHERE api_key_id LIKE 'static-%'
    GROUP BY api_key_id
),
base AS (
    SELECT count(DISTINCT api_key_id) AS n FROM completions WHERE api_key_id LIKE 'legacy-%'
)
UPDATE completions
SET api_key_id = 'legacy-' || ((SELECT n FROM base) + (SELECT n FROM old WHERE old.id = completions.api_key_id))
WHERE api_key_id LIKE 'static-%';
