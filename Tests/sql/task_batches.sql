-- What the SDK's hot path uses: task runs created in batches (create_task_runs), transitions recorded
-- at the time they happened (p_timestamps), failures a retry condition refused (p_allow_retry) and
-- refreshed cache entries (p_cache_refresh).
BEGIN;
SELECT plan(38);

\set t0 '''2030-01-01 00:00:00+00'''
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

SELECT pgflow.create_flow_run('batch', p_state_type => 'RUNNING', p_now => :t0) AS flow \gset

-- create_task_runs: one statement, ids in input order, each Pending at its own time
CREATE TEMP TABLE made AS
SELECT id, ord FROM pgflow.create_task_runs(:'flow', ARRAY['a', 'b', 'c'], ARRAY['0', NULL, '7'], ARRAY['first', NULL, NULL],
                                            ARRAY['{"n": 1}', '{"n": 2}', '{}']::jsonb[], ARRAY['{z,y,z}', NULL, '{}'],
                                            ARRAY['key-a', NULL, NULL], ARRAY[interval '1 hour', NULL, NULL],
                                            ARRAY[2, 0, 0], ARRAY['{1,5}', '{0}', '{0}'], ARRAY['list', 'fixed', 'fixed'],
                                            ARRAY[0, 0, 0.5], ARRAY[:t0::timestamptz + '1 s', :t0::timestamptz + '2 s', NULL],
                                            ARRAY[false, true, NULL], p_now => :t0::timestamptz + '9 s')
       WITH ORDINALITY AS m(id, ord);
SELECT results_eq($$SELECT t.task_key, t.dynamic_key, t.name, t.inputs, t.tags, t.cache_key, t.cache_expiration, t.cache_refresh,
                           t.retries, t.retry_delays, t.retry_backoff, t.retry_jitter, t.created_at, t.state_name
                      FROM made m JOIN pgflow.task_runs t ON t.id = m.id ORDER BY m.ord$$,
                  $$VALUES ('a', '0', 'first', '{"n": 1}'::jsonb, '{y,z}'::text[], 'key-a', interval '1 hour', false, 2, '{1,5}'::float8[], 'list', 0::float8, '2030-01-01 00:00:01+00'::timestamptz, 'Pending'),
                           ('b', '0', 'b-0', '{"n": 2}', '{}', NULL, NULL, true, 0, '{0}', 'fixed', 0, '2030-01-01 00:00:02+00', 'Pending'),
                           ('c', '7', 'c-7', '{}', '{}', NULL, NULL, false, 0, '{0}', 'fixed', 0.5, '2030-01-01 00:00:09+00', 'Pending')$$,
                  'create_task_runs creates one task run per key, in input order, with defaults for NULL elements');
SELECT results_eq($$SELECT s.state_name, s."timestamp" FROM made m JOIN pgflow.task_run_states s ON s.task_run_id = m.id ORDER BY m.ord$$,
                  $$VALUES ('Pending', '2030-01-01 00:00:01+00'::timestamptz), ('Pending', '2030-01-01 00:00:02+00'), ('Pending', '2030-01-01 00:00:09+00')$$,
                  'each with one Pending history row at its creation time');
CREATE TEMP TABLE again AS
SELECT id, ord FROM pgflow.create_task_runs(:'flow', ARRAY['new1', 'c', 'a', 'new1', 'b'], ARRAY['0', '7', NULL, '0', '0'])
       WITH ORDINALITY AS r(id, ord);
SELECT results_eq($$SELECT id FROM again ORDER BY ord$$,
                  $$SELECT id FROM (VALUES (1, (SELECT id FROM pgflow.task_runs WHERE task_key = 'new1')), (2, (SELECT id FROM made WHERE ord = 3)),
                                           (3, (SELECT id FROM made WHERE ord = 1)), (4, (SELECT id FROM pgflow.task_runs WHERE task_key = 'new1')),
                                           (5, (SELECT id FROM made WHERE ord = 2))) v(o, id) ORDER BY o$$,
                  'existing keys return their task runs, a key given twice gets one, all in input order');
