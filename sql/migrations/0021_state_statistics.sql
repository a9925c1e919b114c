-- 0021: the planner learns that a run's state name decides its state type. The listings of a state name
-- (`flow_run_page(p_state_name => 'TimedOut')`, `pgflow flow-run ls --state …`) filter on both columns,
-- and PostgreSQL multiplies their selectivities as if they were independent: with 10,000,000 runs it
-- expected 2 TimedOut runs where 9,900 were, read them all and sorted them instead of walking the
-- partitions' index in order (scripts/bench-history.sh at 10M: p50 18.9 ms, p99 28.1 ms, the one listing
-- over the 20 ms goal; 0.35 ms with the statistics). Extended statistics (functional dependencies and the
-- pair's most common values) on (state_type, state_name) fix the estimate: on every partition of
-- flow_runs (the planner reads a partition's own statistics), and on the parent, from which each week
-- made later copies them (_ensure_history_week: LIKE … INCLUDING STATISTICS). ANALYZE fills them (it
-- samples each partition: seconds, not a rewrite).

CREATE STATISTICS pgflow.flow_runs_state (dependencies, mcv) ON state_type, state_name FROM pgflow.flow_runs;
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT t.relid FROM pg_partition_tree('pgflow.flow_runs') t WHERE t.isleaf LOOP
        EXECUTE format('CREATE STATISTICS pgflow.%I (dependencies, mcv) ON state_type, state_name FROM %s',
                       (SELECT c.relname FROM pg_class c WHERE c.oid = p) || '_state', p);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION pgflow._ensure_history_week(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_week    date := pgflow._history_week(p_day::timestamp AT TIME ZONE 'UTC');
    v_lo      uuid := pgflow._history_week_lo(v_week);
    v_hi      uuid := pgflow._history_week_hi(v_week);
    v_new     text[] := '{}';  -- the tables whose partition of the week is made here
    v_part    text;
    v_cols    text;
    v_options text;
    t         record;
BEGIN
    -- first each partition apart, with its indexes (copies of the parent's, which ATTACH adopts instead of
    -- building) and extended statistics (0021), and the week's rows waiting in the default partition: no
    -- lock that stops the hot path
    FOR t IN SELECT * FROM pgflow._history_tables() LOOP
        v_part := t.name || '_w' || to_char(v_week, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('pgflow.' || v_part) IS NOT NULL;
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
          FROM pg_attribute WHERE attrelid = format('pgflow.%I', t.name)::regclass AND attnum > 0 AND NOT attisdropped;
        -- the default partition's storage settings (its old rows' table when it is split, below)
        SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') INTO v_options
          FROM pg_class WHERE oid = coalesce(to_regclass(format('pgflow.%I', t.name || '_legacy')),
                                             format('pgflow.%I', t.name || '_default')::regclass);
        EXECUTE format('CREATE TABLE pgflow.%I (LIKE pgflow.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING STATISTICS)%s',
                       v_part, t.name, v_options);
        EXECUTE format('REVOKE ALL ON pgflow.%I FROM PUBLIC', v_part);
        EXECUTE format('WITH m AS (DELETE FROM pgflow.%I WHERE %I >= %L AND %I < %L RETURNING %s) INSERT INTO pgflow.%I (%s) SELECT %s FROM m',
                       t.name || '_default', t.key, v_lo, t.key, v_hi, v_cols, v_part, v_cols, v_cols);
        v_new := v_new || t.name;
    END LOOP;
    -- then the six ATTACHes, back to back: each holds its default partition in ACCESS EXCLUSIVE mode (the
    -- hot path waits) until the transaction ends; flow_runs first, the order in which the hot path locks
    FOR t IN SELECT * FROM pgflow._history_tables() WHERE name = ANY (v_new) ORDER BY name = 'flow_runs' DESC LOOP
        EXECUTE format('ALTER TABLE pgflow.%I ATTACH PARTITION pgflow.%I FOR VALUES FROM (%L) TO (%L)',
                       t.name, t.name || '_w' || to_char(v_week, 'YYYYMMDD'), v_lo, v_hi);
    END LOOP;
    RETURN cardinality(v_new) > 0;
EXCEPTION WHEN lock_not_available THEN  -- busy (lock_timeout): a later call makes the week (2 days ahead)
    RETURN false;
END $$;
ALTER FUNCTION pgflow._ensure_history_week(date) SET lock_timeout = '500ms';

ANALYZE pgflow.flow_runs;
