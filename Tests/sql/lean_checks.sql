-- 0025: the state checks of the hot path without a PL/pgSQL call per row. state_type_of (the CHECK
-- constraints of the four state tables call it) is inlined by PostgreSQL; a batch transition parses its
-- proposals without calling _parse_state per row, and still refuses a bad one with the same error.
BEGIN;
SELECT plan(11);

-- inlined: the plan of a call shows the CASE, not the function
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
    r record;
BEGIN
    v := '';
    FOR r IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        v := v || r."QUERY PLAN" || E'\n';
    END LOOP;
    RETURN v;
END $$;
SELECT unalike(pg_temp.plan_of($$SELECT pgflow.state_type_of(s) FROM (VALUES ('Late'), ('Completed')) v(s)$$),
              '%state_type_of%', 'state_type_of is inlined into the query that calls it');
SELECT is(ARRAY(SELECT pgflow.state_type_of(n)::text FROM unnest(ARRAY['Scheduled', 'Late', 'AwaitingRetry',
                 'AwaitingConcurrencySlot', 'Pending', 'Running', 'Retrying', 'Paused', 'Suspended', 'Cancelling',
                 'Completed', 'Cached', 'Failed', 'TimedOut', 'Cancelled', 'Crashed', 'Done', NULL]) n),
          ARRAY['SCHEDULED', 'SCHEDULED', 'SCHEDULED', 'SCHEDULED', 'PENDING', 'RUNNING', 'RUNNING', 'PAUSED', 'PAUSED',
                'CANCELLING', 'COMPLETED', 'COMPLETED', 'FAILED', 'FAILED', 'CANCELLED', 'CRASHED', NULL, NULL],
          'state_type_of gives each of the sixteen names its type, and NULL for anything else');

-- the constraints still refuse a name of another type
SELECT pgflow.create_deployment('lean', 'd', './d.sh');
SELECT pgflow.run_deployment('lean/d') AS run \gset
SELECT throws_ok(format($$INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
                          VALUES (%L, 'COMPLETED', 'Running', now())$$, :'run'),
                 '23514', NULL, 'a state row of a name of another type is refused');
SELECT throws_ok(format($$UPDATE pgflow.flow_runs SET state_name = 'Late', state_type = 'RUNNING' WHERE id = %L$$, :'run'),
                 '23514', NULL, 'a current state of a name of another type is refused');

-- a batch of 50 transitions parses its states without a call per row
SELECT array_agg(r) AS runs FROM (SELECT pgflow.run_deployment('lean/d') r FROM generate_series(1, 50)) x \gset
SET LOCAL track_functions = 'all';
SELECT is((SELECT count(*)::int FROM pgflow.set_flow_run_states(:'runs'::uuid[], array_fill('pending'::text, ARRAY[50])) t
            WHERE t.status = 'ACCEPTED' AND t.state_name = 'Pending'),
          50, 'a batch of 50 (a lower-case type, no names) is accepted, each with its type''s name');
SELECT is((SELECT coalesce(sum(calls), 0)::int FROM pg_stat_xact_user_functions WHERE schemaname = 'pgflow' AND funcname = '_parse_state'),
          0, '... without a call of _parse_state per proposal');

-- bad proposals: the same errors as before, the first bad one in the batch, unknown runs first
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT is(pg_temp.err(format($$SELECT pgflow.set_flow_run_states(%L::uuid[], ARRAY['RUNNING', 'FINISHED', NULL])$$,
                             (:'runs'::uuid[])[1:3])),
          '22023: pgflow: invalid state type ''FINISHED''', 'the first invalid state type of a batch is named');
SELECT is(pg_temp.err(format($$SELECT pgflow.set_flow_run_states(%L::uuid[], ARRAY['RUNNING', NULL])$$,
                             (:'runs'::uuid[])[1:2])),
          '22023: pgflow: invalid state type NULL', 'a NULL state type is refused');
SELECT is(pg_temp.err(format($$SELECT pgflow.set_flow_run_states(%L::uuid[], ARRAY['RUNNING', 'COMPLETED'], ARRAY[NULL, 'Late'])$$,
                             (:'runs'::uuid[])[1:2])),
          '22023: pgflow: invalid state name ''Late'' for state type COMPLETED', 'a name of another type is refused');
SELECT alike(pg_temp.err(format($$SELECT pgflow.set_flow_run_states(ARRAY[%L, gen_random_uuid()]::uuid[], ARRAY['RUNNING', 'NOPE'])$$,
                               (:'runs'::uuid[])[1])),
            'P0002: pgflow: unknown flow run %', 'an unknown run is named before an invalid state');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = ANY ((:'runs'::uuid[])[1:3]) AND state_type <> 'SCHEDULED'),
          3, 'the refused batches changed nothing (one Pending state per run, from the accepted batch)');

SELECT * FROM finish();
ROLLBACK;