SELECT is((SELECT count(*) FROM pgflow.task_runs WHERE flow_run_id = :'flow'), 4::bigint, 'only the new key was created');
SELECT is((SELECT count(*) FROM pgflow.task_run_states s JOIN pgflow.task_runs t ON t.id = s.task_run_id WHERE t.task_key = 'new1'), 1::bigint,
          'with one Pending row');
SELECT is((SELECT count(*) FROM pgflow.create_task_runs(:'flow', '{}')), 0::bigint, 'an empty batch creates nothing');
CREATE TEMP TABLE defaults AS SELECT id, ord FROM pgflow.create_task_runs(:'flow', ARRAY['d1', 'd2']) WITH ORDINALITY AS r(id, ord);
SELECT results_eq($$SELECT t.task_key, t.dynamic_key, t.name, t.inputs, t.retries FROM defaults d JOIN pgflow.task_runs t ON t.id = d.id ORDER BY d.ord$$,
                  $$VALUES ('d1', '0', 'd1-0', '{}'::jsonb, 0), ('d2', '0', 'd2-0', '{}', 0)$$, 'only the task keys are required');

-- create_task_run is create_task_runs for one, and takes p_cache_refresh
SELECT is(pgflow.create_task_run(:'flow', 'a', '0'), (SELECT id FROM made WHERE ord = 1), 'create_task_run finds the batch''s task run');
SELECT pgflow.create_task_run(:'flow', 'solo', p_cache_refresh => true) AS solo \gset
SELECT is((SELECT cache_refresh FROM pgflow.task_runs WHERE id = :'solo'), true, 'create_task_run stores p_cache_refresh');
SELECT pgflow.create_task_run(:'flow', 'tagged', p_tags => ARRAY['x y', 'a,b']) AS tagged \gset
SELECT is((SELECT tags FROM pgflow.task_runs WHERE id = :'tagged'), ARRAY['a,b', 'x y'], 'tags with spaces and commas survive the array literal');

-- the same checks as create_task_run, before anything is written
SELECT count(*) AS task_runs_before FROM pgflow.task_runs \gset
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('00000000-0000-0000-0000-000000000000', ARRAY['a'])$$),
          'P0002: pgflow: unknown flow run 00000000-0000-0000-0000-000000000000', 'unknown flow run');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1', 'e2'], ARRAY['0'])$$),
          '22023: pgflow: the arrays of a batch of task runs must be of one length (2 task keys)', 'arrays of two lengths');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', NULL)$$),
          '22023: pgflow: the arrays of a batch of task runs must be of one length (0 task keys)', 'NULL task keys');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1', ''])$$),
          '22023: pgflow: a task run needs a task key', 'an empty task key');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1', 'e2'], p_inputs => ARRAY['{}', NULL]::jsonb[])$$),
          '22023: pgflow: task inputs must not be NULL', 'NULL inputs');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1'], p_cache_expirations => ARRAY[interval '-1 s'])$$),
          '22023: pgflow: cache expiration must not be negative, got -00:00:01', 'a negative cache expiration');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1', 'e2'], p_retries => ARRAY[0, -1])$$),
          '22023: pgflow: retries must be 0 or more, got -1', 'a bad retry policy in any row');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1'], p_retry_backoffs => ARRAY['fixed'], p_retry_delays => ARRAY['{1,2}'])$$),
          '22023: pgflow: invalid retry delays {1,2} for backoff fixed', 'bad retry delays');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['e1'], p_tags => ARRAY['{ok,""}'])$$),
          '22023: pgflow: tags must not be NULL or empty, got {ok,""}', 'an empty tag');
SELECT is((SELECT count(*) FROM pgflow.task_runs), :task_runs_before::bigint, 'a refused batch writes nothing');

-- p_timestamps: the time a transition happened, not the time it was written
SELECT pgflow.create_task_run(:'flow', 'timed', p_retries => 1, p_retry_delays => '{10}', p_now => :t0) AS timed \gset
SELECT pgflow.create_task_run(:'flow', 'untimed', p_now => :t0) AS untimed \gset
SELECT results_eq($$SELECT run_id, state_name, state_timestamp FROM pgflow.set_task_run_states(ARRAY['$$ || :'timed' || $$', '$$ || :'untimed' || $$']::uuid[],
                                ARRAY['RUNNING', 'RUNNING'], p_now => '2030-01-01 00:01:00+00', p_timestamps => ARRAY['2030-01-01 00:00:10+00', NULL]::timestamptz[])$$,
                  $$VALUES ('$$ || :'timed' || $$'::uuid, 'Running', '2030-01-01 00:00:10+00'::timestamptz), ('$$ || :'untimed' || $$', 'Running', '2030-01-01 00:01:00+00')$$,
                  'each transition gets its own time (NULL: p_now)');
