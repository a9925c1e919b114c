-- 0005: one list of state names behind the CHECK constraints; the agent's and scheduler's reads.
BEGIN;
SELECT plan(12);

SELECT pgflow.create_deployment('api', 'dep', './a.sh', p_timeout_seconds => 90) AS dep \gset
SELECT pgflow.register_agent('agent', ARRAY['default']) AS agent \gset
SELECT pgflow.run_deployment('api/dep', p_scheduled_time => '2030-01-01 00:00:00+00') AS run \gset

-- state names: the CHECKs use state_type_of, so a name of the wrong type or an unknown name is refused
SELECT throws_ok($$UPDATE pgflow.flow_runs SET state_name = 'Completed' WHERE id = '$$ || :'run' || $$'$$, '23514', NULL,
                 'a state name of another type is refused by the table');
SELECT throws_ok($$UPDATE pgflow.flow_runs SET state_name = 'Bogus' WHERE id = '$$ || :'run' || $$'$$, '23514', NULL,
                 'an unknown state name is refused by the table');
SELECT throws_ok($$INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp") VALUES ('$$ || :'run' || $$', 'RUNNING', 'Late', now())$$,
                 '23514', NULL, 'the history refuses a mismatched pair too');
SELECT is((SELECT count(*)::int FROM pg_constraint WHERE connamespace = 'pgflow'::regnamespace
             AND pg_get_constraintdef(oid) LIKE '%AwaitingConcurrencySlot%'), 0, 'no constraint repeats the state names');

-- the claim returns the deployment's timeout
SELECT is((SELECT timeout_seconds FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true, '2030-01-01 00:00:01+00')), 90::float8,
          'claim_flow_runs returns the deployment timeout');

-- agent_unchanged_runs: the agent's Running run, only once it is older than the window
SELECT is((SELECT count(*)::int FROM pgflow.agent_unchanged_runs(:'agent', interval '30 seconds', '2030-01-01 00:00:10+00')), 0,
          'a run started 9 s ago is not stale with a 30 s window');
SELECT is((SELECT state_type FROM pgflow.agent_unchanged_runs(:'agent', interval '30 seconds', '2030-01-01 00:01:00+00')), 'RUNNING',
          'a run unchanged for a minute is listed with its state type');

-- scheduled_run_times and next_due_times
SELECT pgflow.create_deployment_schedule('api/dep', 'interval', '3600', p_anchor_date => '2030-01-01 00:00:00+00') AS sch \gset
SELECT pgflow.schedule_flow_runs(:'sch', ARRAY['2030-01-01 01:00:00+00', '2030-01-01 02:00:00+00']::timestamptz[], '2030-01-01 00:30:00+00');
SELECT is((SELECT count(*)::int FROM pgflow.scheduled_run_times(ARRAY[:'dep']::uuid[], '2030-01-01 00:30:00+00') WHERE replaceable), 2,
          'scheduled_run_times lists the schedule''s future runs as replaceable');
SELECT is((SELECT count(*)::int FROM pgflow.scheduled_run_times(ARRAY[:'dep']::uuid[], '2030-01-01 01:30:00+00')), 1,
          'only those after p_after');
SELECT is((SELECT due FROM pgflow.next_due_times('2030-01-01 00:30:00+00') WHERE queue = 'default'), '2030-01-01 01:00:00+00'::timestamptz,
          'next_due_times: the earliest future due run of the queue');

-- flow_run_task_counts
SELECT pgflow.create_flow_run('local') AS local \gset
SELECT count(*) FROM pgflow.create_task_runs(:'local', ARRAY['a', 'b'], ARRAY['0', '0'], ARRAY['a', 'b']);
SELECT results_eq($$SELECT task_runs, completed FROM pgflow.flow_run_task_counts('$$ || :'local' || $$')$$,
                  $$VALUES (2::bigint, 0::bigint)$$, 'flow_run_task_counts counts a run''s task runs');
SELECT is((SELECT task_runs FROM pgflow.flow_run_task_counts(gen_random_uuid())), 0::bigint, 'an unknown run has none');

SELECT * FROM finish();
ROLLBACK;
