-- NOTIFY: enqueueing due runs notifies pgflow_runs with the queue name (once per queue per statement),
-- cancelling notifies pgflow_cancel and resuming pgflow_resume with the run id. Notifications are
-- only delivered on commit, so the test swaps pgflow.notify (all notifications go through it) for a
-- recorder inside its own transaction; the ROLLBACK restores it.
BEGIN;
SELECT plan(9);

CREATE TEMP TABLE sent (channel text, payload text, n serial);
-- (the followers' channels pgflow_flow_run_states and pgflow_logs are tested in cli.sql)
CREATE OR REPLACE FUNCTION pgflow.notify(p_channel text, p_payload text) RETURNS void
LANGUAGE sql AS $$ INSERT INTO sent (channel, payload) SELECT p_channel, p_payload
                    WHERE p_channel NOT IN ('pgflow_flow_run_states', 'pgflow_logs') $$;

SELECT pgflow.create_work_queue('nq');
SELECT pgflow.create_deployment('nt', 'dep', './n.sh', p_work_queue => 'nq');
SELECT pgflow.register_agent('agent', ARRAY['nq']) AS agent \gset

-- due a minute ago: the first in claim order below, before the 10,000 runs due now
SELECT pgflow.run_deployment('nt/dep', p_scheduled_time => now() - interval '1 minute') AS run \gset
SELECT results_eq('SELECT channel, payload FROM sent', $$VALUES ('pgflow_runs', 'nq')$$, 'a due run notifies pgflow_runs with the queue name');

DELETE FROM sent;
SELECT count(*) FROM pgflow.run_deployments('nt/dep', array_fill('{}'::jsonb, ARRAY[10000]));
SELECT is((SELECT count(*)::int FROM sent), 1, 'a 10,000-run bulk enqueue sends one notification');

DELETE FROM sent;
SELECT pgflow.run_deployment('nt/dep', p_scheduled_time => now() + interval '1 day');
SELECT is((SELECT count(*)::int FROM sent), 0, 'a run due later notifies nobody');

DELETE FROM sent;
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true) WHERE flow_run_id = :'run';
SELECT pgflow.cancel_flow_run(:'run');
SELECT results_eq('SELECT channel, payload FROM sent', $$VALUES ('pgflow_cancel', '$$ || :'run' || $$')$$, 'cancelling notifies pgflow_cancel with the run id');
SELECT is(ARRAY(SELECT pgflow.heartbeat(:'agent')), ARRAY[:'run'::uuid], 'the agent''s heartbeat returns its Cancelling runs too');

DELETE FROM sent;
SELECT pgflow.run_deployment('nt/dep', p_flow_run_name => 'to-pause');
SELECT flow_run_id AS paused FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true) \gset
SELECT pgflow.set_flow_run_state(:'paused', 'PAUSED');
DELETE FROM sent;
SELECT pgflow.resume_flow_run(:'paused');
SELECT results_eq('SELECT channel, payload FROM sent', $$VALUES ('pgflow_resume', '$$ || :'paused' || $$')$$, 'resuming a paused run notifies pgflow_resume');

-- Suspended: resumed into the queue, so both channels hear of it
SELECT pgflow.set_flow_run_state(:'paused', 'PAUSED', 'Suspended');
DELETE FROM sent;
SELECT is((pgflow.resume_flow_run(:'paused')).state_name, 'Scheduled', 'a suspended run resumes into its queue');
SELECT results_eq('SELECT channel, payload FROM sent ORDER BY n', $$VALUES ('pgflow_runs', 'nq'), ('pgflow_resume', '$$ || :'paused' || $$')$$,
                  'resuming a suspended run notifies pgflow_resume and pgflow_runs');

-- the trigger is a statement-level one
SELECT ok((SELECT tgtype & 1 = 0 FROM pg_trigger WHERE tgname = 'run_queue_notify'), 'the enqueue trigger fires once per statement, not per row');

SELECT * FROM finish();
ROLLBACK;