SELECT results_eq($$SELECT status, state_name, state_timestamp, next_scheduled_start FROM pgflow.set_task_run_states(ARRAY['$$ || :'timed' || $$']::uuid[],
                                ARRAY['FAILED'], p_now => '2030-01-01 00:01:00+00', p_timestamps => ARRAY['2030-01-01 00:00:20+00']::timestamptz[])$$,
                  $$VALUES ('REDIRECTED', 'AwaitingRetry', '2030-01-01 00:00:20+00'::timestamptz, '2030-01-01 00:00:30+00'::timestamptz)$$,
                  'a retry is due a delay after the failure happened');
SELECT count(*) FROM pgflow.set_task_run_states(ARRAY[:'timed']::uuid[], ARRAY['RUNNING'], p_now => :t0::timestamptz + '1 min', p_timestamps => ARRAY[:t0::timestamptz + '31 s']);
SELECT count(*) FROM pgflow.set_task_run_states(ARRAY[:'timed']::uuid[], ARRAY['COMPLETED'], p_results => ARRAY['1']::jsonb[], p_now => :t0::timestamptz + '1 min',
                                  p_timestamps => ARRAY[:t0::timestamptz + '41 s']);
SELECT results_eq($$SELECT start_time, end_time, total_run_time, state_timestamp FROM pgflow.task_runs WHERE id = '$$ || :'timed' || $$'$$,
                  $$VALUES ('2030-01-01 00:00:10+00'::timestamptz, '2030-01-01 00:00:41+00'::timestamptz, interval '20 seconds', '2030-01-01 00:00:41+00'::timestamptz)$$,
                  'start, end and run time follow the given times');
SELECT results_eq($$SELECT state_name, "timestamp" FROM pgflow.task_run_states WHERE task_run_id = '$$ || :'timed' || $$' ORDER BY id$$,
                  $$VALUES ('Pending', '2030-01-01 00:00:00+00'::timestamptz), ('Running', '2030-01-01 00:00:10+00'), ('AwaitingRetry', '2030-01-01 00:00:20+00'),
                           ('Retrying', '2030-01-01 00:00:31+00'), ('Completed', '2030-01-01 00:00:41+00')$$, 'and so does the history');
SELECT is((SELECT created_at FROM pgflow.results WHERE run_id = :'timed'), :t0::timestamptz + '41 s', 'and the result''s time');
SELECT is((pgflow.set_task_run_states(ARRAY[:'untimed']::uuid[], ARRAY['COMPLETED'], p_now => :t0::timestamptz + '2 min',
                                      p_timestamps => ARRAY[:t0::timestamptz + '30 s'])).state_timestamp,
          :t0::timestamptz + '1 min', 'a time before the current state''s counts as that time');
SELECT is((SELECT total_run_time FROM pgflow.task_runs WHERE id = :'untimed'), interval '0', 'so run time is never negative');
SELECT is(pg_temp.err($$SELECT pgflow.set_task_run_states(ARRAY['$$ || :'timed' || $$']::uuid[], ARRAY['RUNNING'], p_timestamps => ARRAY[now(), now()])$$),
          '22023: pgflow: the arrays of a batch transition must be non-empty and of one length (1 run ids)', 'one time per proposal');

-- p_allow_retry false: a failure with retries left is final
SELECT pgflow.create_task_run(:'flow', 'refused', p_retries => 3, p_now => :t0) AS refused \gset
SELECT pgflow.set_task_run_state(:'refused', 'RUNNING', p_now => :t0);
SELECT results_eq($$SELECT status, state_type::text, state_name FROM pgflow.set_task_run_state('$$ || :'refused' || $$', 'FAILED', p_allow_retry => false, p_now => '2030-01-01 00:00:05+00')$$,
                  $$VALUES ('ACCEPTED', 'FAILED', 'Failed')$$, 'set_task_run_state: a refused retry fails the task run');
