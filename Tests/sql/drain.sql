-- 0012: an agent's batch of completions goes through _complete_flow_runs and writes what the general
-- path writes (twin runs, compared); anything the fast path does not cover still gets the general
-- path's answer; state events keep coming for every transition; a resource's events are still found
-- (flow-run events through their run's states, others through the partial events_resource index).
BEGIN;
SELECT plan(16);

\set t0 '''2030-01-01 00:00:00+00'''
\set t1 '''2030-01-01 00:05:00+00'''
\set t2 '''2030-01-01 00:09:00+00'''
SELECT pgflow.create_work_queue('dq', p_now => :t0);
SELECT pgflow.create_deployment('dr', 'a', './x.sh', p_work_queue => 'dq', p_tags => ARRAY['t'], p_now => :t0);
SELECT pgflow.register_agent('drain-agent', ARRAY['dq'], :t0) AS agent \gset
SELECT pgflow.register_agent('other-agent', ARRAY['dq'], :t0) AS other \gset
SELECT count(*) FROM pgflow.run_deployments('dr/a', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}', '{"n": 5}', '{"n": 6}']::jsonb[], :t0, p_now => :t0);
CREATE TEMP TABLE claimed AS SELECT * FROM pgflow.claim_flow_runs(:'agent', NULL, 6, true, :t1);
CREATE TEMP TABLE twins AS
SELECT (SELECT flow_run_id FROM claimed c WHERE c.parameters = '{"n": 1}') AS fast1, (SELECT flow_run_id FROM claimed c WHERE c.parameters = '{"n": 2}') AS fast2,
       (SELECT flow_run_id FROM claimed c WHERE c.parameters = '{"n": 3}') AS slow1, (SELECT flow_run_id FROM claimed c WHERE c.parameters = '{"n": 4}') AS slow2,
       (SELECT flow_run_id FROM claimed c WHERE c.parameters = '{"n": 5}') AS mixed, (SELECT flow_run_id FROM claimed c WHERE c.parameters = '{"n": 6}') AS spare;
SELECT fast1, fast2, slow1, slow2, mixed, spare FROM twins \gset

-- twin batches: one through set_flow_run_states (the fast path), one through the general path
CREATE TEMP TABLE fast_res AS SELECT * FROM pgflow.set_flow_run_states(ARRAY[:'fast1', :'fast2']::uuid[], ARRAY['COMPLETED', 'completed'],
    p_messages => ARRAY['done', NULL], p_results => ARRAY['{"r": 1}', NULL]::jsonb[],
    p_transition_ids => ARRAY['00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-0000000000f2']::uuid[],
    p_agent_id => :'agent', p_now => :t2);
CREATE TEMP TABLE slow_res AS SELECT * FROM pgflow._transition_flow_runs_isolated(ARRAY[
    ROW(:'slow1', 'COMPLETED', 'Completed', 'done', '{"r": 1}', NULL, NULL, '00000000-0000-0000-0000-0000000000e1', NULL)::pgflow._proposal,
    ROW(:'slow2', 'COMPLETED', 'Completed', NULL, NULL, NULL, NULL, '00000000-0000-0000-0000-0000000000e2', NULL)::pgflow._proposal],
    :'agent', :t2);
SELECT results_eq($$SELECT status, reason, state_type, state_name, state_timestamp, next_scheduled_start, run_count, result FROM fast_res$$,
                  $$SELECT status, reason, state_type, state_name, state_timestamp, next_scheduled_start, run_count, result FROM slow_res$$,
                  'a batch of completions returns what the general path returns, in order');
SELECT results_eq(format($$SELECT r.state_type, r.state_name, r.state_timestamp, r.state_message, r.run_count, r.start_time, r.end_time,
                                  r.total_run_time, r.next_scheduled_start, r.pause_expires_at, r.agent_id, r.process_id
                             FROM pgflow.flow_runs r WHERE r.id IN (%L, %L) ORDER BY r.parameters$$, :'fast1', :'fast2'),
                  format($$SELECT r.state_type, r.state_name, r.state_timestamp, r.state_message, r.run_count, r.start_time, r.end_time,
                                  r.total_run_time, r.next_scheduled_start, r.pause_expires_at, r.agent_id, r.process_id
                             FROM pgflow.flow_runs r WHERE r.id IN (%L, %L) ORDER BY r.parameters$$, :'slow1', :'slow2'),
                  'and leaves the runs as the general path does');
SELECT results_eq(format($$SELECT s.state_type, s.state_name, s."timestamp", s.message, s.scheduled_time, s.transition_id IS NULL
                             FROM pgflow.flow_run_states s JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
                            WHERE r.id IN (%L, %L) ORDER BY r.parameters, s.id$$, :'fast1', :'fast2'),
                  format($$SELECT s.state_type, s.state_name, s."timestamp", s.message, s.scheduled_time, s.transition_id IS NULL
                             FROM pgflow.flow_run_states s JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
                            WHERE r.id IN (%L, %L) ORDER BY r.parameters, s.id$$, :'slow1', :'slow2'),
                  'and records the same history');
SELECT is((SELECT value FROM pgflow.results WHERE run_id = :'fast1'), '{"r": 1}'::jsonb, 'a completion''s result is stored');
SELECT is((SELECT array_agg(event ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'fast1'),
          ARRAY['pgflow.flow-run.Scheduled', 'pgflow.flow-run.Pending', 'pgflow.flow-run.Running', 'pgflow.flow-run.Completed'],
          'every transition emitted its event in the transaction, fast path included');
SELECT is((SELECT resource ->> 'deployment' FROM pgflow.event_history WHERE resource_id = :'fast1' AND event = 'pgflow.flow-run.Completed'),
          'dr/a', 'the event names the deployment (looked up by the run''s key)');

-- replays and refusals: the general path's answers
SELECT is((SELECT status FROM pgflow.set_flow_run_states(ARRAY[:'fast1']::uuid[], ARRAY['COMPLETED'],
              p_transition_ids => ARRAY['00000000-0000-0000-0000-0000000000f1']::uuid[], p_agent_id => :'agent', p_now => :t2)),
          'DUPLICATE', 'a replayed batch comes back DUPLICATE');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'fast1'), 4, 'and writes nothing');
