-- The flow run state machine: every rule, with time passed in through p_now.
BEGIN;
SELECT plan(44);

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_deployment('sm', 'dep', './run.sh', p_now => :t0);
SELECT pgflow.register_agent('agent-a', ARRAY['default'], :t0) AS agent_a \gset
SELECT pgflow.register_agent('agent-b', ARRAY['default'], :t0) AS agent_b \gset
SELECT pgflow.run_deployment('sm/dep', p_now => :t0) AS run \gset

-- creation: Scheduled, with one history row and a queue entry
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = :'run'), 'Scheduled', 'a new deployment run is Scheduled');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'run'), 1, 'creation writes one history row');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'run'), 1, 'a Scheduled run is in the claimable set');

-- Late only from Scheduled
SELECT is((pgflow.set_flow_run_state(:'run', 'SCHEDULED', 'Late', p_now => :t0::timestamptz + '1 min')).status, 'ACCEPTED', 'Scheduled -> Late is accepted');
SELECT is((pgflow.set_flow_run_state(:'run', 'SCHEDULED', 'Late', p_now => :t0::timestamptz + '2 min')).status, 'REJECTED', 'Late -> Late is rejected (Late only from Scheduled)');

-- every transition: one history row and the current-state columns, in one go
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'run'), 2, 'an accepted transition appends one history row, a rejected one none');
SELECT * FROM pgflow.claim_flow_runs(:'agent_a', NULL, 1, false, :t0::timestamptz + '3 min');
SELECT results_eq($$SELECT state_type::text, state_name, agent_id FROM pgflow.flow_runs WHERE id = '$$ || :'run' || $$'$$,
                  $$VALUES ('PENDING', 'Pending', '$$ || :'agent_a' || $$'::uuid)$$, 'a claim moves the run to Pending and records the agent');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'run'), 0, 'a claimed run leaves the claimable set');
SELECT results_eq($$SELECT state_type::text, state_name, "timestamp" FROM pgflow.flow_run_states WHERE flow_run_id = '$$ || :'run' || $$' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('PENDING', 'Pending', '2030-01-01 00:03:00+00'::timestamptz)$$, 'the history row matches the current state');

-- two agents can never both start one run
SELECT is((pgflow.set_flow_run_state(:'run', 'PENDING', p_now => :t0::timestamptz + '4 min')).status, 'REJECTED', 'a Pending run cannot be claimed again');
SELECT is((pgflow.set_flow_run_state(:'run', 'RUNNING', p_agent_id => :'agent_b', p_now => :t0::timestamptz + '4 min')).status, 'REJECTED', 'another agent cannot start a run claimed by the first');
SELECT is((pgflow.set_flow_run_state(:'run', 'RUNNING', p_agent_id => :'agent_a', p_process_id => '4242', p_now => :t0::timestamptz + '5 min')).status, 'ACCEPTED', 'the owning agent starts it');
SELECT is((pgflow.set_flow_run_state(:'run', 'RUNNING', p_agent_id => :'agent_a', p_now => :t0::timestamptz + '5 min')).status, 'REJECTED', 'a Running run cannot start again');
SELECT results_eq($$SELECT run_count, start_time, process_id FROM pgflow.flow_runs WHERE id = '$$ || :'run' || $$'$$,
                  $$VALUES (1, '2030-01-01 00:05:00+00'::timestamptz, '4242')$$, 'starting counts a run and records start time and process');

-- a rejected transition says why and writes nothing
SELECT is((pgflow.set_flow_run_state(:'run', 'PENDING', p_now => :t0::timestamptz + '6 min')).reason,
          'the flow run is already RUNNING; only a SCHEDULED one can be claimed', 'a rejection carries a reason');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'run'), 4, 'rejections wrote nothing');

-- idempotent on a client transition id
SELECT is((pgflow.set_flow_run_state(:'run', 'COMPLETED', p_result => '{"n": 1}', p_transition_id => 'aaaaaaaa-0000-0000-0000-000000000001', p_now => :t0::timestamptz + '7 min')).status, 'ACCEPTED', 'Running -> Completed');
SELECT is((pgflow.set_flow_run_state(:'run', 'COMPLETED', p_result => '{"n": 1}', p_transition_id => 'aaaaaaaa-0000-0000-0000-000000000001', p_now => :t0::timestamptz + '8 min')).status, 'DUPLICATE', 'replaying a transition id does not apply it twice');
SELECT results_eq($$SELECT (pgflow.set_flow_run_state('$$ || :'run' || $$', 'COMPLETED', p_transition_id => 'aaaaaaaa-0000-0000-0000-000000000001', p_now => '2030-01-01 00:09:00+00')).state_timestamp$$,
                  $$VALUES ('2030-01-01 00:07:00+00'::timestamptz)$$, 'a duplicate returns the state it wrote the first time');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'run'), 5, 'duplicates wrote nothing');
SELECT results_eq($$SELECT end_time, total_run_time, value FROM pgflow.flow_runs JOIN pgflow.results ON run_id = id WHERE id = '$$ || :'run' || $$'$$,
                  $$VALUES ('2030-01-01 00:07:00+00'::timestamptz, interval '2 minutes', '{"n": 1}'::jsonb)$$, 'completion records end time, run time and result');

