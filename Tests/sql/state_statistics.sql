-- 0021: extended statistics on (state_type, state_name) of every flow_runs partition, so that a listing of
-- a state name is estimated from the name alone (the name decides the type) and walks the partitions'
-- index in order instead of reading and sorting every run of that name.
BEGIN;
SELECT plan(5);

SELECT is((SELECT count(*)::int FROM pg_partition_tree('pgflow.flow_runs') t
            WHERE t.isleaf AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext s
                                            WHERE s.stxrelid = t.relid AND s.stxkind @> ARRAY['f', 'm']::"char"[])),
          0, 'every partition of flow_runs has dependency and MCV statistics');

-- a week made later copies them from the parent
SELECT ok(pgflow._ensure_history_week((now() + interval '70 days')::date), 'a week 10 weeks ahead is made');
SELECT is((SELECT count(*)::int FROM pg_statistic_ext s
            WHERE s.stxrelid = format('pgflow.flow_runs_w%s', to_char(pgflow._history_week(now() + interval '70 days'), 'YYYYMMDD'))::regclass
              AND s.stxkind @> ARRAY['f', 'm']::"char"[]),
          1, '... with the statistics');

-- the estimate: 100,000 finished runs in the default partition, 1 in 1,000 TimedOut and 1 in 100 Failed
-- (both FAILED); without the statistics PostgreSQL expects about one TimedOut run (0.1 % of names times
-- 1.1 % FAILED types), with them about 100
SELECT pgflow.create_deployment('st', 'd', './d.sh');
SET LOCAL session_replication_role = replica;
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, parameters, tags, run_count,
                              state_type, state_name, state_timestamp, created_at, end_time, expected_start_time)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(k), 12, '0'))::uuid, 'st-' || k, d.flow_id, d.id, d.work_queue_id,
       '{}', '{}', 1,
       CASE WHEN k % 1000 = 1 OR k % 100 = 0 THEN 'FAILED' ELSE 'COMPLETED' END::pgflow.state_type,
       CASE WHEN k % 1000 = 1 THEN 'TimedOut' WHEN k % 100 = 0 THEN 'Failed' ELSE 'Completed' END,
       now() - k * interval '1 s', now() - k * interval '1 s', now() - k * interval '1 s', now() - k * interval '1 s'
  FROM generate_series(1, 100000) k CROSS JOIN pgflow.deployments d WHERE d.name = 'd';
SET LOCAL session_replication_role = DEFAULT;
SELECT pgflow._fill_run_sides();  -- (the side rows of runs written straight into flow_runs, 0024)
ANALYZE pgflow.flow_runs;
CREATE FUNCTION pg_temp.estimate(q text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    v json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO v;
    RETURN (v -> 0 -> 'Plan' ->> 'Plan Rows')::numeric;
END $$;
SELECT cmp_ok(pg_temp.estimate($$SELECT 1 FROM pgflow.flow_runs_default r WHERE r.state_type = 'FAILED' AND r.state_name = 'TimedOut'$$),
              '>=', 50::numeric, 'the TimedOut runs are estimated from the name (100 of them)');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_state_name => 'TimedOut', p_limit => 50)), 50,
          'the TimedOut page has its 50 runs');

SELECT * FROM finish();
ROLLBACK;
