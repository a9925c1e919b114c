-- The claim's one-version fast path while limits are active elsewhere (0020): taken when no active limit
-- applies to the runs it claims (the queues', the candidates' deployments' and tags'), else the general
-- claim, which gives slots and leaves runs waiting for one. Which path ran is read from the calls of
-- pgflow._claim_flow_runs_general in this transaction (track_functions).
BEGIN;
SELECT plan(13);
SET LOCAL track_functions = 'all';
CREATE FUNCTION pg_temp.general_calls() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(pg_stat_get_xact_function_calls('pgflow._claim_flow_runs_general'::regproc), 0) $$;

SELECT pgflow.create_work_queue('lq');
SELECT pgflow.create_deployment('lf', 'free', './f.sh', p_work_queue => 'lq', p_tags => ARRAY['x']);
SELECT pgflow.create_deployment('lf', 'capped', './c.sh', p_work_queue => 'lq', p_concurrency_limit => 1);
SELECT pgflow.create_concurrency_limit('db', 2);           -- a global limit (leases only)
SELECT pgflow.create_concurrency_limit('tag:unrelated', 2);
SELECT pgflow.register_agent('la', ARRAY['lq']) AS agent \gset

-- runs no active limit applies to: the fast path, no slot
SELECT count(*) FROM pgflow.run_deployments('lf/free', ARRAY['{}', '{}']::jsonb[]);
SELECT pg_temp.general_calls() AS before \gset
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 5, true)), 2, 'both runs of a deployment without limits are claimed');
SELECT is(pg_temp.general_calls() - :before, 0::bigint, '... by the fast path, though limits are active elsewhere');
SELECT is((SELECT count(*)::int FROM pgflow.concurrency_slots), 0, '... taking no slot');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'free') AND state_type = 'RUNNING'),
          2, '... and starting them');

-- a batch with runs of the limited deployment: the general claim, which admits one of them
SELECT pgflow.run_deployment('lf/capped') AS c1 \gset
SELECT pgflow.run_deployment('lf/free') AS f1 \gset
SELECT pgflow.run_deployment('lf/capped') AS c2 \gset
SELECT pgflow.run_deployment('lf/free') AS f2 \gset
SELECT pgflow.run_deployment('lf/capped') AS c3 \gset
SELECT pg_temp.general_calls() AS before \gset
SELECT is(ARRAY(SELECT flow_run_id FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true) ORDER BY 1),
          ARRAY(SELECT unnest(ARRAY[:'c1'::uuid, :'f1'::uuid, :'f2'::uuid]) ORDER BY 1),
          'a batch holding runs of a deployment with a limit of 1 claims one of them and the others');
SELECT is(pg_temp.general_calls() - :before, 1::bigint, '... through the general claim');
SELECT is((SELECT count(*)::int FROM pgflow.concurrency_slots), 1, '... the admitted run holding the one slot');
SELECT is(ARRAY(SELECT state_name FROM pgflow.flow_runs WHERE id IN (:'c2', :'c3')), ARRAY['AwaitingConcurrencySlot', 'AwaitingConcurrencySlot'],
          '... the other two waiting for it');
SELECT pgflow.set_flow_run_state(:'c1', 'COMPLETED');
SELECT pgflow.set_flow_run_state(id, 'COMPLETED') FROM pgflow.flow_runs WHERE state_type = 'RUNNING';
DELETE FROM pgflow.run_queue;

-- a tag limit on one of the runs' tags
SELECT pgflow.create_concurrency_limit('tag:x', 1);
SELECT count(*) FROM pgflow.run_deployments('lf/free', ARRAY['{}', '{}']::jsonb[]);
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 5, true)), 1, 'a tag limit of 1 on the runs'' tag admits one');
SELECT pgflow.set_flow_run_state(id, 'COMPLETED') FROM pgflow.flow_runs WHERE state_type = 'RUNNING';
DELETE FROM pgflow.run_queue;
SELECT pgflow.delete_concurrency_limit('tag:x');

-- the queue's limit
SELECT pgflow.set_work_queue_concurrency_limit('lq', 1);
SELECT count(*) FROM pgflow.run_deployments('lf/free', ARRAY['{}', '{}']::jsonb[]);
SELECT pg_temp.general_calls() AS before \gset
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 5, true)), 1, 'a queue limit of 1 admits one');
SELECT is(pg_temp.general_calls() - :before, 1::bigint, '... through the general claim');
SELECT pgflow.set_work_queue_concurrency_limit('lq', NULL);

-- the limit's deployment with no run of it queued: the fast path again
SELECT pgflow.set_flow_run_state(id, 'COMPLETED') FROM pgflow.flow_runs WHERE state_type = 'RUNNING';
DELETE FROM pgflow.run_queue;
SELECT count(*) FROM pgflow.run_deployments('lf/free', ARRAY['{}']::jsonb[]);
SELECT pg_temp.general_calls() AS before \gset
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 5, true)), 1, 'with the limited deployment''s runs gone, the run is claimed');
SELECT is(pg_temp.general_calls() - :before, 0::bigint, '... by the fast path again');

SELECT * FROM finish();
ROLLBACK;
