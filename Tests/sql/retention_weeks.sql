-- Retention in O(1) (0019): history partitioned by UTC week (Monday to Monday), a week removed by dropping
-- its partitions. Runs made now fall in this week's partitions; retention is then called with a p_now 40
-- days later, so that this week is old. Each scenario runs from one savepoint.
BEGIN;
SELECT plan(44);
-- Retention drops weeks under a 500 ms lock_timeout and returns 0 when the tables are busy (its next pass
-- drops them); autovacuum of this test database (dead rows of the files before) can hold a partition that
-- long. The test takes those locks first and waits as long as it must (autovacuum gives way to a waiting
-- lock after deadlock_timeout), so what it checks is what retention does, not when autovacuum ran.
LOCK TABLE pgflow.flow_runs, pgflow.flow_run_states, pgflow.task_run_states, pgflow.results, pgflow.logs,
           pgflow.flow_run_tags IN ACCESS EXCLUSIVE MODE;

\set today '(now() AT TIME ZONE \'UTC\')::date'
-- a table's partition of the week of p_day (any day of it)
CREATE FUNCTION pg_temp.part(p_table text, p_day date) RETURNS regclass LANGUAGE sql AS
    $$ SELECT to_regclass(format('pgflow.%I', p_table || '_w' || to_char(date_trunc('week', p_day), 'YYYYMMDD'))) $$;
CREATE FUNCTION pg_temp.week_parts(p_day date) RETURNS integer LANGUAGE sql AS
    $$ SELECT count(pg_temp.part(t, p_day))::integer FROM unnest(ARRAY['flow_runs', 'flow_run_states', 'task_run_states', 'results', 'logs', 'flow_run_tags']) t $$;

-- ids
SELECT is(pgflow._uuid7()::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$', true, 'run ids are UUIDv7');
SELECT cmp_ok(abs(extract(epoch FROM pgflow._uuid7_time(pgflow._uuid7()) - clock_timestamp())), '<', 1::numeric, 'a UUIDv7 carries the time it was made');
SELECT ok(pgflow._uuid7_floor('2030-01-01') < pgflow._uuid7('2030-01-01 00:00:00.001') AND pgflow._uuid7('2029-12-31 23:59:59.999') < pgflow._uuid7_floor('2030-01-01'),
          'the floor of an instant sorts between the ids of the instants around it');

-- weeks
SELECT is(pgflow._history_week('2026-12-06 23:59:59+00'), '2026-11-30'::date, 'a week starts on Monday (UTC): a Sunday is in the week before');
SELECT is(pgflow._history_week('2026-12-07 00:00:00+00'), '2026-12-07'::date, 'and Monday 00:00 UTC starts the next');
SELECT is(pgflow._history_week('2026-12-07 00:30:00+01'), '2026-11-30'::date, 'in UTC, whatever the time zone of the instant');
SELECT ok(pgflow._history_week_lo('2026-11-30') = pgflow._uuid7_floor('2026-11-30 00:00+00')
          AND pgflow._history_week_hi('2026-11-30') = pgflow._history_week_lo('2026-12-07'), 'weeks are bounded by the UUIDv7 of their Mondays');

-- partitions ahead
SELECT is(pg_temp.week_parts(:today + k), 6, format('the six tables have partitions of the week %s day(s) ahead after the migration', k))
  FROM generate_series(0, 2) k;
SELECT is(pgflow.delete_old_runs('30 days', 10, now() + interval '10 days'), 0, 'retention 10 days ahead (nothing old)');
SELECT is(pg_temp.week_parts(:today + k), 6, format('retention creates the partitions of its week and of the week 2 days ahead (%s)', k))
  FROM generate_series(10, 12) k;
SELECT is(pg_temp.week_parts(date_trunc('week', :today + 12)::date + 7), 0, 'and no further');
SELECT is((SELECT count(*)::integer FROM pg_inherits WHERE inhparent = 'pgflow.flow_runs'::regclass),
          (SELECT count(DISTINCT date_trunc('week', d))::integer + 1
             FROM unnest(ARRAY[:today, :today + 2, :today + 10, :today + 12]) d), 'one partition per week (and the default)');
-- an old empty week
SELECT ok(pgflow._ensure_history_week(:today - 7), 'last week''s partitions are made');

-- the day's history: 3 runs with task runs, task states, results, logs, an input, an artifact, a key
SELECT pgflow.create_deployment('rd', 'dep', './r.sh') \gset
SELECT pgflow.register_agent('agent', ARRAY['default']) AS agent \gset
SELECT count(*) FROM pgflow.run_deployments('rd/dep', array_fill('{}'::jsonb, ARRAY[2]));
SELECT pgflow.run_deployment('rd/dep', p_idempotency_key => 'once', p_tags => ARRAY['nightly']) AS keyed \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true);
SELECT count(*) FROM pgflow.flow_runs r, LATERAL pgflow.create_task_runs(r.id, ARRAY['a', 'b']) t;
SELECT count(pgflow.set_task_run_state(t.id, 'RUNNING')) + count(pgflow.set_task_run_state(t.id, 'COMPLETED', p_result => '1'))
  FROM pgflow.task_runs t;
