-- Concurrency limits: work queue, deployment (ENQUEUE / CANCEL_NEW), tag and named global limits with
-- leases. Slots are taken on the way to Running and released on the way out, Crashed included.
BEGIN;
SELECT plan(30);

\set t0 '''2030-01-01 00:00:00+00'''

-- work queue limit 2: a claim never takes more
SELECT pgflow.create_work_queue('narrow', 1, 2, p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['default', 'narrow'], :t0) AS agent \gset
SELECT pgflow.create_deployment('lim', 'q', './q.sh', p_work_queue => 'narrow', p_now => :t0);
SELECT count(*) FROM pgflow.run_deployments('lim/q', array_fill('{}'::jsonb, ARRAY[5]), p_now => :t0);
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['narrow'], 10, true, :t0)), 2, 'a queue limit of 2 lets a claim take 2');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['narrow'], 10, true, :t0)), 0, 'a full queue gives nothing');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs r JOIN pgflow.work_queues q ON q.id = r.work_queue_id
            WHERE q.name = 'narrow' AND r.state_name = 'Scheduled'), 3, 'runs of a full queue simply wait, Scheduled');
SELECT is((SELECT slots_in_use FROM pgflow.concurrency_status WHERE name = 'work_queue:narrow'), 2, 'the running runs hold the queue''s slots');
SELECT pgflow.set_flow_run_state(r.id, 'COMPLETED', p_now => :t0) FROM pgflow.flow_runs r
 WHERE r.state_type = 'RUNNING' AND r.work_queue_id = (SELECT id FROM pgflow.work_queues WHERE name = 'narrow') LIMIT 1;
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['narrow'], 10, true, :t0)), 1, 'a completion frees one slot');
SELECT pgflow.set_flow_run_state(r.id, 'CRASHED', p_now => :t0) FROM pgflow.flow_runs r
 WHERE r.state_type = 'RUNNING' AND r.work_queue_id = (SELECT id FROM pgflow.work_queues WHERE name = 'narrow');
SELECT is((SELECT slots_in_use FROM pgflow.concurrency_status WHERE name = 'work_queue:narrow'), 0, 'crashed runs release their slots');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['narrow'], 10, true, :t0)), 2, 'and the queue serves again');

-- deployment limit 1, ENQUEUE: the second run awaits a slot, keeps its place, runs later
SELECT pgflow.create_deployment('lim', 'one', './one.sh', p_concurrency_limit => 1, p_now => :t0);
SELECT pgflow.run_deployment('lim/one', p_flow_run_name => 'first', p_now => :t0) AS first \gset
SELECT pgflow.run_deployment('lim/one', p_flow_run_name => 'second', p_now => :t0) AS second \gset
SELECT results_eq($$SELECT flow_run_name FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', ARRAY['default'], 10, true, '2030-01-01 00:00:00+00')$$,
                  $$VALUES ('first')$$, 'a deployment limit of 1 starts one run');
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = :'second'), 'AwaitingConcurrencySlot', 'the blocked run awaits a concurrency slot');
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['default'], 10, true, :t0)), 0, 'while the limit is full it is not claimed');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'second' AND state_name = 'AwaitingConcurrencySlot'), 1,
          'waiting is recorded once, not once per claim');
SELECT pgflow.set_flow_run_state(:'first', 'COMPLETED', p_now => :t0);
SELECT results_eq($$SELECT flow_run_name, state_name FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', ARRAY['default'], 10, true, '2030-01-01 00:00:00+00')$$,
                  $$VALUES ('second', 'Running')$$, 'when the slot frees, the waiting run is claimed');

-- deployment limit 1, CANCEL_NEW: the new run is cancelled
SELECT pgflow.create_deployment('lim', 'solo', './solo.sh', p_concurrency_limit => 1, p_collision_strategy => 'CANCEL_NEW', p_now => :t0);
SELECT pgflow.run_deployment('lim/solo', p_flow_run_name => 'solo-1', p_now => :t0);
SELECT pgflow.run_deployment('lim/solo', p_flow_run_name => 'solo-2', p_now => :t0) AS solo2 \gset
SELECT results_eq($$SELECT flow_run_name FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', ARRAY['default'], 10, true, '2030-01-01 00:00:00+00')$$,
                  $$VALUES ('solo-1')$$, 'CANCEL_NEW: the first run starts');
SELECT results_eq($$SELECT state_type::text, state_message FROM pgflow.flow_runs WHERE id = '$$ || :'solo2' || $$'$$,
                  $$VALUES ('CANCELLED', 'the deployment''s concurrency limit is full and its collision strategy is CANCEL_NEW')$$,
                  'CANCEL_NEW: the colliding run is cancelled, with the reason');

