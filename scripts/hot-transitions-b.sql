-- Experiment (not a migration): flow_runs' transitions as HOT updates, nothing in place of what is dropped.
-- (Built as migration 0024, which drops these indexes: this file applies to schemas before 0024 only.)
-- Appended to sql/schema.sql for an A/B schema file, or PGFLOW_BENCH_SQL=scripts/hot-transitions-b.sql:
--   scripts/bench-drain-cpu.sh 5 20000 sql/schema.sql <(cat sql/schema.sql scripts/hot-transitions-b.sql)
-- Drops the four indexes whose key, INCLUDE list or predicate names a column a transition changes (so
-- no transition can be HOT) and gives flow_runs' partitions fillfactor 40: a claim or a completion
-- rewrites every run of a batch, that is every row of a page at once, so a page needs room for all its
-- rows' new versions (at fillfactor 70 only 55 % of the updates found room, at 50 71 %, at 40 91 %).
-- Week partitions made later copy the default partition's settings (pgflow._ensure_history_week).
-- What reads the dropped indexes then scans the history: see scripts/hot-transitions-c.sql and
-- BENCHMARKS.md, "HOT transitions".
DROP INDEX pgflow.flow_runs_active, pgflow.flow_runs_ended, pgflow.flow_runs_failed, pgflow.flow_runs_active_created;
DO $$
DECLARE
    p text;
BEGIN
    FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'pgflow.flow_runs'::regclass AND c.relkind = 'r' LOOP
        EXECUTE format('ALTER TABLE pgflow.%I SET (fillfactor = 40)', p);
    END LOOP;
END $$;
