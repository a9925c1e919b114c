-- Retention deletes finished runs with their states, task runs, logs and results, in bounded batches;
-- logs are written in batches.
BEGIN;
SELECT plan(15);
-- Retention drops weeks under a 500 ms lock_timeout and returns 0 when the tables are busy (its next pass
-- drops them); autovacuum of this test database (dead rows of the files before) can hold a partition that
-- long. The test takes those locks first and waits as long as it must (autovacuum gives way to a waiting
-- lock after deadlock_timeout), so what it checks is what retention does, not when autovacuum ran.
LOCK TABLE pgflow.flow_runs, pgflow.flow_run_states, pgflow.task_run_states, pgflow.results, pgflow.logs,
           pgflow.flow_run_tags IN ACCESS EXCLUSIVE MODE;

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_deployment('rt', 'dep', './r.sh', p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['default'], :t0) AS agent \gset
SELECT count(*) FROM pgflow.run_deployments('rt/dep', array_fill('{}'::jsonb, ARRAY[5]), p_now => :t0);
SELECT pgflow.run_deployment('rt/dep', p_flow_run_name => 'young', p_now => :t0) AS young \gset
SELECT pgflow.run_deployment('rt/dep', p_flow_run_name => 'active', p_now => :t0) AS active \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 100, true, :t0);
SELECT pgflow.create_task_run(id, 'step', p_now => :t0) FROM pgflow.flow_runs WHERE name NOT IN ('young', 'active');
SELECT count(pgflow.set_flow_run_state(id, 'COMPLETED', p_result => '{"ok": true}', p_now => :t0::timestamptz + '1 hour'))
  FROM pgflow.flow_runs WHERE name NOT IN ('young', 'active');
SELECT pgflow.set_flow_run_state(:'young', 'FAILED', p_now => :t0::timestamptz + '20 days');

-- logs, in one batch
SELECT is(pgflow.write_logs(ARRAY(SELECT id FROM pgflow.flow_runs ORDER BY id), array_fill(20, ARRAY[7]),
                            array_fill('hello'::text, ARRAY[7]), p_now => :t0), 7, 'write_logs inserts a batch');
SELECT pgflow.write_log(:'active', 40, 'still going', 'agent', p_now => :t0);
SELECT is((SELECT count(*)::int FROM pgflow.logs WHERE flow_run_id = :'active'), 2, 'write_log adds one line');

-- a batch sent again (its commit reply was lost) is stored once
SELECT is(pgflow.write_logs(ARRAY[:'active']::uuid[], ARRAY[20], ARRAY['once'], p_now => :t0, p_batch_id => '00000000-0000-0000-0000-00000000000b'),
          1, 'a batch with an id is written');
SELECT is(pgflow.write_logs(ARRAY[:'active']::uuid[], ARRAY[20], ARRAY['once'], p_now => :t0, p_batch_id => '00000000-0000-0000-0000-00000000000b'),
          0, 'the same batch again writes nothing');
SELECT is((SELECT count(*)::int FROM pgflow.logs WHERE message = 'once'), 1, 'one copy of its line');
-- a day later another batch prunes the old id
SELECT pgflow.write_logs(ARRAY[:'active']::uuid[], ARRAY[20], ARRAY['later'], p_now => :t0::timestamptz + '25 hours', p_batch_id => gen_random_uuid());
SELECT is((SELECT count(*)::int FROM pgflow.log_batches WHERE id = '00000000-0000-0000-0000-00000000000b'), 0, 'batch ids are kept a day');
DELETE FROM pgflow.logs WHERE message IN ('once', 'later');

SELECT is(pgflow.delete_old_runs(interval '30 days', 2, :t0::timestamptz + '10 days'), 0, 'nothing is old enough yet');
SELECT is(pgflow.delete_old_runs(interval '30 days', 2, :t0::timestamptz + '40 days'), 2, 'a batch deletes at most p_batch runs');
SELECT is(pgflow.delete_old_runs(interval '30 days', 2, :t0::timestamptz + '40 days'), 2, 'the next batch the next ones');
SELECT is(pgflow.delete_old_runs(interval '30 days', 2, :t0::timestamptz + '40 days'), 1, 'then the last one');
SELECT is(pgflow.delete_old_runs(interval '30 days', 2, :t0::timestamptz + '40 days'), 0, 'until none is left');
SELECT results_eq($$SELECT name FROM pgflow.flow_runs ORDER BY name$$, $$VALUES ('active'), ('young')$$, 'young and unfinished runs stay');
SELECT results_eq($$SELECT (SELECT count(*) FROM pgflow.flow_run_states s WHERE NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = s.flow_run_id)),
                           (SELECT count(*) FROM pgflow.task_runs), (SELECT count(*) FROM pgflow.results),
                           (SELECT count(*) FROM pgflow.logs WHERE flow_run_id NOT IN ('$$ || :'young' || $$', '$$ || :'active' || $$'))$$,
                  $$VALUES (0::bigint, 0::bigint, 0::bigint, 0::bigint)$$, 'their states, task runs, results and logs went with them');
-- retention works in UTC weeks (0019): the failed run ended on Monday 2030-01-21 00:00, so it goes once
-- that whole week is 30 days old, between 30 and 37 days after it ended
SELECT is(pgflow.delete_old_runs(interval '30 days', 10, :t0::timestamptz + '51 days'), 0, 'the failed run stays while its week is younger than the age');
SELECT is(pgflow.delete_old_runs(interval '30 days', 10, :t0::timestamptz + '57 days'), 1, 'it goes when its week is old enough');

SELECT * FROM finish();
ROLLBACK;
