-- The first migration: an anchor for the schema. Tables come in the migrations that follow
-- (metagraph snapshots, audit log).
SELECT 1;
