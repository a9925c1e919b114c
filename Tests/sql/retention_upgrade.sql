-- An existing database upgraded by the retention migration (0019): the schema is built again from the
-- migrations before it (in a schema of its own name, the installed one set aside for this transaction),
-- given a history with random v4 ids, then upgraded. Run from the repository's root (scripts/test.sh does).
BEGIN;
SELECT plan(21);
ALTER SCHEMA pgflow RENAME TO pgflow_set_aside;

-- every migration before the retention one, then a history made by that schema
\set before `cat $(ls sql/migrations/0*.sql | sort | sed '/_retention\.sql$/,$d')`
:before
SELECT pgflow.create_deployment('up', 'dep', './u.sh') IS NOT NULL AS made \gset
SELECT pgflow.create_deployment_schedule('up/dep', 'interval', '1 hour') AS sched \gset
SELECT pgflow.register_agent('agent', ARRAY['default']) AS agent \gset
SELECT count(*) FROM pgflow.run_deployments('up/dep', array_fill('{}'::jsonb, ARRAY[4]));
SELECT pgflow.run_deployment('up/dep', p_idempotency_key => 'old-key') AS keyed \gset
SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[now() + interval '1 hour']) \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 3, true);
SELECT count(*) FROM pgflow.flow_runs r, LATERAL pgflow.create_task_runs(r.id, ARRAY['a']) t WHERE r.state_type = 'RUNNING';
SELECT count(pgflow.set_task_run_state(id, 'RUNNING')) + count(pgflow.set_task_run_state(id, 'COMPLETED', p_result => '2')) FROM pgflow.task_runs;
SELECT pgflow.write_logs(ARRAY(SELECT id FROM pgflow.flow_runs), array_fill(20, ARRAY[6]), array_fill('old'::text, ARRAY[6]));
SELECT count(pgflow.set_flow_run_state(id, 'COMPLETED', p_result => '1')) FROM pgflow.flow_runs WHERE state_type = 'RUNNING';
CREATE TEMP TABLE old_runs AS SELECT id, state_type FROM pgflow.flow_runs;
-- and one more, running, whose random id happens to fall in the week 14 days from now (a v4 id with the
-- milliseconds of that week's Monday 01:00 UTC first)
SELECT (lpad(to_hex(((extract(epoch FROM date_trunc('week', now() AT TIME ZONE 'UTC' + interval '14 days') AT TIME ZONE 'UTC') + 3600) * 1000)::bigint), 12, '0')
        || '4' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid AS future \gset
INSERT INTO pgflow.flow_runs SELECT (jsonb_populate_record(r, jsonb_build_object('id', :'future', 'name', 'future', 'idempotency_key', NULL,
                                                                                  'state_type', 'RUNNING', 'state_name', 'Running'))).*
  FROM pgflow.flow_runs r WHERE id = :'keyed';
SELECT is((SELECT count(*)::integer FROM old_runs WHERE id::text ~ '^.{14}4'), 6, 'the old schema made 6 runs with v4 ids');

-- the upgrade
\set retention `cat sql/migrations/*_retention.sql`
:retention

SELECT is((SELECT count(*)::integer FROM pgflow.flow_runs WHERE tableoid IN (SELECT relid FROM pg_partition_tree('pgflow.flow_runs_default'))
              AND id IN (SELECT id FROM old_runs)), 6, 'the old runs are in the default partition');
SELECT is((SELECT count(*)::integer FROM pgflow.flow_run_states s JOIN old_runs o ON o.id = s.flow_run_id), 15, 'with their states');
SELECT is((SELECT count(*)::integer FROM pgflow.logs WHERE message = 'old'), 6, 'their logs');
SELECT is((SELECT count(*)::integer FROM pgflow.results), 6, 'the results of 3 runs and 3 task runs');
SELECT is((SELECT count(*)::integer FROM pgflow.flow_run_history WHERE id IN (SELECT id FROM old_runs)), 6, 'the history view reads them');
SELECT is((SELECT count(*)::integer FROM pgflow.flow_run_keys), 2, 'the old key and slot are in flow_run_keys');

-- old runs keep working
SELECT is(pgflow.run_deployment('up/dep', p_idempotency_key => 'old-key'), :'keyed'::uuid, 'an old idempotency key still returns its run');
SELECT is((SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[now() + interval '1 hour'])), 0, 'an old slot still has its run');
SELECT is((SELECT count(*)::integer FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true)), 2, 'the old queued runs are claimed');
SELECT is((SELECT count(*)::integer FROM pgflow.flow_run_logs(:'keyed')), 1, 'an old run''s logs are read by id');
SELECT is((pgflow.set_flow_run_state(:'keyed', 'COMPLETED')).status, 'ACCEPTED', 'an old run completes');

