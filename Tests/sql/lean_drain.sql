-- 0028: the claim's start orders a batch in linear time and looks up each (flow, deployment, queue) of the
-- batch once; an agent's completion takes its fast path without first probing that every run exists (the
-- check runs, with its error, only when the fast path does not apply).
BEGIN;
SELECT plan(13);

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT pgflow.create_work_queue('ld');
SELECT pgflow.create_deployment('ld', 'a', './a.sh', p_work_queue => 'ld');
SELECT pgflow.create_deployment('ld', 'b', './b.sh', p_work_queue => 'ld', p_timeout_seconds => 30);
SELECT pgflow.register_agent('lean-drain', ARRAY['ld']) AS agent \gset
-- six runs of two deployments, due in an order that is neither their ids' nor their deployments'
CREATE TEMP TABLE due AS
SELECT n, CASE WHEN n % 2 = 0 THEN 'ld/a' ELSE 'ld/b' END AS dep,
       pgflow.run_deployment(CASE WHEN n % 2 = 0 THEN 'ld/a' ELSE 'ld/b' END,
                             p_scheduled_time => now() - make_interval(secs => 60 - (7 * n) % 6)) AS run
  FROM generate_series(1, 6) n;
CREATE TEMP TABLE claimed AS
SELECT row_number() OVER () AS pos, c.* FROM pgflow.claim_flow_runs(:'agent', NULL, 6, true) c;

SELECT is((SELECT count(*)::int FROM claimed), 6, 'the claim starts all six');
SELECT is(ARRAY(SELECT flow_run_id FROM claimed ORDER BY pos),
          ARRAY(SELECT d.run FROM due d JOIN pgflow.flow_runs r ON r.id = d.run ORDER BY r.expected_start_time, d.run),
          'in the order they were due');
SELECT is((SELECT count(*)::int FROM claimed c JOIN due d ON d.run = c.flow_run_id
            WHERE c.flow_name || '/' || c.deployment_name = d.dep
              AND c.entrypoint = CASE d.dep WHEN 'ld/a' THEN './a.sh' ELSE './b.sh' END
              AND c.timeout_seconds IS NOT DISTINCT FROM CASE d.dep WHEN 'ld/b' THEN 30::float8 END
              AND c.work_queue = 'ld' AND c.state_name = 'Running'),
          6, 'each with its own deployment''s name, entrypoint and timeout, and its queue');
SELECT is(ARRAY(SELECT s.flow_run_id FROM pgflow.flow_run_states s WHERE s.flow_run_id IN (SELECT run FROM due)
                   AND s.state_type = 'PENDING' ORDER BY s.id),
          ARRAY(SELECT flow_run_id FROM claimed ORDER BY pos),
          'their Pending state rows were written in that order');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states s JOIN claimed c ON c.flow_run_id = s.flow_run_id
            WHERE s.state_type = 'RUNNING'
              AND s.id = (SELECT p.id FROM pgflow.flow_run_states p WHERE p.flow_run_id = s.flow_run_id AND p.state_type = 'PENDING') + 1),
          6, 'each Running row right after its run''s Pending row');
SELECT unalike((SELECT prosrc FROM pg_proc WHERE oid = 'pgflow.claim_flow_runs'::regproc), '%array_position%',
               'no search of the candidate array per run (quadratic in the batch)');

-- completions: the fast path without an existence probe per run
SET LOCAL track_functions = 'all';
SELECT is((SELECT count(*)::int FROM pgflow.set_flow_run_states(ARRAY(SELECT flow_run_id FROM claimed ORDER BY pos LIMIT 3),
                                                               array_fill('COMPLETED'::text, ARRAY[3]), p_agent_id => :'agent') t
            WHERE t.status = 'ACCEPTED' AND t.state_name = 'Completed'),
          3, 'an agent completes three of its runs');
SELECT is((SELECT coalesce(sum(calls), 0)::int FROM pg_stat_xact_user_functions WHERE schemaname = 'pgflow' AND funcname = '_check_runs_exist'),
          0, '... on the fast path, without a check that they exist');
SELECT is(pg_temp.err(format($$SELECT pgflow.set_flow_run_states(ARRAY[%L, '00000000-0000-0000-0000-00000000beef']::uuid[],
                                                               ARRAY['COMPLETED', 'COMPLETED'], p_agent_id => %L)$$,
                             (SELECT flow_run_id FROM claimed WHERE pos = 4), :'agent')),
          'P0002: pgflow: unknown flow run 00000000-0000-0000-0000-00000000beef',
          'an unknown run in an agent''s completions is still named');
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = (SELECT flow_run_id FROM claimed WHERE pos = 4)), 'Running',
          '... and its batch changed nothing');
SELECT is(pg_temp.err(format($$SELECT pgflow.set_flow_run_states(ARRAY[%L]::uuid[], ARRAY['COMPLETED'], p_agent_id => gen_random_uuid())$$,
                             (SELECT flow_run_id FROM claimed WHERE pos = 4))) LIKE 'P0002: pgflow: unknown agent %',
          true, 'an unknown agent is refused');
SELECT coalesce(sum(calls), 0)::int AS checks_before FROM pg_stat_xact_user_functions WHERE schemaname = 'pgflow' AND funcname = '_check_runs_exist' \gset
-- the general path still serves a mixed batch (one run already Completed: refused, the other accepted)
SELECT results_eq(format($$SELECT t.status, t.state_name FROM pgflow.set_flow_run_states(ARRAY[%L, %L]::uuid[],
                                                          ARRAY['completed', 'COMPLETED'], p_agent_id => %L) t$$,
                         (SELECT flow_run_id FROM claimed WHERE pos = 1), (SELECT flow_run_id FROM claimed WHERE pos = 5), :'agent'),
                  $$VALUES ('REJECTED'::text, 'Completed'::text), ('ACCEPTED', 'Completed')$$,
                  'a batch the fast path cannot take goes the general way');
SELECT is((SELECT coalesce(sum(calls), 0)::int FROM pg_stat_xact_user_functions WHERE schemaname = 'pgflow' AND funcname = '_check_runs_exist')
          - :checks_before, 1, '... which checks that its runs exist');

SELECT * FROM finish();
ROLLBACK;
