-- record_task_runs (0013): task runs written once in their final state, with the same rows as
-- create_task_runs + set_task_run_states would write; everything else through the general path.
BEGIN;
SELECT plan(21);

\set t0 '''2030-01-01 00:00:00+00'''
CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text; v_msg text; v_hint text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
    RETURN CASE WHEN coalesce(v_hint, '') = '' THEN 'no hint: ' ELSE '' END || v_state || ': ' || v_msg;
END $$;
-- what a task run looks like, without its id
CREATE FUNCTION pg_temp.shape(p_id uuid) RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' | ', t.name, t.inputs, t.run_count, t.expected_start_time, t.start_time, t.end_time, t.total_run_time,
                     t.state_type, t.state_name, t.state_timestamp, t.state_message, t.next_scheduled_start, t.created_at,
                     (SELECT string_agg(concat_ws(' ', s.state_name, s."timestamp", s.message, s.scheduled_time), ', ' ORDER BY s.id)
                        FROM pgflow.task_run_states s WHERE s.task_run_id = t.id),
                     (SELECT r.value::text || ' ' || r.created_at FROM pgflow.results r WHERE r.run_id = t.id))
      FROM pgflow.task_runs t WHERE t.id = p_id
$$;

SELECT pgflow.create_flow_run('record', p_state_type => 'RUNNING', p_now => :t0) AS flow \gset

-- the general path, step by step
SELECT pgflow.create_task_runs(:'flow', ARRAY['old'], ARRAY['0'], ARRAY['same'], ARRAY['{"a": 1}']::jsonb[],
                               p_created_at => ARRAY[:t0::timestamptz + '1 s']) AS old \gset
SELECT count(*) FROM pgflow.set_task_run_states(ARRAY[:'old']::uuid[], ARRAY['RUNNING'], p_timestamps => ARRAY[:t0::timestamptz + '2 s']);
SELECT count(*) FROM pgflow.set_task_run_states(ARRAY[:'old']::uuid[], ARRAY['COMPLETED'], p_results => ARRAY['42']::jsonb[],
                                                p_timestamps => ARRAY[:t0::timestamptz + '5 s']);
SELECT pgflow.create_task_runs(:'flow', ARRAY['old-running'], ARRAY['0'], ARRAY['same-running'], p_created_at => ARRAY[:t0::timestamptz]) AS old_running \gset
SELECT count(*) FROM pgflow.set_task_run_states(ARRAY[:'old_running']::uuid[], ARRAY['RUNNING'], p_timestamps => ARRAY[:t0::timestamptz - interval '1 s']);

-- the same task runs in one call: completed, running, pending (one id each, in input order)
CREATE TEMP TABLE rec AS
SELECT id, ord FROM pgflow.record_task_runs(:'flow', ARRAY['new', 'new-running', 'new-pending'], ARRAY['0', '0', '0'],
           ARRAY['same', 'same-running', NULL], ARRAY['{"a": 1}', '{}', '{}']::jsonb[],
           p_created_at => ARRAY[:t0::timestamptz + '1 s', :t0, :t0],
           p_started_at => ARRAY[:t0::timestamptz + '2 s', :t0::timestamptz - interval '1 s', NULL],
           p_start_transition_ids => ARRAY[gen_random_uuid(), gen_random_uuid(), NULL],
           p_completed_at => ARRAY[:t0::timestamptz + '5 s', NULL, NULL], p_results => ARRAY['42', NULL, NULL]::jsonb[],
           p_complete_transition_ids => ARRAY[gen_random_uuid(), NULL, NULL], p_now => :t0::timestamptz + '9 s')
       WITH ORDINALITY AS r(id, ord);
SELECT is((SELECT array_agg(t.task_key ORDER BY r.ord) FROM rec r JOIN pgflow.task_runs t ON t.id = r.id), ARRAY['new', 'new-running', 'new-pending'],
          'one id per task run, in input order');
SELECT is(pg_temp.shape((SELECT id FROM rec WHERE ord = 1)), pg_temp.shape(:'old'),
          'a completed task run: the row, history and result of create + Running + Completed');
