-- 0012: reserved for another branch of issue 17 (the lead merges it). This placeholder only keeps the
-- sdk branch's migration numbers without a gap (scripts/gen-sql.sh refuses gaps); drop it when the
-- real 0012 is merged.
SELECT 1;
