-- Schedules: schedule_flow_runs inserts the missing runs (never twice, whoever calls) and deletes
-- future Scheduled runs of the schedule that are no longer wanted.
BEGIN;
SELECT plan(13);

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_deployment('sc', 'daily', './d.sh', '{"a": 1, "b": 1}', p_now => :t0);
SELECT pgflow.create_deployment_schedule('sc/daily', 'cron', '0 6 * * *', 'Europe/Paris', '{"b": 2}', p_now => :t0) AS sched \gset
SELECT pgflow.create_deployment_schedule('sc/daily', 'interval', '1 hour', p_now => :t0) AS hourly \gset

SELECT results_eq($$SELECT kind, cron, timezone, active FROM pgflow.deployment_schedules WHERE id = '$$ || :'sched' || $$'$$,
                  $$VALUES ('cron', '0 6 * * *', 'Europe/Paris', true)$$, 'a cron schedule is stored');
SELECT results_eq($$SELECT "interval", anchor_date FROM pgflow.deployment_schedules WHERE id = '$$ || :'hourly' || $$'$$,
                  $$VALUES (interval '1 hour', '2030-01-01 00:00:00+00'::timestamptz)$$, 'an interval schedule is anchored at creation');

\set times '''{"2030-01-01 05:00+00","2030-01-02 05:00+00","2030-01-03 05:00+00"}'''
SELECT results_eq($$SELECT inserted, deleted FROM pgflow.schedule_flow_runs('$$ || :'sched' || $$', $$ || quote_literal(:times) || $$, '2030-01-01 00:00+00')$$,
                  $$VALUES (3, 0)$$, 'three runs are materialised');
SELECT results_eq($$SELECT inserted, deleted FROM pgflow.schedule_flow_runs('$$ || :'sched' || $$', $$ || quote_literal(:times) || $$, '2030-01-01 00:00+00')$$,
                  $$VALUES (0, 0)$$, 'calling again inserts nothing (idempotent)');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE deployment_schedule_id = :'sched'), 3, 'no duplicates');
SELECT results_eq($$SELECT DISTINCT parameters, state_name FROM pgflow.flow_runs WHERE deployment_schedule_id = '$$ || :'sched' || $$'$$,
                  $$VALUES ('{"a": 1, "b": 2}'::jsonb, 'Scheduled')$$, 'scheduled runs merge the schedule''s parameters over the deployment''s');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue q JOIN pgflow.flow_runs r ON r.id = q.flow_run_id WHERE r.deployment_schedule_id = :'sched'), 3,
          'scheduled runs wait in the queue until due');

-- another schedule of the same deployment at the same time does not create a second run
SELECT results_eq($$SELECT inserted FROM pgflow.schedule_flow_runs('$$ || :'hourly' || $$', '{"2030-01-01 05:00+00","2030-01-01 06:00+00"}', '2030-01-01 00:00+00')$$,
                  $$VALUES (1)$$, 'one run per (deployment, start), whichever schedule made it');

-- the schedule changed: a time dropped, one added; runs that already started are untouched
SELECT pgflow.register_agent('agent', ARRAY['default'], :t0) AS agent \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true, '2030-01-01 05:00+00');
SELECT results_eq($$SELECT inserted, deleted FROM pgflow.schedule_flow_runs('$$ || :'sched' || $$', '{"2030-01-03 05:00+00","2030-01-04 05:00+00"}', '2030-01-01 05:01+00')$$,
                  $$VALUES (1, 1)$$, 'a dropped future time is deleted, a new one inserted');
SELECT results_eq($$SELECT expected_start_time, state_type::text FROM pgflow.flow_runs WHERE deployment_schedule_id = '$$ || :'sched' || $$' ORDER BY 1$$,
                  $$VALUES ('2030-01-01 05:00+00'::timestamptz, 'RUNNING'), ('2030-01-03 05:00+00', 'SCHEDULED'), ('2030-01-04 05:00+00', 'SCHEDULED')$$,
                  'the run that started is kept');

-- a paused deployment or an inactive schedule wants no runs
SELECT pgflow.set_deployment_paused('sc/daily', true, :t0);
SELECT results_eq($$SELECT inserted, deleted FROM pgflow.schedule_flow_runs('$$ || :'sched' || $$', '{"2030-01-03 05:00+00","2030-01-04 05:00+00"}', '2030-01-01 05:01+00')$$,
                  $$VALUES (0, 2)$$, 'pausing the deployment removes its future scheduled runs');
SELECT pgflow.set_deployment_paused('sc/daily', false, :t0);
UPDATE pgflow.deployment_schedules SET active = false WHERE id = :'hourly';
SELECT results_eq($$SELECT inserted, deleted FROM pgflow.schedule_flow_runs('$$ || :'hourly' || $$', '{"2030-01-01 07:00+00"}', '2030-01-01 05:01+00')$$,
                  $$VALUES (0, 1)$$, 'an inactive schedule keeps no future runs');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue), 0, 'deleted runs left the claimable set');

SELECT * FROM finish();
ROLLBACK;