SELECT is((SELECT status FROM pgflow.set_flow_run_states(ARRAY[:'mixed']::uuid[], ARRAY['COMPLETED'], p_agent_id => :'other', p_now => :t2)),
          'REJECTED', 'another agent''s run is not completed');
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'mixed'), 'RUNNING', 'and stays RUNNING');
SELECT results_eq(format($$SELECT status, state_name FROM pgflow.set_flow_run_states(ARRAY[%L, %L]::uuid[], ARRAY['COMPLETED', 'COMPLETED'],
                                 p_agent_id => %L, p_now => %L) ORDER BY run_id = %L$$, :'mixed', :'fast2', :'agent', :t2, :'mixed'),
                  $$VALUES ('REJECTED', 'Completed'), ('ACCEPTED', 'Completed')$$,
                  'a batch with a finished run gets the general path''s answer per run');
SELECT pgflow.create_task_run(:'spare', 'child', p_now => :t1);
SELECT is((SELECT status FROM pgflow.set_flow_run_states(ARRAY[:'spare']::uuid[], ARRAY['COMPLETED'], p_agent_id => :'agent', p_now => :t2)),
          'ACCEPTED', 'a run with an unfinished task run completes');
SELECT is((SELECT state_type::text FROM pgflow.task_runs WHERE flow_run_id = :'spare'), 'CRASHED', 'and its task run is ended (crashed) by the general path');

-- a resource's events: flow-run events through the run's states, others through the partial index
SELECT is((SELECT array_agg(event ORDER BY seq) FROM pgflow.event_page(p_resource_id => :'fast1', p_after_seq => 0)),
          ARRAY['pgflow.flow-run.Scheduled', 'pgflow.flow-run.Pending', 'pgflow.flow-run.Running', 'pgflow.flow-run.Completed'],
          'event_page finds a run''s events by its id');
SELECT pgflow.emit_event('acme.x', jsonb_build_object('id', :'fast1'), p_occurred => :t2);
SELECT is((SELECT array_agg(event) FROM pgflow.event_page(p_resource_id => :'fast1', p_limit => 2)),
          ARRAY['acme.x', 'pgflow.flow-run.Completed'], 'and others'' events about it, newest first');
SELECT ok(NOT EXISTS (SELECT 1 FROM pgflow._resource_events('s3://nothing')), 'a resource without events has none');

SELECT * FROM finish();
ROLLBACK;