-- making a week does not read the old rows (PostgreSQL proves from _legacy's CHECK that none is of that week)
SELECT is(ARRAY(SELECT relid::text FROM pg_partition_tree('pgflow.flow_runs_default') WHERE isleaf ORDER BY 1),
          ARRAY['pgflow.flow_runs_legacy', 'pgflow.flow_runs_legacy_lo'],
          'the default partition of a database upgraded with history is split in two');
SELECT is((SELECT count(*)::integer FROM pgflow._history_tables() t JOIN pg_constraint k
             ON k.conrelid = to_regclass(format('pgflow.%I', t.name || '_legacy')) AND k.contype = 'c' AND k.convalidated
            AND k.conname = t.name || '_legacy_ids'), 5,
          'each old table with rows has its validated CHECK on the ids (5: no run had tags; flow_run_tags_default stays a plain table)');
CREATE TEMP TABLE scans AS SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE schemaname = 'pgflow' AND relname ~ '_legacy$';
SELECT ok(pgflow._ensure_history_week((now() AT TIME ZONE 'UTC')::date + 14), 'the week 14 days ahead is made');
SELECT is((SELECT count(*)::integer FROM pg_stat_xact_user_tables x JOIN scans s USING (relname)
            WHERE x.schemaname = 'pgflow' AND x.seq_scan = s.seq_scan), 5, 'without a scan of any of the five old tables');
SELECT is((SELECT tableoid::regclass::text FROM pgflow.flow_runs WHERE id = :'future'),
          'pgflow.flow_runs_w' || to_char(date_trunc('week', now() AT TIME ZONE 'UTC' + interval '14 days'), 'YYYYMMDD'),
          'an old run with an id of that week moved into its partition');

-- a new run goes to this week's partition; the old ones are removed by the row path, once
SELECT pgflow.run_deployment('up/dep', p_flow_run_name => 'new') AS new \gset
SELECT is((SELECT tableoid::regclass::text FROM pgflow.flow_runs WHERE id = :'new'),
          'pgflow.flow_runs_w' || to_char(date_trunc('week', now() AT TIME ZONE 'UTC'), 'YYYYMMDD'), 'a new run goes to this week''s partition');
SELECT is(pgflow.delete_old_runs('30 days', 100, now() + interval '40 days'), 4, 'retention deletes the 4 ended old runs by row');
SELECT is(pgflow.delete_old_runs('30 days', 100, now() + interval '40 days'), 0, 'once');
SELECT results_eq($$SELECT (SELECT count(*) FROM pgflow.flow_runs_default), (SELECT count(*) FROM pgflow.flow_run_states_default),
                           (SELECT count(*) FROM pgflow.logs_default), (SELECT count(*) FROM pgflow.results_default),
                           (SELECT count(*) FROM pgflow.task_run_states_default), (SELECT count(*) FROM pgflow.task_runs)$$,
                  $$VALUES (2::bigint, 4::bigint, 2::bigint, 0::bigint, 0::bigint, 0::bigint)$$,
                  'the default partitions keep the two old runs not ended (4 states, 2 logs); the ended ones'' task runs are gone');

SELECT * FROM finish();
ROLLBACK;
