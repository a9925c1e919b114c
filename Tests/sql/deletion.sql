-- Missed-run policies, and deleting schedules, flow runs, deployments and work queues, and resetting a
-- limit: what goes, what stays as history, and the refusals (in use: 55000, unknown: P0002), which
-- write nothing.
BEGIN;
SELECT plan(46);

-- err(sql): 'SQLSTATE: message' when sql raises with a HINT, 'no hint: ...' without, 'no error' if it runs
CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text; v_msg text; v_hint text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
    RETURN CASE WHEN coalesce(v_hint, '') = '' THEN 'no hint: ' ELSE '' END || v_state || ': ' || v_msg;
END $$;

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_work_queue('side', p_concurrency_limit => 2, p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['default', 'side'], :t0) AS agent \gset

-- missed-run policy: stored per deployment, NULL = the scheduler's default
SELECT pgflow.create_deployment('mr', 'dep', './m.sh', p_missed_run_policy => 'skip', p_now => :t0);
SELECT is((SELECT missed_run_policy FROM pgflow.deployment_list WHERE deployment = 'mr/dep'), 'skip', 'create_deployment stores the policy; deployment_list shows it');
SELECT pgflow.set_deployment_missed_run_policy('mr/dep', 'latest', :t0);
SELECT is((SELECT missed_run_policy FROM pgflow.deployments WHERE name = 'dep'), 'latest', 'set_deployment_missed_run_policy changes it');
SELECT is(pg_temp.err($$SELECT pgflow.set_deployment_missed_run_policy('mr/dep', 'sometimes')$$), '22023: pgflow: invalid missed-run policy ''sometimes''', 'a bad policy');
SELECT is((SELECT missed_run_policy FROM pgflow.deployments WHERE name = 'dep'), 'latest', 'a bad policy writes nothing');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('mr', 'other', './o.sh', p_missed_run_policy => 'all')$$), '22023: pgflow: invalid missed-run policy ''all''', 'create_deployment checks it too');
SELECT is(pg_temp.err($$SELECT pgflow.set_deployment_missed_run_policy('mr/nope', 'skip')$$), 'P0002: pgflow: unknown deployment ''mr/nope''', 'an unknown deployment');
SELECT pgflow.set_deployment_missed_run_policy('mr/dep', NULL, :t0);
SELECT is((SELECT missed_run_policy FROM pgflow.deployments WHERE name = 'dep'), NULL, 'NULL: back to the scheduler''s default');
SELECT pgflow.create_deployment('mr', 'dep', './m.sh', p_missed_run_policy => 'run_all', p_now => :t0);
SELECT pgflow.create_deployment('mr', 'dep', './m.sh', p_now => :t0);
SELECT is((SELECT missed_run_policy FROM pgflow.deployments WHERE name = 'dep'), NULL, 'create_deployment sets every setting, the policy included');

-- delete_deployment_schedule: its future Scheduled runs go, a run already due stays
SELECT pgflow.create_deployment('sc', 'dep', './s.sh', p_now => :t0);
SELECT pgflow.create_deployment_schedule('sc/dep', 'interval', '1 hour', p_now => :t0) AS sched \gset
SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', '{"2030-01-01 00:00+00","2030-01-01 01:00+00","2030-01-01 02:00+00"}', :t0);
SELECT is(pgflow.delete_deployment_schedule(:'sched', '2030-01-01 00:30+00'), true, 'delete_deployment_schedule returns true');
SELECT results_eq($$SELECT expected_start_time FROM pgflow.flow_runs WHERE deployment_schedule_id = '$$ || :'sched' || $$'$$,
                  $$VALUES ('2030-01-01 00:00+00'::timestamptz)$$, 'its future runs are deleted, the due one stays');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue q JOIN pgflow.flow_runs r ON r.id = q.flow_run_id WHERE r.deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'dep' AND entrypoint = './s.sh')),
          1, 'with their queue rows');
SELECT is((SELECT count(*)::int FROM pgflow.deployment_schedules WHERE id = :'sched'), 0, 'the schedule is gone');
SELECT is(pg_temp.err($$SELECT pgflow.delete_deployment_schedule('$$ || :'sched' || $$')$$), 'P0002: pgflow: unknown deployment schedule ' || :'sched', 'deleting it again: unknown');
SELECT is(pg_temp.err($$SELECT pgflow.schedule_flow_runs('$$ || :'sched' || $$', '{}')$$), 'P0002: pgflow: unknown deployment schedule ' || :'sched', 'the scheduler can no longer fill it');

