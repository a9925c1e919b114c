-- 0018: a placeholder on branch `retention` only, so that gen-sql.sh (versions without gaps) and the
-- tests run while main's own 0018 is being written. At the merge, DELETE THIS FILE and keep main's 0018
-- (then run scripts/gen-sql.sh): retention is 0019.
SELECT 1;