SELECT is(pg_temp.shape((SELECT id FROM rec WHERE ord = 2)), pg_temp.shape(:'old_running'),
          'a running task run: the row and history of create + Running (a start before creation counts as the creation)');
SELECT is((SELECT state_name || ' ' || created_at FROM pgflow.task_runs WHERE id = (SELECT id FROM rec WHERE ord = 3)),
          'Pending 2030-01-01 00:00:00+00', 'a task run without a start time is created Pending');
SELECT is((SELECT count(*) FROM pgflow.task_run_states WHERE transition_id IS NOT NULL
             AND task_run_id IN (SELECT id FROM rec)), 3::bigint, 'the history rows keep their transition ids');

-- the same batch sent again (a lost reply): the same ids, nothing written twice
SELECT count(*) AS states_before FROM pgflow.task_run_states \gset
SELECT pgflow.create_task_runs(:'flow', ARRAY['again'], ARRAY['0'], p_created_at => ARRAY[:t0::timestamptz]) AS again_pending \gset
SELECT gen_random_uuid() AS run_tid, gen_random_uuid() AS done_tid \gset
SELECT count(*) FROM pgflow.record_task_runs(:'flow', ARRAY['again'], p_started_at => ARRAY[:t0::timestamptz + '1 s'],
                                             p_start_transition_ids => ARRAY[:'run_tid'::uuid]);
SELECT is(pgflow.record_task_runs(:'flow', ARRAY['again'], p_started_at => ARRAY[:t0::timestamptz + '1 s'],
                                  p_start_transition_ids => ARRAY[:'run_tid'::uuid], p_completed_at => ARRAY[:t0::timestamptz + '2 s'],
                                  p_results => ARRAY['"done"']::jsonb[], p_complete_transition_ids => ARRAY[:'done_tid'::uuid]),
          :'again_pending'::uuid, 'an existing task run keeps its id and goes through the general path');
SELECT is((SELECT string_agg(state_name, ' ' ORDER BY id) FROM pgflow.task_run_states WHERE task_run_id = :'again_pending'),
          'Pending Running Completed', 'where a repeated Running is a DUPLICATE, not a second Running row');
SELECT is((SELECT value FROM pgflow.results WHERE run_id = :'again_pending'), '"done"'::jsonb, 'and the result is written');

-- tags and cache lookups take the general path, with its decisions
SELECT pgflow.create_concurrency_limit('tag:gpu', 0);
SELECT pgflow.record_task_runs(:'flow', ARRAY['tagged'], p_tags => ARRAY['{gpu}'], p_created_at => ARRAY[:t0::timestamptz],
                               p_started_at => ARRAY[:t0::timestamptz + '1 s'], p_completed_at => ARRAY[:t0::timestamptz + '2 s'],
                               p_results => ARRAY['1']::jsonb[], p_now => :t0::timestamptz + '3 s') AS tagged \gset
SELECT is((SELECT state_name FROM pgflow.task_runs WHERE id = :'tagged'), 'AwaitingConcurrencySlot',
          'a tagged task run whose limit is full waits: it is not written Completed');
SELECT is((SELECT count(*) FROM pgflow.results WHERE run_id = :'tagged'), 0::bigint, 'and its result is not stored');
SELECT pgflow.record_task_runs(:'flow', ARRAY['cached-first'], p_cache_keys => ARRAY['k1'], p_created_at => ARRAY[:t0::timestamptz],
                               p_started_at => ARRAY[:t0::timestamptz], p_completed_at => ARRAY[:t0::timestamptz + '1 s'],
                               p_results => ARRAY['"first"']::jsonb[], p_now => :t0::timestamptz + '1 s') AS cached_first \gset
