-- 0011: reserved for the history-listing indexes (another branch). This placeholder only keeps the
-- migration numbers of the drain branch without a gap (scripts/gen-sql.sh refuses gaps); drop it when
-- the real 0011 is merged.
SELECT 1;
