-- 0010's cheaper hot path writes what the general path writes: a claim with p_start and no active
-- limit (one row version) against _claim_flow_runs_general on twin runs; retries start as Retrying;
-- both states recorded in order.
BEGIN;
SELECT plan(14);

\set t0 '''2030-01-01 00:00:00+00'''
\set t1 '''2030-01-01 00:05:00+00'''
SELECT pgflow.create_work_queue('fast', p_now => :t0);
SELECT pgflow.create_work_queue('slow', p_now => :t0);
SELECT pgflow.create_deployment('pf', 'fast', './x.sh', '{"a": 1}', p_work_queue => 'fast', p_tags => ARRAY['t'], p_retries => 1, p_now => :t0);
SELECT pgflow.create_deployment('pf', 'slow', './x.sh', '{"a": 1}', p_work_queue => 'slow', p_tags => ARRAY['t'], p_retries => 1, p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['fast', 'slow'], :t0) AS agent \gset
SELECT count(*) FROM pgflow.run_deployments('pf/fast', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[], :t0, p_now => :t0);
SELECT count(*) FROM pgflow.run_deployments('pf/slow', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[], :t0, p_now => :t0);

CREATE TEMP TABLE fast_claim AS SELECT * FROM pgflow.claim_flow_runs(:'agent', ARRAY['fast'], 2, true, :t1);
CREATE TEMP TABLE slow_claim AS SELECT * FROM pgflow._claim_flow_runs_general(:'agent', ARRAY['slow'], 2, true, :t1);

SELECT results_eq($$SELECT parameters, tags, state_type, state_name, run_count, entrypoint FROM fast_claim$$,
                  $$SELECT parameters, tags, state_type, state_name, run_count, entrypoint FROM slow_claim$$,
                  'the one-version claim returns what the general claim returns, in the same order');
SELECT results_eq($$SELECT r.state_type, r.state_name, r.state_timestamp, r.state_message, r.run_count, r.start_time, r.end_time,
                           r.total_run_time, r.next_scheduled_start, r.pause_expires_at, r.agent_id, r.process_id
                      FROM pgflow.flow_runs r JOIN fast_claim c ON c.flow_run_id = r.id ORDER BY r.parameters$$,
                  $$SELECT r.state_type, r.state_name, r.state_timestamp, r.state_message, r.run_count, r.start_time, r.end_time,
                           r.total_run_time, r.next_scheduled_start, r.pause_expires_at, r.agent_id, r.process_id
                      FROM pgflow.flow_runs r JOIN slow_claim c ON c.flow_run_id = r.id ORDER BY r.parameters$$,
                  'and leaves the runs'' current state exactly as the general claim does');
SELECT results_eq($$SELECT r.parameters, s.state_type, s.state_name, s."timestamp", s.message, s.scheduled_time, s.transition_id
                      FROM pgflow.flow_runs r JOIN fast_claim c ON c.flow_run_id = r.id JOIN pgflow.flow_run_states s ON s.flow_run_id = r.id
                     ORDER BY r.parameters, s.id$$,
                  $$SELECT r.parameters, s.state_type, s.state_name, s."timestamp", s.message, s.scheduled_time, s.transition_id
                      FROM pgflow.flow_runs r JOIN slow_claim c ON c.flow_run_id = r.id JOIN pgflow.flow_run_states s ON s.flow_run_id = r.id
                     ORDER BY r.parameters, s.id$$,
                  'and records the same history: Scheduled, Pending, Running, in that order');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue q JOIN pgflow.flow_runs r ON r.id = q.flow_run_id
            WHERE r.deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'fast')), 1,
          'claimed runs leave the claimable set; the unclaimed one stays');

-- a failure with a retry left goes back to the queue; the next claim starts it as Retrying
SELECT pgflow.set_flow_run_state(flow_run_id, 'FAILED', p_agent_id => :'agent', p_now => :t1) FROM fast_claim LIMIT 1;
SELECT results_eq($$SELECT state_name, run_count FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', ARRAY['fast'], 10, true, '2030-01-01 01:00:00+00') ORDER BY run_count$$,
                  $$VALUES ('Running', 1), ('Retrying', 2)$$, 'a run on its second attempt starts as Retrying');
SELECT is((SELECT array_agg(state_name ORDER BY id) FROM pgflow.flow_run_states
            WHERE flow_run_id = (SELECT flow_run_id FROM fast_claim LIMIT 1)),
          ARRAY['Scheduled', 'Pending', 'Running', 'AwaitingRetry', 'Pending', 'Retrying'], 'every state of the retried run is recorded');

-- a queue row whose run is not SCHEDULED is never claimed (both paths)
SELECT pgflow.run_deployment('pf/fast', p_flow_run_name => 'gone', p_now => :t0) AS gone \gset
UPDATE pgflow.flow_runs SET state_type = 'CANCELLED', state_name = 'Cancelled' WHERE id = :'gone';
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['fast'], 10, true, :t1)), 0,
          'only SCHEDULED runs are started by the one-version claim');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'gone';

-- the one-version claim refuses what the general claim refuses
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('00000000-0000-0000-0000-000000000000', NULL, 1, true)$$, 'P0002', NULL,
                 'an unknown agent cannot start runs');
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', ARRAY['nope'], 1, true)$$, 'P0002', NULL,
                 'an unknown queue cannot be claimed from');
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', NULL, 0, true)$$, '22023', NULL,
                 'p_max must be positive');
SELECT pgflow.register_agent('gone', ARRAY['fast'], :t0) AS gone_agent \gset
SELECT pgflow.deregister_agent(:'gone_agent', :t1);
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'gone_agent' || $$', NULL, 1, true)$$, '55000', NULL,
                 'an offline agent cannot start runs');

-- an active limit anywhere: the general claim (slots taken on the way)
SELECT pgflow.create_concurrency_limit('tag:t', 1, p_now => :t0);
SELECT count(*) FROM pgflow.run_deployments('pf/fast', ARRAY['{}', '{}']::jsonb[], :t0, p_now => :t0);
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['fast'], 10, true, :t1)), 1,
          'with an active tag limit of 1, one run is claimed');
SELECT is((SELECT count(*)::int FROM pgflow.concurrency_slots), 1, 'and holds its slot');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['fast'], 10, true, :t1)), 0,
          'the full limit holds the other back');

SELECT * FROM finish();
ROLLBACK;
