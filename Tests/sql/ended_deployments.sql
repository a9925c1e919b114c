-- 0026: the state row of an ending carries its run's deployment (the completion's and the transitions'),
-- flow_run_states_ended INCLUDEs it, and failing_deployments counts from it (rows from before 0026, without
-- it, by a lookup of the run).
BEGIN;
SELECT plan(8);

SELECT pgflow.create_deployment('ed', 'a', './a.sh');
SELECT pgflow.create_deployment('ed', 'b', './b.sh');
SELECT array_agg(pgflow.run_deployment('ed/a')) AS a_runs FROM generate_series(1, 5) \gset
SELECT pgflow.run_deployment('ed/b') AS b_run \gset
SELECT pgflow.register_agent('ed-agent', ARRAY['default']) AS agent \gset
SELECT is((SELECT count(*)::int FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true)), 6, 'six runs claimed and started');

-- three of a complete (the drain's completion), two of a and the one of b fail (the transitions)
SELECT is((SELECT count(*)::int FROM pgflow.set_flow_run_states((:'a_runs'::uuid[])[1:3], array_fill('COMPLETED'::text, ARRAY[3]),
                                                                  NULL, NULL, NULL, ARRAY[gen_random_uuid(), gen_random_uuid(), gen_random_uuid()], :'agent')
            WHERE status = 'ACCEPTED'), 3, 'three runs of ed/a completed');
SELECT is((SELECT count(*)::int FROM pgflow.set_flow_run_states((:'a_runs'::uuid[])[4:5] || :'b_run'::uuid, array_fill('FAILED'::text, ARRAY[3]),
                                                                  NULL, NULL, NULL, NULL, :'agent', p_allow_retry => false)
            WHERE status = 'ACCEPTED'), 3, 'two of ed/a and the one of ed/b failed');

SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states s JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
            WHERE s.flow_run_id = ANY ((:'a_runs'::uuid[]) || :'b_run'::uuid) AND pgflow.is_terminal(s.state_type)
              AND s.deployment_id IS NOT DISTINCT FROM r.deployment_id),
          6, 'every ending''s state row carries its run''s deployment (completion and transition alike)');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states s
            WHERE s.flow_run_id = ANY ((:'a_runs'::uuid[]) || :'b_run'::uuid) AND NOT pgflow.is_terminal(s.state_type)
              AND s.deployment_id IS NOT NULL),
          0, '... and no other state row does');
SELECT ok((SELECT pg_get_indexdef('pgflow.flow_run_states_ended'::regclass) LIKE '%INCLUDE (%deployment_id)%'),
          'flow_run_states_ended includes the deployment (the window''s reads by deployment are index-only)');

SELECT results_eq($$SELECT deployment, failed, finished FROM pgflow.failing_deployments(now() - interval '1 hour', 10)$$,
                  $$VALUES ('ed/a', 2::bigint, 5::bigint), ('ed/b', 1::bigint, 1::bigint)$$,
                  'failing_deployments: ed/a 2 failed of 5 ended, ed/b 1 of 1');
-- an ending written before 0026 (no deployment on its row) is found through its run
UPDATE pgflow.flow_run_states SET deployment_id = NULL WHERE flow_run_id = :'b_run' AND state_type = 'FAILED';
SELECT results_eq($$SELECT deployment, failed, finished FROM pgflow.failing_deployments(now() - interval '1 hour', 10)$$,
                  $$VALUES ('ed/a', 2::bigint, 5::bigint), ('ed/b', 1::bigint, 1::bigint)$$,
                  '... the same with an ending from before 0026, without the deployment on its row');

SELECT * FROM finish();
ROLLBACK;
