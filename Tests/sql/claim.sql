-- Claim: due runs only, queue priority then scheduled time, paused queues skipped, max respected,
-- the agent recorded, a run never claimed twice.
BEGIN;
SELECT plan(18);

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_work_queue('high', 1, p_now => :t0);
SELECT pgflow.create_work_queue('low', 5, p_now => :t0);
SELECT pgflow.create_work_queue('stopped', 1, p_paused => true, p_now => :t0);
SELECT pgflow.create_deployment('cl', 'hi', './hi.sh', p_work_queue => 'high', p_now => :t0);
SELECT pgflow.create_deployment('cl', 'lo', './lo.sh', '{"a": 1}', p_work_queue => 'low', p_now => :t0);
SELECT pgflow.create_deployment('cl', 'st', './st.sh', p_work_queue => 'stopped', p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['high', 'low', 'stopped'], :t0) AS agent \gset
SELECT pgflow.register_agent('other', ARRAY['high', 'low'], :t0) AS other \gset

SELECT pgflow.run_deployment('cl/lo', '{"b": 2}', :t0::timestamptz - interval '10 min', p_flow_run_name => 'lo-early', p_now => :t0);
SELECT pgflow.run_deployment('cl/hi', p_scheduled_time => :t0::timestamptz - interval '1 min', p_flow_run_name => 'hi-late', p_now => :t0);
SELECT pgflow.run_deployment('cl/hi', p_scheduled_time => :t0::timestamptz - interval '5 min', p_flow_run_name => 'hi-early', p_now => :t0);
SELECT pgflow.run_deployment('cl/hi', p_scheduled_time => :t0::timestamptz + '1 hour', p_flow_run_name => 'hi-future', p_now => :t0);
SELECT pgflow.run_deployment('cl/st', p_flow_run_name => 'in-paused-queue', p_now => :t0);

SELECT results_eq($$SELECT flow_run_name FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', NULL, 2, false, '2030-01-01 00:00:00+00')$$,
                  $$VALUES ('hi-early'), ('hi-late')$$, 'priority first, then scheduled time, at most p_max');
SELECT results_eq($$SELECT flow_run_name, entrypoint, parameters, work_queue, state_name FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', NULL, 10, false, '2030-01-01 00:00:00+00')$$,
                  $$VALUES ('lo-early', './lo.sh', '{"a": 1, "b": 2}'::jsonb, 'low', 'Pending')$$,
                  'a claim returns what the agent needs (merged parameters); paused queues and future runs are skipped');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'other', NULL, 10, false, :t0)), 0, 'claimed runs are not claimed again');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE agent_id = :'agent' AND state_type = 'PENDING'), 3, 'the claiming agent is recorded');
SELECT results_eq($$SELECT flow_run_name, state_name, run_count FROM pgflow.claim_flow_runs('$$ || :'other' || $$', ARRAY['high'], 10, true, '2030-01-01 01:00:00+00')$$,
                  $$VALUES ('hi-future', 'Running', 1)$$, 'p_start claims straight into Running; p_queues narrows the queues');
SELECT pgflow.set_work_queue_paused('stopped', false, :t0);
SELECT is((SELECT flow_run_name FROM pgflow.claim_flow_runs(:'agent', NULL, 10, false, :t0)), 'in-paused-queue', 'a resumed queue is served again');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'other', ARRAY['stopped'], 10, false, :t0)), 0, 'an agent may name any existing queue');

-- history rows for each claimed run
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE state_type = 'PENDING'), 5, 'every claim is in the history (p_start records Pending too)');

-- a queue row is never trusted alone: the run itself must still be SCHEDULED
SELECT pgflow.run_deployment('cl/hi', p_flow_run_name => 'gone', p_now => :t0) AS gone \gset
UPDATE pgflow.flow_runs SET state_type = 'CANCELLED', state_name = 'Cancelled' WHERE id = :'gone';
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 10, false, :t0)), 0, 'only runs that are SCHEDULED are claimed');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'gone';

-- bulk enqueue, bulk claim
SELECT is((SELECT count(*)::int FROM pgflow.run_deployments('cl/lo', array_fill('{}'::jsonb, ARRAY[500]), p_now => :t0)), 500, 'run_deployments enqueues many in one statement');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['low'], 300, true, :t0)), 300, 'one claim takes many runs');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'other', ARRAY['low'], 300, true, :t0)), 200, 'the next claim takes the rest');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue), 0, 'the claimable set is empty again');

-- agents that cannot claim
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('00000000-0000-0000-0000-000000000000')$$, 'P0002', NULL, 'an unknown agent cannot claim');
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', ARRAY['nope'])$$, 'P0002', NULL, 'an unknown queue cannot be claimed from');
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', NULL, 0)$$, '22023', NULL, 'p_max must be positive');
UPDATE pgflow.agents SET status = 'OFFLINE' WHERE id = :'agent';
SELECT throws_ok($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$')$$, '55000', NULL, 'an agent marked offline cannot claim until it heartbeats');
SELECT lives_ok($$SELECT pgflow.heartbeat('$$ || :'agent' || $$'); SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$')$$, 'a heartbeat brings it back');

SELECT * FROM finish();
ROLLBACK;