SELECT pgflow.write_logs(ARRAY(SELECT id FROM pgflow.flow_runs), array_fill(20, ARRAY[3]), array_fill('hi'::text, ARRAY[3]));
SELECT pgflow.request_flow_run_input(:'keyed', '{"type": "object"}');
SELECT pgflow.create_artifact('markdown', '"# report"', 'report', p_flow_run_id => :'keyed') AS artifact \gset
SELECT count(pgflow.set_flow_run_state(id, 'COMPLETED', p_result => '{"ok": true}')) FROM pgflow.flow_runs WHERE id <> :'keyed';
SELECT is((SELECT count(*)::integer FROM pgflow.flow_runs WHERE tableoid = pg_temp.part('flow_runs', :today)), 3,
          'new runs are in this week''s partition');
SELECT is((SELECT count(*)::integer FROM pgflow.flow_run_tags WHERE tableoid = pg_temp.part('flow_run_tags', :today)), 1,
          'and their tags');
SELECT is((SELECT count(*)::integer FROM pgflow.task_run_states s JOIN pgflow.task_runs t ON t.id = s.task_run_id
            WHERE s.tableoid = pg_temp.part('task_run_states', :today) AND pgflow._uuid7_time(t.id) = pgflow._uuid7_time(t.flow_run_id)), 18,
          'task runs are minted in their flow run''s millisecond: their states are in its week');
SELECT is((SELECT count(*)::integer FROM pgflow.results WHERE tableoid = pg_temp.part('results', :today)), 8, 'so are the results of both');

SAVEPOINT made;
-- the SDK's path: record_task_runs mints the ids in its INSERT (the trigger does not fire), same rule
CREATE TEMP TABLE recorded AS SELECT * FROM pgflow.record_task_runs(:'keyed', ARRAY['x', 'y'], p_started_at => ARRAY[now(), now()],
                                                                 p_completed_at => ARRAY[now(), now()], p_results => '{1, 2}') id;
SELECT is((SELECT count(*)::integer FROM recorded r JOIN pgflow.task_runs t USING (id)
            WHERE t.id::text ~ '^.{14}7' AND pgflow._uuid7_time(t.id) = pgflow._uuid7_time(t.flow_run_id)), 2,
          'record_task_runs makes task run ids (UUIDv7) in their flow run''s millisecond');
SELECT is((SELECT count(*)::integer FROM pgflow.task_run_states s JOIN recorded r ON r.id = s.task_run_id
            WHERE s.tableoid = pg_temp.part('task_run_states', :today))
          + (SELECT count(*)::integer FROM pgflow.results s JOIN recorded r ON r.id = s.run_id WHERE s.tableoid = pg_temp.part('results', :today)),
          8, 'their 6 states and 2 results are in their flow run''s week');
ROLLBACK TO SAVEPOINT made;

-- a run not ended keeps its week
SELECT is(pgflow.delete_old_runs('30 days', 10, now() + interval '40 days'), 2, 'a week with a run not ended: its ended runs go by row');
SELECT is(pg_temp.week_parts(:today), 6, 'and the week stays');
SELECT results_eq($$SELECT id FROM pgflow.flow_runs WHERE tableoid = pg_temp.part('flow_runs', (now() AT TIME ZONE 'UTC')::date)$$,
                  ARRAY[:'keyed'::uuid], 'with the running run');
SELECT is(pg_temp.week_parts(:today - 7), 0, 'an empty old week is dropped');
ROLLBACK TO SAVEPOINT made;

-- a run ended too recently keeps its week
SELECT pgflow.set_flow_run_state(:'keyed', 'COMPLETED', p_now => now() + interval '20 days') IS NOT NULL AS ended \gset
SELECT is(pgflow.delete_old_runs('30 days', 10, now() + interval '40 days'), 2, 'a week with a run that ended 20 days ago: the two older go by row');
SELECT is(pg_temp.week_parts(:today), 6, 'and the week stays');
ROLLBACK TO SAVEPOINT made;

