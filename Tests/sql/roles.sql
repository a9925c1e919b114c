-- Least privilege (0003): no role writes a table, PUBLIC executes nothing, the API runs SECURITY
-- DEFINER with a pinned search_path, and each role can do its duty and nothing else.
BEGIN;
SELECT plan(24);

-- as(role, sql): the SQLSTATE sql raises when run as role ('none' when it runs)
CREATE FUNCTION pg_temp.as_role(p_role text, p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', p_role);
    EXECUTE p_sql;
    RESET ROLE;
    RETURN 'none';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
    RETURN v_state;
END $$;

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_deployment('ro', 'dep', './r.sh', p_now => :t0);
SELECT pgflow.create_deployment_schedule('ro/dep', 'interval', '1 hour', p_anchor_date => :t0, p_now => :t0) AS sched \gset
SELECT pgflow.run_deployment('ro/dep', p_now => :t0) AS run \gset

-- the grants themselves
SELECT is((SELECT count(*)::integer FROM pg_tables t, unnest(ARRAY['pgflow_agent', 'pgflow_scheduler', 'pgflow_api', 'pgflow_reader', 'pgflow_admin']) r,
                  unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
            WHERE t.schemaname = 'pgflow' AND has_table_privilege(r, format('pgflow.%I', t.tablename), p)), 0,
          'no role may insert, update, delete or truncate any pgflow table');
SELECT is((SELECT count(*)::integer FROM pg_proc p WHERE p.pronamespace = 'pgflow'::regnamespace
              AND has_function_privilege('public', p.oid, 'EXECUTE')), 0, 'PUBLIC may execute no pgflow function');
SELECT is((SELECT array_agg(p.proname ORDER BY p.proname) FROM pg_proc p
            WHERE p.pronamespace = 'pgflow'::regnamespace AND p.proname !~ '^_'
              AND p.proname NOT IN ('state_type_of', 'is_terminal', 'retry_delay', 'random_run_name', 'notify', 'bounds', 'schedule_error')
              AND NOT (p.prosecdef AND 'search_path=pg_catalog, pgflow, pg_temp' = ANY (p.proconfig))), NULL,
          'every API function is SECURITY DEFINER with search_path pg_catalog, pgflow, pg_temp');
SELECT is((SELECT count(*)::integer FROM pg_proc p WHERE p.pronamespace = 'pgflow'::regnamespace AND p.proname ~ '^_'
              AND (has_function_privilege('pgflow_agent', p.oid, 'EXECUTE') OR has_function_privilege('pgflow_scheduler', p.oid, 'EXECUTE')
                   OR has_function_privilege('pgflow_reader', p.oid, 'EXECUTE'))), 0,
          'no internal function is granted to the agent, scheduler or reader');

-- the agent: a real claim and state cycle, the SDK's task runs and direct reads
SELECT is(pg_temp.as_role('pgflow_agent', 'DELETE FROM pgflow.flow_runs'), '42501', 'an agent cannot DELETE FROM pgflow.flow_runs');
SELECT is(pg_temp.as_role('pgflow_agent', $$UPDATE pgflow.flow_runs SET state_name = 'Completed'$$), '42501', 'an agent cannot UPDATE a flow run');
SELECT is(pg_temp.as_role('pgflow_agent', 'INSERT INTO pgflow.run_queue SELECT * FROM pgflow.run_queue'), '42501', 'an agent cannot write the run queue');
SELECT is(pg_temp.as_role('pgflow_agent', $$SELECT pgflow._transition_flow_runs('{}', NULL, now())$$), '42501', 'an agent cannot call the internal state machine');
SELECT is(pg_temp.as_role('pgflow_agent', $$SELECT pgflow.create_deployment('ro', 'x', './x.sh')$$), '42501', 'an agent cannot create deployments');
SET LOCAL ROLE pgflow_agent;
SELECT pgflow.register_agent('worker', ARRAY['default'], :t0) AS agent \gset
SELECT flow_run_id AS claimed, timeout_seconds IS NULL AS no_timeout
  FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true, :t0) \gset