SELECT is((SELECT value FROM pgflow.task_run_cache WHERE cache_key = 'k1'), '"first"'::jsonb, 'a cache key without an entry: the result is cached');
SELECT pgflow.record_task_runs(:'flow', ARRAY['cached-second'], p_cache_keys => ARRAY['k1'], p_created_at => ARRAY[:t0::timestamptz + '2 s'],
                               p_started_at => ARRAY[:t0::timestamptz + '2 s'], p_completed_at => ARRAY[:t0::timestamptz + '3 s'],
                               p_results => ARRAY['"second"']::jsonb[], p_now => :t0::timestamptz + '3 s') AS cached_second \gset
SELECT is((SELECT state_name FROM pgflow.task_runs WHERE id = :'cached_second'), 'Cached', 'a valid entry makes the next one Cached');
SELECT is((SELECT value FROM pgflow.results WHERE run_id = :'cached_second'), '"first"'::jsonb, 'with the cached value');
SELECT pgflow.record_task_runs(:'flow', ARRAY['refreshed'], p_cache_keys => ARRAY['k1'], p_cache_refresh => ARRAY[true],
                               p_created_at => ARRAY[:t0::timestamptz + '4 s'], p_started_at => ARRAY[:t0::timestamptz + '4 s'],
                               p_completed_at => ARRAY[:t0::timestamptz + '5 s'], p_results => ARRAY['"third"']::jsonb[]) AS refreshed \gset
SELECT is((SELECT state_name || ' ' || (SELECT value FROM pgflow.task_run_cache WHERE cache_key = 'k1') FROM pgflow.task_runs WHERE id = :'refreshed'),
          'Completed "third"', 'a refreshing task run (the fast path) completes and replaces the entry');

-- bad input: one clear error, nothing written
SELECT count(*) AS task_runs_before FROM pgflow.task_runs \gset
SELECT is(pg_temp.err($$SELECT pgflow.record_task_runs('$$ || :'flow' || $$', ARRAY['x'], p_completed_at => ARRAY[now()])$$),
          '22023: pgflow: task run 1 of the batch has an end time but no start time (start <NULL>, end ' || now() || ')',
          'an end without a start');
SELECT is(pg_temp.err($$SELECT pgflow.record_task_runs('$$ || :'flow' || $$', ARRAY['x', 'x'], ARRAY['1', '1'])$$),
          '22023: pgflow: a batch of recorded task runs names a (task key, dynamic key) twice', 'a task run twice');
SELECT is(pg_temp.err($$SELECT pgflow.record_task_runs('$$ || :'flow' || $$', ARRAY['x', 'y'], p_started_at => ARRAY[now()])$$),
          '22023: pgflow: the arrays of a batch of task runs must be of one length (2 task keys)', 'arrays of two lengths');
SELECT is(pg_temp.err($$SELECT pgflow.record_task_runs('$$ || :'flow' || $$', ARRAY['x'], p_names => ARRAY[' padded'])$$),
          $$22023: pgflow: invalid task run name ' padded': it starts or ends with whitespace$$, 'a bad name, with _check_name''s message');
SELECT is(pg_temp.err($$SELECT pgflow.record_task_runs('00000000-0000-0000-0000-000000000000', ARRAY['x'])$$),
          'P0002: pgflow: unknown flow run 00000000-0000-0000-0000-000000000000', 'an unknown flow run');
SELECT is((SELECT count(*) FROM pgflow.task_runs), :task_runs_before::bigint, 'a refused batch writes nothing');

SELECT ok(has_function_privilege('pgflow_agent', 'pgflow.record_task_runs(uuid, text[], text[], text[], jsonb[], text[], text[], interval[], integer[], text[], text[], float8[], timestamptz[], boolean[], timestamptz[], uuid[], timestamptz[], jsonb[], uuid[], timestamptz)', 'EXECUTE')
          AND NOT has_function_privilege('pgflow_reader', 'pgflow.record_task_runs(uuid, text[], text[], text[], jsonb[], text[], text[], interval[], integer[], text[], text[], float8[], timestamptz[], boolean[], timestamptz[], uuid[], timestamptz[], jsonb[], uuid[], timestamptz)', 'EXECUTE'),
          'the SDK''s role may call it, a reader may not');

SELECT * FROM finish();
ROLLBACK;