-- delete_flow_run: a finished run goes with everything that hangs off it
SELECT pgflow.create_deployment('fr', 'dep', './f.sh', p_now => :t0);
SELECT pgflow.run_deployment('fr/dep', p_flow_run_name => 'done', p_now => :t0) AS done \gset
SELECT pgflow.run_deployment('fr/dep', p_flow_run_name => 'busy', p_now => :t0) AS busy \gset
SELECT pgflow.run_deployment('fr/dep', p_flow_run_name => 'later', p_scheduled_time => '2030-01-02 00:00+00', p_now => :t0) AS later \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true, :t0) WHERE flow_run_id IN (:'done', :'busy');
SELECT pgflow.create_task_run(:'done', 'extract', p_cache_key => 'fr-extract', p_now => :t0) AS task \gset
SELECT pgflow.set_task_run_state(:'task', 'RUNNING', p_now => :t0);
SELECT pgflow.set_task_run_state(:'task', 'COMPLETED', p_result => '{"rows": 1}', p_now => :t0);
SELECT pgflow.write_log(:'done', 20, 'hello', p_task_run_id => :'task', p_now => :t0);
SELECT pgflow.set_flow_run_state(:'done', 'COMPLETED', p_result => '{"ok": true}', p_now => :t0);
SELECT is(pg_temp.err($$SELECT pgflow.delete_flow_run('$$ || :'busy' || $$')$$), '55000: pgflow: flow run ' || :'busy' || ' is RUNNING: a run in progress cannot be deleted', 'a running run is refused');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'busy'), 3, 'and keeps its history (Scheduled, Pending, Running)');
SELECT is(pgflow.delete_flow_run(:'done'), true, 'a finished run is deleted');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE id = :'done') + (SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'done')
          + (SELECT count(*)::int FROM pgflow.task_runs WHERE flow_run_id = :'done') + (SELECT count(*)::int FROM pgflow.task_run_states WHERE task_run_id = :'task')
          + (SELECT count(*)::int FROM pgflow.results WHERE run_id IN (:'done', :'task')) + (SELECT count(*)::int FROM pgflow.logs WHERE flow_run_id = :'done')
          + (SELECT count(*)::int FROM pgflow.task_run_cache WHERE cache_key = 'fr-extract'), 0,
          'with its states, task runs and their states, results, logs and cache entries');
SELECT is(pgflow.delete_flow_run(:'later'), true, 'a run that has not started is deleted');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'later'), 0, 'with its queue row');
SELECT is(pg_temp.err($$SELECT pgflow.delete_flow_run('$$ || :'done' || $$')$$), 'P0002: pgflow: unknown flow run ' || :'done', 'deleting it again: unknown');
SELECT pgflow.set_flow_run_state(:'busy', 'COMPLETED', p_now => :t0);

-- delete_deployment: refused while a run is in progress; then unstarted runs go, history stays
SELECT pgflow.create_deployment('dd', 'dep', './d.sh', p_retries => 1, p_retry_delays => '{600}', p_concurrency_limit => 5, p_now => :t0) AS dd \gset
SELECT pgflow.create_deployment_schedule('dd/dep', 'cron', '0 * * * *', p_now => :t0) AS dd_sched \gset
SELECT inserted FROM pgflow.schedule_flow_runs(:'dd_sched', '{"2030-01-01 01:00+00","2030-01-01 02:00+00"}', :t0);
SELECT pgflow.run_deployment('dd/dep', p_flow_run_name => 'finished', p_now => :t0) AS finished \gset
SELECT pgflow.run_deployment('dd/dep', p_flow_run_name => 'retrying', p_now => :t0) AS retrying \gset
SELECT pgflow.run_deployment('dd/dep', p_flow_run_name => 'running', p_now => :t0) AS running \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true, :t0) WHERE flow_run_id IN (:'finished', :'retrying', :'running');
SELECT pgflow.set_flow_run_state(:'finished', 'COMPLETED', p_now => :t0);
SELECT is((pgflow.set_flow_run_state(:'retrying', 'FAILED', p_now => :t0)).state_name, 'AwaitingRetry', 'a failed run waits to retry');
SELECT count(*) AS runs_before FROM pgflow.flow_runs \gset
SELECT count(*) AS states_before FROM pgflow.flow_run_states \gset
SELECT is(pg_temp.err($$SELECT pgflow.delete_deployment('dd/dep')$$), '55000: pgflow: deployment ''dd/dep'' has 1 run(s) in progress', 'a deployment with a running run is refused');
SELECT is((SELECT count(*) FROM pgflow.flow_runs) + (SELECT count(*) FROM pgflow.flow_run_states), :runs_before::bigint + :states_before,
          'the refusal writes nothing');
SELECT pgflow.set_flow_run_state(:'running', 'COMPLETED', p_now => :t0);
SELECT is(pgflow.delete_deployment('dd/dep', '2030-01-01 00:10+00'), 2, 'then it deletes its two unstarted scheduled runs');
SELECT results_eq($$SELECT name, state_name, deployment_id IS NULL FROM pgflow.flow_runs WHERE name IN ('finished', 'retrying', 'running') ORDER BY name$$,
                  $$VALUES ('finished', 'Completed', true), ('retrying', 'Cancelled', true), ('running', 'Completed', true)$$,
                  'finished runs stay as history without a deployment; a run awaiting its retry ends Cancelled');
SELECT ok((SELECT state_message LIKE 'its deployment was deleted%' FROM pgflow.flow_runs WHERE id = :'retrying'), 'saying why');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id IN (SELECT id FROM pgflow.flow_runs WHERE deployment_id IS NULL)), 0,
          'nothing of it is left to claim');