-- a week whose runs all ended long ago is dropped whole, with everything hanging off its runs
SELECT pgflow.set_flow_run_state(:'keyed', 'COMPLETED', p_result => '{"ok": true}') IS NOT NULL AS ended \gset
SELECT is(pgflow.delete_old_runs('30 days', 1, now() + interval '29 days'), 0, 'nothing is 30 days old yet');
SELECT is(pgflow.delete_old_runs('30 days', 1, pgflow._history_week(now())::timestamp AT TIME ZONE 'UTC' + interval '37 days' - interval '1 second'),
          0, 'runs that ended over 30 days ago stay until their week ended 30 days ago (retention works in weeks)');
SET LOCAL ROLE pgflow_scheduler;  -- the scheduler's retention drops partitions (delete_old_runs runs as the schema owner)
SELECT is(pgflow.delete_old_runs('30 days', 1, now() + interval '40 days'), 3, 'the week goes: its 3 runs (more than a batch of 1)');
RESET ROLE;
SELECT is(pg_temp.week_parts(:today), 0, 'its six partitions are dropped');
SELECT results_eq($$SELECT (SELECT count(*) FROM pgflow.flow_runs), (SELECT count(*) FROM pgflow.flow_run_states),
                           (SELECT count(*) FROM pgflow.task_runs), (SELECT count(*) FROM pgflow.task_run_states),
                           (SELECT count(*) FROM pgflow.results), (SELECT count(*) FROM pgflow.logs),
                           (SELECT count(*) FROM pgflow.flow_run_inputs), (SELECT count(*) FROM pgflow.flow_run_keys),
                           (SELECT count(*) FROM pgflow.flow_run_tags)$$,
                  $$VALUES (0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint)$$,
                  'runs, states, task runs, task states, results, logs, inputs, keys and tags are gone');
SELECT is((SELECT flow_run_id FROM pgflow.artifacts WHERE id = :'artifact'), NULL, 'the artifact stays, without its run (as before)');
SELECT isnt(pgflow.run_deployment('rd/dep', p_idempotency_key => 'once'), :'keyed'::uuid, 'the key is free again once its run is gone');
SELECT is(pg_temp.week_parts(:today + 40), 6, 'the retention''s own week has partitions');
ROLLBACK TO SAVEPOINT made;

-- idempotency keys and schedule slots hold across weeks and partitions
SELECT is(pgflow.run_deployment('rd/dep', p_idempotency_key => 'once'), :'keyed'::uuid, 'a key used this week returns this week''s run');
INSERT INTO pgflow.flow_runs (id, name, flow_id, expected_start_time, state_type, state_name, state_timestamp, created_at, idempotency_key)
SELECT x.id, 'tomorrow', r.flow_id, now(), 'PENDING', 'Pending', now(), now(), 'once'
  FROM pgflow.flow_runs r, (VALUES (pgflow._uuid7(now() + interval '7 days')), (gen_random_uuid())) AS x(id)
 WHERE r.id = :'keyed';
SELECT is((SELECT count(*)::integer FROM pgflow.flow_runs WHERE idempotency_key = 'once'), 1,
          'a run with the same key in next week''s partition or the default one is not inserted');
SELECT pgflow.create_deployment_schedule('rd/dep', 'interval', '1 hour') AS sched \gset
SELECT is((SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[now() + interval '1 hour'])), 1, 'a slot gets its run');
SELECT is((SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[now() + interval '1 hour', now() + interval '2 hours'])), 1,
          'materialised again, only the new slot gets one');
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, deployment_schedule_id, expected_start_time, state_type, state_name,
                              state_timestamp, created_at)
SELECT x.id, 'again', r.flow_id, r.deployment_id, r.deployment_schedule_id, r.expected_start_time, 'SCHEDULED', 'Scheduled', now(), now()
  FROM pgflow.flow_runs r, (VALUES (pgflow._uuid7(now() + interval '7 days')), (pgflow._uuid7(now() + interval '14 days'))) AS x(id)
 WHERE r.deployment_schedule_id IS NOT NULL;
SELECT is((SELECT count(*)::integer FROM pgflow.flow_runs WHERE deployment_schedule_id IS NOT NULL), 2,
          'a slot''s second run is not inserted in another week''s partition either');
-- a descheduled slot frees its key with its run
SELECT is((SELECT deleted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[now() + interval '2 hours'])), 1, 'a slot that left the schedule loses its run');
SELECT is((SELECT inserted FROM pgflow.schedule_flow_runs(:'sched', ARRAY[now() + interval '1 hour', now() + interval '2 hours'])), 1,
          'and can have one again');

SELECT * FROM finish();
ROLLBACK;
