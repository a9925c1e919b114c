-- What the dashboard reads (0010_dashboard.sql): activity and counts by state over a window, failing
-- deployments, late runs, a deployment's waiting runs, a run's task timeline with subflows nested,
-- a limit's holders; bad input is refused with 22023, unknown objects with P0002.
BEGIN;
SELECT plan(17);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
    RETURN v_state;
END $$;

SELECT pgflow.create_deployment('etl', 'daily', 'true');
SELECT pgflow.run_deployment('etl/daily') AS a \gset
SELECT pgflow.run_deployment('etl/daily') AS b \gset
SELECT pgflow.run_deployment('etl/daily', p_scheduled_time => now() - interval '10 minutes') AS late \gset
SELECT pgflow.cancel_flow_run(:'a', 'test');
SELECT pgflow.cancel_flow_run(:'b', 'test');
SELECT pgflow.mark_late_runs(interval '1 minute');

-- counts: finished runs of the window, waiting ones now
SELECT is((SELECT sum(runs)::int FROM pgflow.run_state_counts(now() - interval '1 hour') WHERE state_name = 'Cancelled'), 2, 'two cancelled runs in the window');
SELECT is((SELECT sum(runs)::int FROM pgflow.run_state_counts(now() - interval '1 hour') WHERE state_name = 'Late'), 1, 'one late run');
SELECT is((SELECT count(*)::int FROM pgflow.run_state_counts(now() + interval '1 hour') WHERE state_name = 'Cancelled'), 0, 'none finished after the window start');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.run_state_counts(NULL)$$), '22023', 'counts need a start');

-- activity: each run in one bucket
SELECT is((SELECT sum(runs)::int FROM pgflow.run_activity(now() - interval '1 hour', now() + interval '1 minute', interval '5 minutes')), 3, 'every run in the window once');
SELECT is((SELECT sum(runs)::int FROM pgflow.run_activity(now() - interval '1 hour', now() + interval '1 minute', interval '5 minutes') WHERE state_type = 'CANCELLED'), 2, 'by final state');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.run_activity(now(), now() - interval '1 hour', interval '1 minute')$$), '22023', 'the window must not run backwards');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.run_activity(now() - interval '30 days', now(), interval '1 minute')$$), '22023', 'at most 1000 buckets');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.run_activity(now() - interval '1 day', now(), interval '0 seconds')$$), '22023', 'buckets of a second or more');

-- late runs and a deployment's waiting runs
SELECT is((SELECT id FROM pgflow.late_flow_runs(10)), :'late'::uuid, 'the late run is listed');
SELECT is((SELECT count(*)::int FROM pgflow.deployment_upcoming_runs('etl/daily', 10)), 1, 'one run is waiting');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.deployment_upcoming_runs('etl/nope', 10)$$), 'P0002', 'unknown deployment');
SELECT is((SELECT count(*)::int FROM pgflow.failing_deployments(now() - interval '1 hour', 10)), 0, 'no deployment failed');

-- task timeline: a subflow's task runs nest under the task that ran it
SELECT pgflow.create_task_run(:'late', 'parent-task', p_name => 'parent task') AS t1 \gset
SELECT pgflow.run_deployment('etl/daily', p_parent_task_run_id => :'t1') AS child \gset
SELECT pgflow.create_task_run(:'child', 'child-task', p_name => 'child task') AS t2 \gset
SELECT results_eq($$SELECT depth, name, subflow_run_id FROM pgflow.flow_run_task_timeline('$$ || :'late' || $$')$$,
                  $$VALUES (0, 'parent task'::text, '$$ || :'child' || $$'::uuid), (1, 'child task', NULL)$$,
                  'the subflow''s task under its parent task');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.flow_run_task_timeline(gen_random_uuid())$$), 'P0002', 'unknown run');

-- holders of a limit
SELECT pgflow.create_concurrency_limit('db', 2);
SELECT is((SELECT count(*)::int FROM pgflow.concurrency_limit_holders('db')), 0, 'nobody holds a new limit');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.concurrency_limit_holders('nope')$$), 'P0002', 'unknown limit');

SELECT * FROM finish();
ROLLBACK;
