-- Bad input raises with a clear message, an SQLSTATE and a HINT, and writes nothing.
BEGIN;
SELECT plan(31);

-- err(sql): 'SQLSTATE: message' when sql raises with a HINT, 'no hint: ...' without, 'no error' if it runs
CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text; v_msg text; v_hint text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
    RETURN CASE WHEN coalesce(v_hint, '') = '' THEN 'no hint: ' ELSE '' END || v_state || ': ' || v_msg;
END $$;

SELECT pgflow.create_deployment('bad', 'dep', './b.sh');
SELECT pgflow.create_deployment('other', 'dep', './o.sh');
SELECT pgflow.register_agent('agent', ARRAY['default']) AS agent \gset
SELECT pgflow.run_deployment('bad/dep') AS run \gset
SELECT count(*) AS runs_before FROM pgflow.flow_runs \gset
SELECT count(*) AS states_before FROM pgflow.flow_run_states \gset

-- unknown things
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('nope/dep')$$), 'P0002: pgflow: unknown deployment ''nope/dep''', 'unknown deployment');
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('dep')$$), 'P0003: pgflow: deployment name ''dep'' is used by 2 flows', 'ambiguous deployment name');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('bad', 'x', './x.sh', p_work_queue => 'nope')$$), 'P0002: pgflow: unknown work queue ''nope''', 'unknown work queue');
SELECT is(pg_temp.err($$SELECT pgflow.set_flow_run_state('00000000-0000-0000-0000-000000000000', 'RUNNING')$$),
          'P0002: pgflow: unknown flow run 00000000-0000-0000-0000-000000000000', 'unknown flow run');
SELECT is(pg_temp.err($$SELECT pgflow.set_task_run_state('00000000-0000-0000-0000-000000000000', 'RUNNING')$$),
          'P0002: pgflow: unknown task run 00000000-0000-0000-0000-000000000000', 'unknown task run');
SELECT is(pg_temp.err($$SELECT pgflow.heartbeat('00000000-0000-0000-0000-000000000000')$$),
          'P0002: pgflow: unknown agent 00000000-0000-0000-0000-000000000000', 'unknown agent');
SELECT is(pg_temp.err($$SELECT pgflow.acquire_concurrency_slots(ARRAY['nope'])$$), 'P0002: pgflow: unknown concurrency limit ''nope''', 'unknown limit');
SELECT is(pg_temp.err($$SELECT pgflow.schedule_flow_runs('00000000-0000-0000-0000-000000000000', '{}')$$),
          'P0002: pgflow: unknown deployment schedule 00000000-0000-0000-0000-000000000000', 'unknown schedule');

-- malformed values
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('bad/dep', '[1, 2]')$$), '22023: pgflow: parameters must be a JSON object, got array', 'parameters that are not an object');
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('bad/dep', NULL)$$), '22023: pgflow: parameters must be a JSON object, got NULL', 'NULL parameters');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('bad', 'x', './x.sh', '"text"')$$), '22023: pgflow: deployment parameters must be a JSON object, got string', 'deployment defaults that are not an object');
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('bad/dep', p_tags => ARRAY['', 'x'])$$), '22023: pgflow: tags must not be NULL or empty, got {"",x}', 'empty tags');
SELECT is(pg_temp.err($$SELECT pgflow.create_work_queue('q', p_concurrency_limit => -1)$$), '22023: pgflow: work queue concurrency limit must not be negative, got -1', 'negative queue limit');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('bad', 'x', './x.sh', p_concurrency_limit => -2)$$), '22023: pgflow: deployment concurrency limit must not be negative, got -2', 'negative deployment limit');
SELECT is(pg_temp.err($$SELECT pgflow.create_concurrency_limit('db', -3)$$), '22023: pgflow: concurrency limit must not be negative, got -3', 'negative global limit');
SELECT is(pg_temp.err($$SELECT pgflow.create_work_queue('q', 0)$$), '22023: pgflow: work queue priority must be 1 or more, got 0', 'priority below 1');
SELECT is(pg_temp.err($$SELECT pgflow.create_work_queue('no spaces')$$), '22023: pgflow: invalid work queue name ''no spaces''', 'bad queue name');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('bad', 'x', './x.sh', p_collision_strategy => 'KILL_OLD')$$), '22023: pgflow: invalid collision strategy ''KILL_OLD''', 'unknown collision strategy');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('bad', 'x', './x.sh', p_retries => -1)$$), '22023: pgflow: retries must be 0 or more, got -1', 'negative retries');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('bad', 'x', './x.sh', p_retry_backoff => 'fixed', p_retry_delays => '{1,2}')$$), '22023: pgflow: invalid retry delays {1,2} for backoff fixed', 'a list of delays for a fixed backoff');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment_schedule('bad/dep', 'cron', 'every day')$$), '22023: pgflow: invalid cron expression ''every day'': expected 5 fields (minute hour day-of-month month day-of-week), got 2', 'bad cron');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment_schedule('bad/dep', 'interval', '-1 hour')$$), '22023: pgflow: invalid schedule interval ''-1 hour'': an interval must be 1 second to 10 years', 'negative interval');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment_schedule('bad/dep', 'cron', '0 6 * * *', 'Mars/Olympus')$$), '22023: pgflow: unknown time zone ''Mars/Olympus''', 'unknown time zone');

-- invalid states
SELECT is(pg_temp.err($$SELECT pgflow.set_flow_run_state('$$ || :'run' || $$', 'FINISHED')$$), '22023: pgflow: invalid state type ''FINISHED''', 'invalid state type');
SELECT is(pg_temp.err($$SELECT pgflow.set_flow_run_state('$$ || :'run' || $$', 'COMPLETED', 'Running')$$), '22023: pgflow: invalid state name ''Running'' for state type COMPLETED', 'a name of another type');
SELECT is(pg_temp.err($$SELECT pgflow.set_flow_run_state('$$ || :'run' || $$', 'SCHEDULED', 'Whenever')$$), '22023: pgflow: invalid state name ''Whenever'' for state type SCHEDULED', 'an unknown state name');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.set_flow_run_states(ARRAY['$$ || :'run' || $$']::uuid[], ARRAY['RUNNING', 'FAILED'])$$),
          '22023: pgflow: the arrays of a batch transition must be non-empty and of one length (1 run ids)', 'batch arrays of different lengths');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.set_flow_run_states(ARRAY['$$ || :'run' || $$', '$$ || :'run' || $$']::uuid[], ARRAY['RUNNING', 'FAILED'])$$),
          '22023: pgflow: a batch transition names a run twice or a NULL run', 'one run twice in a batch');
SELECT is(pg_temp.err($$SELECT pgflow.create_flow_run('adhoc', p_state_type => 'SCHEDULED')$$), '22023: pgflow: an ad-hoc flow run starts PENDING or RUNNING, not ''SCHEDULED''', 'ad-hoc runs are not queued');
SELECT matches(pg_temp.err($$SELECT pgflow.retry_flow_run(pgflow.create_flow_run('adhoc'))$$), '^55000: pgflow: flow run \S+ has no work queue', 'an ad-hoc run cannot be retried by agents');

-- nothing was written by any of the above
SELECT results_eq($$SELECT (SELECT count(*) FROM pgflow.flow_runs), (SELECT count(*) FROM pgflow.flow_run_states)$$,
                  $$VALUES ($$ || :runs_before || $$::bigint, $$ || :states_before || $$::bigint)$$, 'failed calls wrote nothing');

SELECT * FROM finish();
ROLLBACK;