SELECT pgflow.create_task_run(:'claimed', 'extract', p_now => :t0) AS task \gset
SELECT string_agg(status, ',') AS task_states FROM pgflow.set_task_run_states(ARRAY[:'task']::uuid[], ARRAY['RUNNING'], p_now => :t0) \gset
SELECT pgflow.write_log(:'claimed', 20, 'hello', p_now => :t0);
SELECT status AS completed FROM pgflow.set_flow_run_state(:'claimed', 'COMPLETED', p_result => '42', p_agent_id => :'agent', p_now => :t0) \gset
SELECT state_name AS read_state FROM pgflow.flow_run_history WHERE id = :'claimed' \gset
SELECT value::text AS read_result FROM pgflow.results WHERE run_id = :'claimed' \gset
SELECT count(*) AS beats FROM pgflow.heartbeat(:'agent', :t0) \gset
RESET ROLE;
SELECT is(:'claimed'::text, :'run'::text, 'the agent claimed the run (as pgflow_agent)');
SELECT is(:'task_states'::text, 'ACCEPTED', 'it ran a task run');
SELECT is(:'completed'::text, 'ACCEPTED', 'it completed the run');
SELECT is(:'read_state' || ' ' || :'read_result', 'Completed 42', 'it reads the run''s state (history view) and result');

-- the scheduler: materialise a schedule and do maintenance
SELECT is(pg_temp.as_role('pgflow_scheduler', $$SELECT pgflow.create_deployment('ro', 'x', './x.sh')$$), '42501', 'the scheduler cannot create deployments');
SELECT is(pg_temp.as_role('pgflow_scheduler', 'DELETE FROM pgflow.deployment_schedules'), '42501', 'the scheduler cannot delete schedules by hand');
SET LOCAL ROLE pgflow_scheduler;
SELECT count(*) AS locked FROM pgflow.deployment_schedule_batch(NULL, 10, true) \gset
SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[:t0::timestamptz + '1 hour', :t0::timestamptz + '2 hours'], :t0) \gset
SELECT pgflow.reap_crashed_runs('1 minute', :t0) + pgflow.mark_late_runs('1 minute', :t0) + pgflow.expire_paused_runs(:t0)
     + pgflow.release_expired_slots(:t0) + pgflow.delete_old_runs('30 days', 100, :t0)
     + pgflow.cancel_missed_runs('skip', '1 minute', :t0) AS maintenance \gset
RESET ROLE;
SELECT is(:'locked' || '/' || :'inserted', '1/2', 'the scheduler locks its schedules and materialises two runs');
SELECT is(:'maintenance'::text, '0', 'it runs the reaper, late runs, pauses, leases, retention and missed runs');

-- the API: configuration, enqueue, cancel; no table writes
SELECT is(pg_temp.as_role('pgflow_api', 'DELETE FROM pgflow.deployments'), '42501', 'the API cannot delete rows by hand');
SET LOCAL ROLE pgflow_api;
SELECT pgflow.create_deployment('ro', 'api', './a.sh', p_now => :t0) IS NOT NULL AS created \gset
SELECT pgflow.run_deployment('ro/api', p_now => :t0) AS api_run \gset
SELECT state_name AS cancelled FROM pgflow.cancel_flow_run(:'api_run', p_now => :t0) \gset
SELECT count(*) AS listed FROM pgflow.flow_run_history \gset
RESET ROLE;
SELECT is(:'created' || ' ' || :'cancelled', 't Cancelled', 'the API creates a deployment, enqueues and cancels a run');

-- the reader: views only
SELECT is(pg_temp.as_role('pgflow_reader', $$SELECT pgflow.run_deployment('ro/dep')$$), '42501', 'a reader cannot run_deployment');
SELECT is(pg_temp.as_role('pgflow_reader', 'SELECT * FROM pgflow.flow_runs'), '42501', 'a reader cannot read the tables');
SET LOCAL ROLE pgflow_reader;
SELECT count(*) AS seen FROM pgflow.flow_run_history \gset
SELECT count(*) AS queues FROM pgflow.queue_status \gset
RESET ROLE;
SELECT is(:'seen'::text, :'listed'::text, 'a reader reads the run history');
SELECT ok(:'queues'::integer > 0, 'and the queue status');

-- the admin reads every table but writes none by hand
SELECT is(pg_temp.as_role('pgflow_admin', 'DELETE FROM pgflow.flow_runs'), '42501', 'not even the admin deletes rows by hand');

SELECT * FROM finish();
ROLLBACK;
