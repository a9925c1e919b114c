-- Retries: a failed (or crashed) run with retries left goes to AwaitingRetry at now + delay.
BEGIN;
SELECT plan(16);

\set t0 '''2030-01-01 00:00:00+00'''

-- the delay policies
SELECT is(pgflow.retry_delay('fixed', '{10}', 0, 1), interval '10 seconds', 'fixed: first retry');
SELECT is(pgflow.retry_delay('fixed', '{10}', 0, 5), interval '10 seconds', 'fixed: fifth retry');
SELECT is(pgflow.retry_delay('list', '{1,10,60}', 0, 2), interval '10 seconds', 'list: one delay per retry');
SELECT is(pgflow.retry_delay('list', '{1,10,60}', 0, 7), interval '60 seconds', 'list: the last delay repeats');
SELECT is(pgflow.retry_delay('exponential', '{2}', 0, 1), interval '2 seconds', 'exponential: base first');
SELECT is(pgflow.retry_delay('exponential', '{2}', 0, 4), interval '16 seconds', 'exponential: base * 2^(n-1)');
SELECT ok((SELECT bool_and(d BETWEEN interval '10 seconds' AND interval '15 seconds')
             FROM (SELECT pgflow.retry_delay('fixed', '{10}', 0.5, 1) d FROM generate_series(1, 200)) x), 'jitter 0.5 adds up to 50 %');
SELECT ok((SELECT count(DISTINCT pgflow.retry_delay('fixed', '{10}', 0.5, 1)) > 1 FROM generate_series(1, 20)), 'jitter varies the delay');

-- a deployment with two retries, 30 s apart
SELECT pgflow.create_deployment('rt', 'dep', './run.sh', p_retries => 2, p_retry_delays => '{30}', p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['default'], :t0) AS agent \gset
SELECT pgflow.run_deployment('rt/dep', p_now => :t0) AS run \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true, :t0);
SELECT results_eq($$SELECT status, state_name, next_scheduled_start FROM pgflow.set_flow_run_state('$$ || :'run' || $$', 'FAILED', p_message => 'boom', p_now => '2030-01-01 00:01:00+00')$$,
                  $$VALUES ('REDIRECTED', 'AwaitingRetry', '2030-01-01 00:01:30+00'::timestamptz)$$, 'first failure: AwaitingRetry at now + 30 s');
SELECT is((SELECT scheduled_at FROM pgflow.run_queue WHERE flow_run_id = :'run'), '2030-01-01 00:01:30+00'::timestamptz, 'the retry waits in the queue until then');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true, '2030-01-01 00:01:29+00')), 0, 'not claimable before its retry time');
SELECT results_eq($$SELECT state_name, run_count FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', NULL, 1, true, '2030-01-01 00:01:30+00')$$,
                  $$VALUES ('Retrying', 2)$$, 'the second attempt runs as Retrying');
SELECT is((pgflow.set_flow_run_state(:'run', 'CRASHED', p_now => '2030-01-01 00:02:00+00')).state_name, 'AwaitingRetry', 'a crash with retries left is retried too');
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true, '2030-01-01 00:03:00+00');
SELECT results_eq($$SELECT status, state_type::text, state_name FROM pgflow.set_flow_run_state('$$ || :'run' || $$', 'FAILED', p_now => '2030-01-01 00:04:00+00')$$,
                  $$VALUES ('ACCEPTED', 'FAILED', 'Failed')$$, 'with no retries left a failure is final');
SELECT is((SELECT run_count FROM pgflow.flow_runs WHERE id = :'run'), 3, 'three attempts were counted');
SELECT is((SELECT string_agg(state_name, ',' ORDER BY id) FROM pgflow.flow_run_states WHERE flow_run_id = :'run'),
          'Scheduled,Pending,Running,AwaitingRetry,Pending,Retrying,AwaitingRetry,Pending,Retrying,Failed', 'the history tells the whole story');

SELECT * FROM finish();
ROLLBACK;
