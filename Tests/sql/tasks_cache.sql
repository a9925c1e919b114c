-- Task runs, the result cache, local mode (ad-hoc flow runs) and subflows.
BEGIN;
SELECT plan(21);

\set t0 '''2030-01-01 00:00:00+00'''
-- local mode: an ad-hoc flow run created straight in Running
SELECT pgflow.create_flow_run('local', '{"x": 1}', 'my-run', p_state_type => 'RUNNING', p_now => :t0) AS flow \gset
SELECT results_eq($$SELECT state_name, run_count, deployment_id IS NULL, start_time FROM pgflow.flow_runs WHERE id = '$$ || :'flow' || $$'$$,
                  $$VALUES ('Running', 1, true, '2030-01-01 00:00:00+00'::timestamptz)$$, 'create_flow_run can start a run at once');
SELECT is((SELECT string_agg(state_name, ',' ORDER BY id) FROM pgflow.flow_run_states WHERE flow_run_id = :'flow'), 'Pending,Running', 'with its history');
SELECT is(pgflow.create_flow_run('local', p_idempotency_key => 'k1', p_now => :t0), pgflow.create_flow_run('local', p_idempotency_key => 'k1', p_now => :t0),
          'an idempotency key returns the same ad-hoc run');

-- task runs: created Pending, identified by (flow run, task key, dynamic key)
SELECT pgflow.create_task_run(:'flow', 'extract', '0', p_inputs => '{"day": 1}', p_cache_key => 'extract-day-1',
                              p_cache_expiration => interval '1 hour', p_now => :t0) AS t1 \gset
SELECT is(pgflow.create_task_run(:'flow', 'extract', '0', p_now => :t0), :'t1'::uuid, 'the same task key and dynamic key give the same task run');
SELECT isnt(pgflow.create_task_run(:'flow', 'extract', '1', p_now => :t0), :'t1'::uuid, 'another dynamic key gives another task run');
SELECT is((SELECT state_name FROM pgflow.task_runs WHERE id = :'t1'), 'Pending', 'a task run starts Pending');

-- the cache: completing stores the result with its expiration
SELECT is((pgflow.set_task_run_state(:'t1', 'RUNNING', p_now => :t0)).status, 'ACCEPTED', 'a task with no cache entry runs');
SELECT is((pgflow.set_task_run_state(:'t1', 'COMPLETED', p_result => '{"rows": 10}', p_now => :t0::timestamptz + '1 minute')).status, 'ACCEPTED', 'and completes');
SELECT results_eq($$SELECT value, expires_at FROM pgflow.task_run_cache WHERE cache_key = 'extract-day-1'$$,
                  $$VALUES ('{"rows": 10}'::jsonb, '2030-01-01 01:01:00+00'::timestamptz)$$, 'its result is cached until completion + expiration');

-- a task with a valid cache entry completes as Cached
SELECT pgflow.create_flow_run('local', p_state_type => 'RUNNING', p_now => :t0) AS flow2 \gset
SELECT pgflow.create_task_run(:'flow2', 'extract', p_cache_key => 'extract-day-1', p_now => :t0) AS t2 \gset
SELECT results_eq($$SELECT status, state_type::text, state_name, result FROM pgflow.set_task_run_state('$$ || :'t2' || $$', 'RUNNING', p_now => '2030-01-01 00:30:00+00')$$,
                  $$VALUES ('REDIRECTED', 'COMPLETED', 'Cached', '{"rows": 10}'::jsonb)$$, 'a valid cache entry completes the task as Cached with the stored result');
SELECT is((SELECT value FROM pgflow.results WHERE run_id = :'t2'), '{"rows": 10}'::jsonb, 'the cached result is the task run''s result');
SELECT is((SELECT run_count FROM pgflow.task_runs WHERE id = :'t2'), 0, 'a cached task did not run');

-- an expired entry does not count
SELECT pgflow.create_task_run(:'flow2', 'extract-again', p_cache_key => 'extract-day-1', p_now => :t0) AS t3 \gset
SELECT is((pgflow.set_task_run_state(:'t3', 'RUNNING', p_now => :t0::timestamptz + '2 hours')).state_name, 'Running', 'past its expiration the entry is ignored');

-- task retries
SELECT pgflow.create_task_run(:'flow2', 'flaky', p_retries => 1, p_retry_backoff => 'list', p_retry_delays => '{5,50}', p_now => :t0) AS t4 \gset
SELECT pgflow.set_task_run_state(:'t4', 'RUNNING', p_now => :t0);
SELECT results_eq($$SELECT status, state_name, next_scheduled_start FROM pgflow.set_task_run_state('$$ || :'t4' || $$', 'FAILED', p_now => '2030-01-01 00:01:00+00')$$,
                  $$VALUES ('REDIRECTED', 'AwaitingRetry', '2030-01-01 00:01:05+00'::timestamptz)$$, 'a failed task with retries left awaits its retry');
SELECT is((pgflow.set_task_run_state(:'t4', 'RUNNING', p_now => :t0::timestamptz + '65 seconds')).state_name, 'Retrying', 'its second attempt is Retrying');
SELECT is((pgflow.set_task_run_state(:'t4', 'FAILED', p_now => :t0::timestamptz + '70 seconds')).state_name, 'Failed', 'with no retries left it fails');
SELECT is((pgflow.set_task_run_state(:'t4', 'RUNNING', p_now => :t0::timestamptz + '80 seconds')).status, 'REJECTED', 'a terminal task run does not move');

-- subflows: a flow run whose parent is a task run
SELECT pgflow.create_task_run(:'flow2', 'child', p_now => :t0) AS parent_task \gset
SELECT pgflow.create_flow_run('child-flow', p_parent_task_run_id => :'parent_task', p_state_type => 'RUNNING', p_now => :t0) AS child \gset
SELECT is((SELECT flow_run FROM pgflow.task_run_history WHERE id = :'parent_task'), (SELECT name FROM pgflow.flow_runs WHERE id = :'flow2'), 'task_run_history names the flow run');
SELECT is((SELECT parent_task_run_id FROM pgflow.flow_run_history WHERE id = :'child'), :'parent_task'::uuid, 'a subflow records its parent task run');

-- ending a flow run ends its unfinished task runs
SELECT pgflow.create_task_run(:'flow2', 'hanging', p_now => :t0) AS t5 \gset
SELECT pgflow.set_task_run_state(:'t5', 'RUNNING', p_now => :t0);
SELECT pgflow.set_flow_run_state(:'flow2', 'CANCELLED', p_now => :t0::timestamptz + '3 hours');
SELECT results_eq($$SELECT task_key, state_name FROM pgflow.task_runs WHERE flow_run_id = '$$ || :'flow2' || $$' AND task_key IN ('hanging', 'child', 'extract-again') ORDER BY 1$$,
                  $$VALUES ('child', 'Cancelled'), ('extract-again', 'Cancelled'), ('hanging', 'Cancelled')$$, 'a cancelled flow run cancels its unfinished task runs');
SELECT throws_ok($$SELECT pgflow.create_task_run('$$ || :'flow2' || $$', 'late-task')$$, '55000', NULL, 'a finished flow run gets no new task runs');

SELECT * FROM finish();
ROLLBACK;