SELECT pgflow.create_task_run(:'flow', 'refused2', p_retries => 3, p_now => :t0) AS refused2 \gset
SELECT pgflow.set_task_run_state(:'refused2', 'RUNNING', p_now => :t0);
SELECT is((pgflow.set_task_run_states(ARRAY[:'refused2']::uuid[], ARRAY['FAILED'], p_allow_retry => false, p_now => :t0)).state_name, 'Failed',
          'set_task_run_states too');
SELECT pgflow.create_flow_run('batch', p_state_type => 'RUNNING', p_retries => 2, p_now => :t0) AS flow_r \gset
SELECT is((pgflow.set_flow_run_state(:'flow_r', 'FAILED', p_allow_retry => false, p_now => :t0)).state_name, 'Failed',
          'set_flow_run_state: a refused retry fails the flow run');
SELECT pgflow.create_flow_run('batch', p_state_type => 'RUNNING', p_retries => 2, p_now => :t0) AS flow_r2 \gset
SELECT pgflow.create_flow_run('batch', p_state_type => 'RUNNING', p_retries => 2, p_now => :t0) AS flow_r3 \gset
SELECT results_eq($$SELECT state_name FROM pgflow.set_flow_run_states(ARRAY['$$ || :'flow_r2' || $$']::uuid[], ARRAY['FAILED'], p_allow_retry => false)$$,
                  $$VALUES ('Failed')$$, 'set_flow_run_states too');
SELECT is((pgflow.set_flow_run_state(:'flow_r3', 'FAILED', p_now => :t0)).state_name, 'AwaitingRetry', 'by default retries are still taken');

-- p_cache_refresh: the run ignores the entry, and its result replaces it
SELECT pgflow.create_task_run(:'flow', 'c1', p_cache_key => 'k', p_now => :t0) AS c1 \gset
SELECT pgflow.set_task_run_state(:'c1', 'RUNNING', p_now => :t0);
SELECT pgflow.set_task_run_state(:'c1', 'COMPLETED', p_result => '"old"', p_now => :t0);
SELECT pgflow.create_task_run(:'flow', 'c2', p_cache_key => 'k', p_cache_refresh => true, p_now => :t0) AS c2 \gset
SELECT results_eq($$SELECT status, state_name FROM pgflow.set_task_run_state('$$ || :'c2' || $$', 'RUNNING', p_now => '2030-01-01 00:01:00+00')$$,
                  $$VALUES ('ACCEPTED', 'Running')$$, 'a refreshing task run runs although a valid entry exists');
SELECT pgflow.set_task_run_state(:'c2', 'COMPLETED', p_result => '"new"', p_now => :t0::timestamptz + '2 min');
SELECT results_eq($$SELECT value, task_run_id, created_at FROM pgflow.task_run_cache WHERE cache_key = 'k'$$,
                  $$VALUES ('"new"'::jsonb, '$$ || :'c2' || $$'::uuid, '2030-01-01 00:02:00+00'::timestamptz)$$, 'and replaces the entry');
SELECT pgflow.create_task_run(:'flow', 'c3', p_cache_key => 'k', p_now => :t0) AS c3 \gset
SELECT results_eq($$SELECT status, state_name, result FROM pgflow.set_task_run_state('$$ || :'c3' || $$', 'RUNNING', p_now => '2030-01-01 00:03:00+00')$$,
                  $$VALUES ('REDIRECTED', 'Cached', '"new"'::jsonb)$$, 'a later normal task run gets the new value');

-- a finished flow run: its existing task runs are found, new ones refused
SELECT pgflow.set_flow_run_state(:'flow', 'COMPLETED', p_now => :t0::timestamptz + '1 hour');
SELECT is((SELECT x FROM pgflow.create_task_runs(:'flow', ARRAY['a']) x), (SELECT id FROM made WHERE ord = 1), 'a finished flow run still returns its task runs');
SELECT is(pg_temp.err($$SELECT pgflow.create_task_runs('$$ || :'flow' || $$', ARRAY['a', 'late'])$$),
          '55000: pgflow: flow run ' || :'flow' || ' is COMPLETED, it cannot get new task runs', 'but gets no new ones');

SELECT * FROM finish();
ROLLBACK;