-- tag limits: flow runs and task runs carrying the tag
SELECT pgflow.create_concurrency_limit('tag:db', 1, p_now => :t0);
SELECT pgflow.create_deployment('lim', 'tagged', './t.sh', p_tags => ARRAY['db'], p_now => :t0);
SELECT count(*) FROM pgflow.run_deployments('lim/tagged', array_fill('{}'::jsonb, ARRAY[3]), p_now => :t0);
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['default'], 10, true, :t0)), 1, 'a tag limit of 1 starts one tagged flow run');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE state_name = 'AwaitingConcurrencySlot' AND 'db' = ANY (tags)), 2, 'the other tagged runs wait');
SELECT pgflow.create_concurrency_limit('tag:db', 3, p_now => :t0);
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', ARRAY['default'], 10, true, :t0)), 2, 'raising the limit lets them run');

SELECT pgflow.create_flow_run('local', p_state_type => 'RUNNING', p_now => :t0) AS local \gset
SELECT pgflow.create_concurrency_limit('tag:gpu', 1, p_now => :t0);
SELECT pgflow.create_task_run(:'local', 'train', '1', p_tags => ARRAY['gpu'], p_now => :t0) AS task1 \gset
SELECT pgflow.create_task_run(:'local', 'train', '2', p_tags => ARRAY['gpu'], p_now => :t0) AS task2 \gset
SELECT is((pgflow.set_task_run_state(:'task1', 'RUNNING', p_now => :t0)).status, 'ACCEPTED', 'a task run takes its tag slot on the way to Running');
SELECT results_eq($$SELECT status, state_name FROM pgflow.set_task_run_state('$$ || :'task2' || $$', 'RUNNING', p_now => '2030-01-01 00:00:00+00')$$,
                  $$VALUES ('WAIT', 'AwaitingConcurrencySlot')$$, 'a second gpu task waits');
SELECT pgflow.set_task_run_state(:'task1', 'COMPLETED', p_now => :t0);
SELECT is((pgflow.set_task_run_state(:'task2', 'RUNNING', p_now => :t0)).status, 'ACCEPTED', 'after the first completes, the second runs');
SELECT pgflow.set_flow_run_state(:'local', 'CRASHED', p_now => :t0);
SELECT results_eq($$SELECT state_type::text, (SELECT count(*)::int FROM pgflow.concurrency_slots WHERE lease_id = t.id) FROM pgflow.task_runs t WHERE t.id = '$$ || :'task2' || $$'$$,
                  $$VALUES ('CRASHED', 0)$$, 'a crashed flow run crashes its running tasks and releases their slots');

-- named global limits with leases
SELECT pgflow.create_concurrency_limit('db', 2, p_now => :t0);
SELECT pgflow.acquire_concurrency_slots(ARRAY['db'], 1, interval '1 minute', p_now => :t0) AS lease1 \gset
SELECT ok(:'lease1' IS NOT NULL, 'a free slot is granted with a lease');
SELECT pgflow.acquire_concurrency_slots(ARRAY['db'], 1, interval '10 minutes', p_now => :t0) AS lease2 \gset
SELECT ok(pgflow.acquire_concurrency_slots(ARRAY['db'], 1, interval '1 minute', p_now => :t0) IS NULL, 'a full limit grants nothing (NULL)');
SELECT ok(pgflow.acquire_concurrency_slots(ARRAY['db'], 1, interval '1 minute', p_now => :t0::timestamptz + '2 minutes') IS NOT NULL,
          'an expired lease stops counting: its slot comes back');
SELECT ok(NOT pgflow.renew_concurrency_lease(:'lease1', interval '1 minute', :t0::timestamptz + '2 minutes'), 'an expired lease cannot be renewed');
SELECT ok(pgflow.renew_concurrency_lease(:'lease2', interval '30 minutes', :t0::timestamptz + '2 minutes'), 'a live lease is renewed');
SELECT is(pgflow.release_concurrency_slots(:'lease2'), 1, 'releasing a lease frees its slot');
SELECT is(pgflow.release_expired_slots(:t0::timestamptz + '1 hour'), 2, 'release_expired_slots deletes expired leases');
SELECT ok(pgflow.acquire_concurrency_slots(ARRAY['db', 'tag:gpu'], 1, p_now => :t0) IS NOT NULL, 'several limits at once, all or nothing');
SELECT throws_ok($$SELECT pgflow.acquire_concurrency_slots(ARRAY['db'], 3)$$, '22023', NULL, 'more slots than the limit has can never be granted');

SELECT * FROM finish();
ROLLBACK;