SELECT is((SELECT count(*)::int FROM pgflow.deployments WHERE id = :'dd') + (SELECT count(*)::int FROM pgflow.deployment_schedules WHERE id = :'dd_sched')
          + (SELECT count(*)::int FROM pgflow.concurrency_limits WHERE name = 'deployment:dd/dep'), 0,
          'the deployment, its schedules and its concurrency limit are gone');
SELECT is(pg_temp.err($$SELECT pgflow.delete_deployment('dd/dep')$$), 'P0002: pgflow: unknown deployment ''dd/dep''', 'deleting it again: unknown');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_history WHERE name = 'finished' AND flow = 'dd' AND deployment IS NULL), 1, 'the history view still shows its runs');

-- delete_work_queue: not 'default', not while used; finished runs keep their history
SELECT pgflow.create_deployment('wq', 'dep', './w.sh', p_work_queue => 'side', p_now => :t0);
SELECT is(pg_temp.err($$SELECT pgflow.delete_work_queue('default')$$), '55000: pgflow: the default work queue cannot be deleted', 'the default queue stays');
SELECT is(pg_temp.err($$SELECT pgflow.delete_work_queue('nope')$$), 'P0002: pgflow: unknown work queue ''nope''', 'an unknown queue');
SELECT is(pg_temp.err($$SELECT pgflow.delete_work_queue('side')$$), '55000: pgflow: work queue ''side'' is used by deployment(s) wq/dep', 'a queue a deployment uses');
SELECT pgflow.create_deployment('wq', 'dep', './w.sh', p_now => :t0);
SELECT pgflow.run_deployment('wq/dep', p_work_queue => 'side', p_flow_run_name => 'side-run', p_now => :t0) AS side_run \gset
SELECT is(pg_temp.err($$SELECT pgflow.delete_work_queue('side')$$), '55000: pgflow: work queue ''side'' has 1 run(s) waiting or in progress', 'a queue with a waiting run');
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', ARRAY['side'], 10, true, :t0);
SELECT is(pg_temp.err($$SELECT pgflow.delete_work_queue('side')$$), '55000: pgflow: work queue ''side'' has 1 run(s) waiting or in progress', 'a queue with a running run');
SELECT pgflow.set_flow_run_state(:'side_run', 'COMPLETED', p_now => :t0);
SELECT is(pg_temp.err($$SELECT pgflow.delete_work_queue('side')$$), '55000: pgflow: work queue ''side'' is polled by online agent(s) agent', 'a queue an online agent polls');
SELECT pgflow.deregister_agent(:'agent', :t0);
SELECT lives_ok($$SELECT pgflow.delete_work_queue('side')$$, 'a queue nothing uses is deleted');
SELECT is((SELECT count(*)::int FROM pgflow.work_queues WHERE name = 'side') + (SELECT count(*)::int FROM pgflow.concurrency_limits WHERE name = 'work_queue:side'), 0,
          'with its concurrency limit');
SELECT results_eq($$SELECT state_name, work_queue_id IS NULL FROM pgflow.flow_runs WHERE id = '$$ || :'side_run' || $$'$$, $$VALUES ('Completed', true)$$,
                  'its finished runs stay, without a queue');
SELECT pgflow.register_agent('agent', ARRAY['default'], :t0) AS agent \gset

-- reset_concurrency_limit: releases leases, keeps the slots of runs in progress
SELECT pgflow.create_concurrency_limit('tag:etl', 5, p_now => :t0);
SELECT pgflow.create_deployment('rs', 'dep', './r.sh', p_tags => ARRAY['etl'], p_now => :t0);
SELECT pgflow.run_deployment('rs/dep', p_now => :t0) AS tagged \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true, :t0) WHERE flow_run_id = :'tagged';
SELECT isnt(pgflow.acquire_concurrency_slots(ARRAY['tag:etl'], 2, p_now => :t0), NULL, 'a lease of 2 slots');
SELECT isnt(pgflow.acquire_concurrency_slots(ARRAY['tag:etl'], 1, interval '1 second', p_now => :t0), NULL, 'and one that expires');
SELECT is(pgflow.reset_concurrency_limit('tag:etl'), 3, 'reset releases the slots of every lease');
SELECT results_eq($$SELECT holder_kind, lease_id FROM pgflow.concurrency_slots s JOIN pgflow.concurrency_limits l ON l.id = s.limit_id WHERE l.name = 'tag:etl'$$,
                  $$VALUES ('flow_run', '$$ || :'tagged' || $$'::uuid)$$, 'the running run keeps its slot');
SELECT is(pgflow.reset_concurrency_limit('tag:etl'), 0, 'a second reset releases nothing');
SELECT is(pg_temp.err($$SELECT pgflow.reset_concurrency_limit('nope')$$), 'P0002: pgflow: unknown concurrency limit ''nope''', 'an unknown limit');

SELECT * FROM finish();
ROLLBACK;
