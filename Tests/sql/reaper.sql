-- (Each run is due a second apart, so which run a claim takes does not depend on the rows' physical order.)
-- Heartbeats and the reaper: runs of agents that stopped heartbeating crash (retried when retries are
-- left, slots released); paused runs past their timeout fail; Scheduled runs past a threshold are Late.
BEGIN;
SELECT plan(19);

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_deployment('rp', 'once', './o.sh', p_concurrency_limit => 5, p_now => :t0);
SELECT pgflow.create_deployment('rp', 'twice', './t.sh', p_retries => 1, p_retry_delays => '{60}', p_now => :t0);
SELECT pgflow.register_agent('dead', ARRAY['default'], :t0) AS dead \gset
SELECT pgflow.register_agent('alive', ARRAY['default'], :t0) AS alive \gset
SELECT pgflow.run_deployment('rp/once', p_flow_run_name => 'a', p_scheduled_time => :t0::timestamptz - interval '4 seconds', p_now => :t0) AS a \gset
SELECT pgflow.run_deployment('rp/twice', p_flow_run_name => 'b', p_scheduled_time => :t0::timestamptz - interval '3 seconds', p_now => :t0) AS b \gset
SELECT pgflow.run_deployment('rp/once', p_flow_run_name => 'c', p_scheduled_time => :t0::timestamptz - interval '2 seconds', p_now => :t0) AS c \gset
SELECT pgflow.run_deployment('rp/once', p_flow_run_name => 'd', p_scheduled_time => :t0::timestamptz - interval '1 seconds', p_now => :t0) AS d \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'dead', NULL, 2, true, :t0);    -- a (Running), b (Running)
SELECT count(*) FROM pgflow.claim_flow_runs(:'dead', NULL, 1, false, :t0);   -- c (Pending)
SELECT count(*) FROM pgflow.claim_flow_runs(:'alive', NULL, 1, true, :t0);   -- d (Running)
SELECT is((SELECT slots_in_use FROM pgflow.concurrency_status WHERE name = 'deployment:rp/once'), 3, 'three runs hold deployment slots');

-- the live agent heartbeats, the dead one does not
SELECT is(ARRAY(SELECT pgflow.heartbeat(:'alive', :t0::timestamptz + '50 seconds')), '{}'::uuid[], 'a heartbeat with nothing to cancel returns no ids');
SELECT is(pgflow.reap_crashed_runs(interval '60 seconds', :t0::timestamptz + '59 seconds'), 0, 'nothing is reaped within the timeout');
SELECT is(pgflow.reap_crashed_runs(interval '60 seconds', :t0::timestamptz + '90 seconds'), 3, 'the dead agent''s three runs are reaped');
SELECT results_eq($$SELECT name, state_type::text, state_name FROM pgflow.flow_runs WHERE name IN ('a', 'b', 'c', 'd') ORDER BY name$$,
                  $$VALUES ('a', 'CRASHED', 'Crashed'), ('b', 'SCHEDULED', 'AwaitingRetry'), ('c', 'CRASHED', 'Crashed'), ('d', 'RUNNING', 'Running')$$,
                  'Running and Pending runs crash, a run with retries left awaits its retry, the live agent''s run goes on');
SELECT is((SELECT next_scheduled_start FROM pgflow.flow_runs WHERE id = :'b'), :t0::timestamptz + '150 seconds', 'the retry is due at now + its delay');
SELECT is((SELECT slots_in_use FROM pgflow.concurrency_status WHERE name = 'deployment:rp/once'), 1, 'crashed runs released their slots');
SELECT is((SELECT status FROM pgflow.agents WHERE id = :'dead'), 'OFFLINE', 'the dead agent is marked offline');
SELECT is(pgflow.reap_crashed_runs(interval '60 seconds', :t0::timestamptz + '91 seconds'), 0, 'reaping again changes nothing (idempotent)');
SELECT alike((SELECT state_message FROM pgflow.flow_runs WHERE id = :'a'), 'its agent stopped heartbeating%', 'the crash says why');

-- a Cancelling run of a dead agent ends Cancelled, never Crashed
SELECT pgflow.cancel_flow_run(:'d', p_now => :t0::timestamptz + '100 seconds');
SELECT is(pgflow.reap_crashed_runs(interval '60 seconds', :t0::timestamptz + '200 seconds'), 1, 'the other agent dies too');
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = :'d'), 'Cancelled', 'its Cancelling run ends Cancelled');

-- deregistering gives Pending runs back and crashes running ones
SELECT pgflow.register_agent('leaving', ARRAY['default'], :t0) AS leaving \gset
SELECT pgflow.run_deployment('rp/once', p_flow_run_name => 'e', p_scheduled_time => :t0::timestamptz - interval '2 seconds', p_now => :t0) AS e \gset
SELECT pgflow.run_deployment('rp/once', p_flow_run_name => 'f', p_scheduled_time => :t0::timestamptz - interval '1 seconds', p_now => :t0) AS f \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'leaving', NULL, 1, true, :t0::timestamptz + '300 seconds');
SELECT count(*) FROM pgflow.claim_flow_runs(:'leaving', NULL, 1, false, :t0::timestamptz + '300 seconds');
SELECT is(pgflow.deregister_agent(:'leaving', :t0::timestamptz + '301 seconds'), 2, 'deregistering ends the agent''s two runs');
SELECT results_eq($$SELECT name, state_name FROM pgflow.flow_runs WHERE name IN ('e', 'f') ORDER BY name$$,
                  $$VALUES ('e', 'Crashed'), ('f', 'Scheduled')$$, 'the running one crashed, the pending one is back in the queue');

SELECT pgflow.cancel_flow_run(:'f', p_now => :t0::timestamptz + '302 seconds');

-- paused runs past their timeout fail
SELECT pgflow.register_agent('p', ARRAY['default'], :t0) AS p \gset
SELECT flow_run_id AS paused FROM pgflow.claim_flow_runs(:'p', NULL, 1, true, :t0::timestamptz + '400 seconds') \gset
SELECT pgflow.set_flow_run_state(:'paused', 'PAUSED', p_pause_expires_at => :t0::timestamptz + '1 hour', p_now => :t0::timestamptz + '400 seconds');
SELECT is(pgflow.expire_paused_runs(:t0::timestamptz + '59 minutes'), 0, 'a paused run within its timeout stays paused');
SELECT is(pgflow.expire_paused_runs(:t0::timestamptz + '61 minutes'), 1, 'past its timeout it is expired');
SELECT results_eq($$SELECT state_type::text, state_name FROM pgflow.flow_runs WHERE id = '$$ || :'paused' || $$'$$, $$VALUES ('FAILED', 'TimedOut')$$, 'and fails as TimedOut');

-- Late
SELECT pgflow.run_deployment('rp/once', p_flow_run_name => 'late', p_scheduled_time => :t0::timestamptz + '2 hours', p_now => :t0);
SELECT is(pgflow.mark_late_runs(interval '15 seconds', :t0::timestamptz + '2 hours 10 seconds'), 0, 'a run 10 s past its start is not late yet');
SELECT is(pgflow.mark_late_runs(interval '15 seconds', :t0::timestamptz + '2 hours 20 seconds'), 1, 'at 20 s it is marked Late (only Scheduled runs are)');

SELECT * FROM finish();
ROLLBACK;