-- a terminal run does not move except by an explicit retry
SELECT is((pgflow.set_flow_run_state(:'run', s, p_now => :t0::timestamptz + '10 min')).status, 'REJECTED', 'Completed -> ' || s || ' is rejected')
  FROM unnest(ARRAY['SCHEDULED', 'PENDING', 'RUNNING', 'FAILED', 'CANCELLED', 'CRASHED']) s;
SELECT is((pgflow.cancel_flow_run(:'run', p_now => :t0::timestamptz + '10 min')).status, 'REJECTED', 'a completed run cannot be cancelled');
SELECT is((pgflow.retry_flow_run(:'run', p_now => :t0::timestamptz + '11 min')).status, 'ACCEPTED', 'an explicit retry moves a terminal run');
SELECT results_eq($$SELECT state_name, run_count, end_time IS NULL FROM pgflow.flow_runs WHERE id = '$$ || :'run' || $$'$$,
                  $$VALUES ('Scheduled', 1, true)$$, 'the retried run is Scheduled again with its run count kept');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'run'), 1, 'the retried run is claimable again');
SELECT is((pgflow.retry_flow_run(:'run', p_now => :t0::timestamptz + '12 min')).status, 'REJECTED', 'a run that is not terminal cannot be retried');

-- Cancelling may only end as Cancelled
SELECT pgflow.run_deployment('sm/dep', p_now => :t0) AS run2 \gset
SELECT * FROM pgflow.claim_flow_runs(:'agent_a', NULL, 5, true, :t0::timestamptz + '13 min');
SELECT is((pgflow.cancel_flow_run(:'run2', p_now => :t0::timestamptz + '14 min')).state_name, 'Cancelling', 'cancelling a running run makes it Cancelling');
SELECT is((pgflow.set_flow_run_state(:'run2', 'COMPLETED', p_now => :t0::timestamptz + '15 min')).status, 'REJECTED', 'Cancelling -> Completed is rejected');
SELECT is((pgflow.set_flow_run_state(:'run2', 'FAILED', p_now => :t0::timestamptz + '15 min')).status, 'REJECTED', 'Cancelling -> Failed is rejected');
SELECT is((pgflow.set_flow_run_state(:'run2', 'CANCELLED', p_now => :t0::timestamptz + '16 min')).status, 'ACCEPTED', 'Cancelling -> Cancelled is accepted');

-- cancelling a Scheduled run has no process to stop
SELECT pgflow.run_deployment('sm/dep', p_scheduled_time => :t0::timestamptz + '1 day', p_now => :t0) AS run3 \gset
SELECT results_eq($$SELECT status, state_name FROM pgflow.cancel_flow_run('$$ || :'run3' || $$', p_now => '2030-01-01 00:17:00+00')$$,
                  $$VALUES ('REDIRECTED', 'Cancelled')$$, 'a Scheduled run is cancelled at once');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'run3'), 0, 'a cancelled run leaves the claimable set');

-- a paused run past its timeout fails
SELECT pgflow.run_deployment('sm/dep', p_now => :t0) AS run4 \gset
SELECT pgflow.run_deployment('sm/dep', p_now => :t0) AS run5 \gset
SELECT * FROM pgflow.claim_flow_runs(:'agent_a', NULL, 5, true, :t0::timestamptz + '20 min');
SELECT is((pgflow.set_flow_run_state(:'run4', 'PAUSED', p_pause_expires_at => :t0::timestamptz + '30 min', p_now => :t0::timestamptz + '21 min')).status, 'ACCEPTED', 'a running run pauses');
SELECT results_eq($$SELECT status, state_type::text, state_name FROM pgflow.resume_flow_run('$$ || :'run4' || $$', '2030-01-01 00:31:00+00')$$,
                  $$VALUES ('REDIRECTED', 'FAILED', 'TimedOut')$$, 'resuming a paused run past its timeout fails it');
SELECT is((pgflow.set_flow_run_state(:'run5', 'PAUSED', p_pause_expires_at => :t0::timestamptz + '30 min', p_now => :t0::timestamptz + '21 min')).status, 'ACCEPTED', 'another run pauses');
SELECT results_eq($$SELECT status, state_name FROM pgflow.resume_flow_run('$$ || :'run5' || $$', '2030-01-01 00:25:00+00')$$,
                  $$VALUES ('ACCEPTED', 'Running')$$, 'resuming in time goes back to Running');
SELECT is((SELECT run_count FROM pgflow.flow_runs WHERE id = :'run5'), 1, 'a resume is not a new attempt');

-- batch transitions: same rules, one result per run, in order
SELECT results_eq($$SELECT run_id, status FROM pgflow.set_flow_run_states(ARRAY['$$ || :'run5' || $$', '$$ || :'run4' || $$']::uuid[], ARRAY['COMPLETED', 'RUNNING'], p_now => '2030-01-01 00:40:00+00')$$,
                  $$VALUES ('$$ || :'run5' || $$'::uuid, 'ACCEPTED'), ('$$ || :'run4' || $$'::uuid, 'REJECTED')$$, 'a batch applies allowed transitions and rejects forbidden ones');
SELECT * FROM finish();
ROLLBACK;
