-- 0025: the per-row checks of the hot path without a PL/pgSQL call per row (issue 17, the drain).
--
-- Every state row and every current-state update is checked against the list of state names
-- (CHECK (pgflow.state_type_of(state_name) IS NOT DISTINCT FROM state_type) on flow_runs, flow_run_states,
-- task_runs and task_run_states, since 0005). state_type_of was a PL/pgSQL function: each check was a
-- PL/pgSQL call, five per drained run (two updates of the run, three state rows) and more per task.
-- As an IMMUTABLE SQL function of one expression, without SET options, PostgreSQL inlines it: the
-- constraints evaluate the CASE itself. Same names, same answers (NULL for an unknown name).
--
-- The batch transitions' proposals (pgflow._proposals, which set_flow_run_states and the task-state
-- functions call) parsed every proposal's state with a PL/pgSQL call per row (_parse_state). They now
-- check the whole batch in one pass and, when a proposal is invalid, call _parse_state on the first
-- invalid one only, which raises the same error as before.
CREATE OR REPLACE FUNCTION pgflow.state_type_of(p_state_name text) RETURNS pgflow.state_type
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_state_name
        WHEN 'Scheduled' THEN 'SCHEDULED'::pgflow.state_type WHEN 'Late' THEN 'SCHEDULED'::pgflow.state_type
        WHEN 'AwaitingRetry' THEN 'SCHEDULED'::pgflow.state_type WHEN 'AwaitingConcurrencySlot' THEN 'SCHEDULED'::pgflow.state_type
        WHEN 'Pending' THEN 'PENDING'::pgflow.state_type
        WHEN 'Running' THEN 'RUNNING'::pgflow.state_type WHEN 'Retrying' THEN 'RUNNING'::pgflow.state_type
        WHEN 'Paused' THEN 'PAUSED'::pgflow.state_type WHEN 'Suspended' THEN 'PAUSED'::pgflow.state_type
        WHEN 'Cancelling' THEN 'CANCELLING'::pgflow.state_type
        WHEN 'Completed' THEN 'COMPLETED'::pgflow.state_type WHEN 'Cached' THEN 'COMPLETED'::pgflow.state_type
        WHEN 'Failed' THEN 'FAILED'::pgflow.state_type WHEN 'TimedOut' THEN 'FAILED'::pgflow.state_type
        WHEN 'Cancelled' THEN 'CANCELLED'::pgflow.state_type
        WHEN 'Crashed' THEN 'CRASHED'::pgflow.state_type
    END
$$;

CREATE OR REPLACE FUNCTION pgflow._proposals(
    p_table text, p_run_ids uuid[], p_state_types text[], p_state_names text[], p_messages text[],
    p_results jsonb[], p_transition_ids uuid[], p_timestamps timestamptz[] DEFAULT NULL
) RETURNS pgflow._proposal[]
LANGUAGE plpgsql AS $$
DECLARE
    v_n       integer := coalesce(cardinality(p_run_ids), 0);
    v_missing uuid;
    v_bad     record;
BEGIN
    IF v_n = 0 OR cardinality(p_state_types) IS DISTINCT FROM v_n
       OR coalesce(cardinality(p_state_names), v_n) <> v_n OR coalesce(cardinality(p_messages), v_n) <> v_n
       OR coalesce(cardinality(p_results), v_n) <> v_n OR coalesce(cardinality(p_transition_ids), v_n) <> v_n
       OR coalesce(cardinality(p_timestamps), v_n) <> v_n THEN
        RAISE EXCEPTION 'pgflow: the arrays of a batch transition must be non-empty and of one length (% run ids)', v_n
            USING ERRCODE = '22023', HINT = 'pass one state type (and name, message, result, transition id, time, or NULL arrays) per run id';
    END IF;
    IF array_position(p_run_ids, NULL) IS NOT NULL OR (v_n > 1 AND (SELECT count(DISTINCT x) FROM unnest(p_run_ids) x) <> v_n) THEN
        RAISE EXCEPTION 'pgflow: a batch transition names a run twice or a NULL run'
            USING ERRCODE = '22023', HINT = 'send at most one transition per run in one batch';
    END IF;
    IF p_table = 'flow_runs' THEN
        SELECT x INTO v_missing FROM unnest(p_run_ids) x WHERE NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = x) LIMIT 1;
    ELSE
        SELECT x INTO v_missing FROM unnest(p_run_ids) x WHERE NOT EXISTS (SELECT 1 FROM pgflow.task_runs r WHERE r.id = x) LIMIT 1;
    END IF;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: unknown % %', replace(rtrim(p_table, 's'), '_', ' '), v_missing
            USING ERRCODE = 'P0002', HINT = 'check the id; finished runs may have been deleted by retention';
    END IF;
    -- the states, checked in one pass: a name defaults to its type's (COMPLETED: Completed), and must be
    -- one of its type's names; the first invalid proposal gets _parse_state's error
    SELECT x.st, x.sn INTO v_bad
      FROM unnest(p_state_types, p_state_names) WITH ORDINALITY x(st, sn, ord)
     WHERE x.st IS NULL
        OR upper(x.st) NOT IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED', 'CANCELLING', 'COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
        OR pgflow.state_type_of(coalesce(x.sn, initcap(lower(x.st))))::text IS DISTINCT FROM upper(x.st)
     ORDER BY x.ord
     LIMIT 1;
    IF FOUND THEN
        PERFORM pgflow._parse_state(v_bad.st, v_bad.sn);  -- raises the error
        RAISE EXCEPTION 'pgflow: invalid state % %', v_bad.st, v_bad.sn USING ERRCODE = '22023';
    END IF;
    RETURN ARRAY(
        SELECT ROW(x.id, upper(x.st)::pgflow.state_type, coalesce(x.sn, initcap(lower(x.st))), x.msg, x.res, NULL, NULL,
                   x.tid, NULL)::pgflow._proposal
          FROM unnest(p_run_ids, p_state_types, coalesce(p_state_names, array_fill(NULL::text, ARRAY[v_n])),
                      coalesce(p_messages, array_fill(NULL::text, ARRAY[v_n])),
                      coalesce(p_results, array_fill(NULL::jsonb, ARRAY[v_n])),
                      coalesce(p_transition_ids, array_fill(NULL::uuid, ARRAY[v_n]))) WITH ORDINALITY
               AS x(id, st, sn, msg, res, tid, ord)
         ORDER BY x.ord);
END $$;
