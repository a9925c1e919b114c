-- 0015: the SDK's task runs recorded end to end in one statement (issue 17, measured with
-- scripts/bench-sdk.sh; figures in BENCHMARKS.md). The rules of the state machine do not change.

-- ============================================================================================
-- Task runs that already started (and often already ended) when they are first written. The SDK
-- runs a plain task (no tags, no cache lookup) without waiting for PostgreSQL and writes it in its
-- next group commit; by then the task has often completed. create_task_runs + two rounds of
-- set_task_run_states wrote such a run three times (an INSERT and two UPDATEs, each UPDATE a new row
-- version with new index entries and a foreign-key check, since the row was inserted by the same
-- transaction). record_task_runs writes it once, in its final state:
--
--   * a NEW task run with a start time and no tags, whose start looks nothing up in the cache (no
--     cache key, or p_cache_refresh), is inserted Running, or Completed with its result when it has an
--     end time, with its history rows Pending, Running(, Completed) at their own times. These are
--     exactly the transitions set_task_run_states would accept: a new Pending run with no tag limit to
--     wait for and no cache entry to be redirected to always starts, and a Running run always
--     completes. run_count, start, end and run time, the result and a refreshed cache entry are what
--     those transitions write (Tests/sql/task_record.sql compares both paths);
--   * every other task run is created Pending (as create_task_runs does) and then, if it has a start
--     time, moved with set_task_run_states' rules (pgflow._transition_task_runs_isolated): Running,
--     then Completed. So an existing task run (a batch sent again after a lost connection: the
--     transition ids make it come back DUPLICATE), a tagged run (tag limits), or a cached one goes
--     through the general path. What those transitions decided is not returned: a caller that acts
--     on a decision (Cached, a full limit) calls set_task_run_states.
--
-- Arguments: those of create_task_runs, then per run: p_started_at (NULL element: the run stays
-- Pending), p_start_transition_ids, p_completed_at (NULL element: not ended; a run with an end time
-- needs a start time), p_results (the Completed result; NULL element: none) and
-- p_complete_transition_ids. A time before the run's previous state's time counts as that time (the
-- rule of set_task_run_states' p_timestamps). A (task key, dynamic key) given twice is refused. One id
-- per task run, in input order.
-- ============================================================================================
CREATE FUNCTION pgflow.record_task_runs(
    p_flow_run_id              uuid,
    p_task_keys                text[],
    p_dynamic_keys             text[]        DEFAULT NULL,
    p_names                    text[]        DEFAULT NULL,
    p_inputs                   jsonb[]       DEFAULT NULL,
    p_tags                     text[]        DEFAULT NULL,
    p_cache_keys               text[]        DEFAULT NULL,
    p_cache_expirations        interval[]    DEFAULT NULL,
    p_retries                  integer[]     DEFAULT NULL,
    p_retry_delays             text[]        DEFAULT NULL,
    p_retry_backoffs           text[]        DEFAULT NULL,
    p_retry_jitters            float8[]      DEFAULT NULL,
    p_created_at               timestamptz[] DEFAULT NULL,
    p_cache_refresh            boolean[]     DEFAULT NULL,
    p_started_at               timestamptz[] DEFAULT NULL,
    p_start_transition_ids     uuid[]        DEFAULT NULL,
    p_completed_at             timestamptz[] DEFAULT NULL,
    p_results                  jsonb[]       DEFAULT NULL,
    p_complete_transition_ids  uuid[]        DEFAULT NULL,
    p_now                      timestamptz   DEFAULT now()
) RETURNS SETOF uuid
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_n     integer := coalesce(cardinality(p_task_keys), 0);
    v_state pgflow.state_type;
    v_bad   record;
    v_ids   uuid[];
    v_slow  integer[];  -- ordinals of started runs that take the general path
BEGIN
    PERFORM pgflow._check_batch(v_n, 'record_task_runs');
    SELECT state_type INTO v_state FROM pgflow.flow_runs WHERE id = p_flow_run_id;
    IF v_state IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id
            USING ERRCODE = 'P0002', HINT = 'create the flow run first (pgflow.create_flow_run or pgflow.run_deployment)';
    END IF;
    IF p_task_keys IS NULL
       OR coalesce(cardinality(p_dynamic_keys), v_n) <> v_n OR coalesce(cardinality(p_names), v_n) <> v_n
       OR coalesce(cardinality(p_inputs), v_n) <> v_n OR coalesce(cardinality(p_tags), v_n) <> v_n
       OR coalesce(cardinality(p_cache_keys), v_n) <> v_n OR coalesce(cardinality(p_cache_expirations), v_n) <> v_n
       OR coalesce(cardinality(p_retries), v_n) <> v_n OR coalesce(cardinality(p_retry_delays), v_n) <> v_n
       OR coalesce(cardinality(p_retry_backoffs), v_n) <> v_n OR coalesce(cardinality(p_retry_jitters), v_n) <> v_n
       OR coalesce(cardinality(p_created_at), v_n) <> v_n OR coalesce(cardinality(p_cache_refresh), v_n) <> v_n
       OR coalesce(cardinality(p_started_at), v_n) <> v_n OR coalesce(cardinality(p_start_transition_ids), v_n) <> v_n
       OR coalesce(cardinality(p_completed_at), v_n) <> v_n OR coalesce(cardinality(p_results), v_n) <> v_n
       OR coalesce(cardinality(p_complete_transition_ids), v_n) <> v_n THEN
        RAISE EXCEPTION 'pgflow: the arrays of a batch of task runs must be of one length (% task keys)', v_n
            USING ERRCODE = '22023', HINT = 'pass one element per task key in every array, or NULL for an array of defaults';
    END IF;
    IF v_n = 0 THEN
        RETURN;
    END IF;
    p_inputs := coalesce(p_inputs, array_fill('{}'::jsonb, ARRAY[v_n]));
    p_retries := coalesce(p_retries, array_fill(0, ARRAY[v_n]));
    p_retry_delays := coalesce(p_retry_delays, array_fill('{0}'::text, ARRAY[v_n]));
    p_retry_backoffs := coalesce(p_retry_backoffs, array_fill('fixed'::text, ARRAY[v_n]));
    p_retry_jitters := coalesce(p_retry_jitters, array_fill(0::float8, ARRAY[v_n]));
    p_started_at := coalesce(p_started_at, array_fill(NULL::timestamptz, ARRAY[v_n]));
    p_completed_at := coalesce(p_completed_at, array_fill(NULL::timestamptz, ARRAY[v_n]));

    -- the checks of create_task_runs (0002, 0003), with its messages
    -- (a name of printable ASCII without leading or trailing space, 1 to 255 long, passes _check_name:
    -- only the others are checked by it, which saves three regular expressions per task run name)
    PERFORM pgflow._check_name(k, 'task key') FROM (SELECT DISTINCT k FROM unnest(p_task_keys) k WHERE k <> '') t
      WHERE NOT (char_length(k) <= 255 AND k ~ '^[!-~]([ -~]*[!-~])?$');
    PERFORM pgflow._check_name(n, 'task run name') FROM (SELECT DISTINCT n FROM unnest(p_names) n WHERE n IS NOT NULL) t
      WHERE NOT (char_length(n) <= 255 AND n ~ '^[!-~]([ -~]*[!-~])?$');
    PERFORM pgflow._check_number(extract(epoch FROM e)::float8, 'a cache expiration (in seconds)', 0, 3153600000)
       FROM unnest(p_cache_expirations) e WHERE e >= interval '0';
    SELECT x.ord, x.k, x.i, x.ce INTO v_bad
      FROM unnest(p_task_keys, p_inputs, p_cache_expirations) WITH ORDINALITY x(k, i, ce, ord)
     WHERE x.k IS NULL OR x.k = '' OR x.i IS NULL OR x.ce < interval '0'
     ORDER BY x.ord LIMIT 1;
    IF v_bad.ord IS NOT NULL THEN
        IF v_bad.k IS NULL OR v_bad.k = '' THEN
            RAISE EXCEPTION 'pgflow: a task run needs a task key'
                USING ERRCODE = '22023', HINT = 'pass the task''s stable name, e.g. ''extract''';
        ELSIF v_bad.i IS NULL THEN
            RAISE EXCEPTION 'pgflow: task inputs must not be NULL' USING ERRCODE = '22023', HINT = 'pass ''{}'' for none';
        ELSE
            RAISE EXCEPTION 'pgflow: cache expiration must not be negative, got %', v_bad.ce
                USING ERRCODE = '22023', HINT = 'pass a positive interval, or NULL for never';
        END IF;
    END IF;
    PERFORM pgflow._check_retry_policy(r.retries, r.backoff, r.delays::float8[], r.jitter)
       FROM (SELECT DISTINCT x.retries, x.backoff, x.delays, x.jitter
               FROM unnest(p_retries, p_retry_backoffs, p_retry_delays, p_retry_jitters) x(retries, backoff, delays, jitter)) r;
    -- what is new here: times that make sense, each task run once
    SELECT x.ord, x.s, x.c INTO v_bad
      FROM unnest(p_started_at, p_completed_at) WITH ORDINALITY x(s, c, ord)
     WHERE (x.c IS NOT NULL AND x.s IS NULL) OR NOT isfinite(x.s) OR NOT isfinite(x.c)
     ORDER BY x.ord LIMIT 1;
    IF v_bad.ord IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: task run % of the batch has % (start %, end %)', v_bad.ord,
                        CASE WHEN v_bad.s IS NULL THEN 'an end time but no start time' ELSE 'an infinite time' END, v_bad.s, v_bad.c
            USING ERRCODE = '22023', HINT = 'give every ended run its start time, and finite times';
    END IF;
    IF v_n > 1 AND (SELECT count(*) FROM (SELECT DISTINCT x.k, coalesce(x.d, '0') FROM unnest(p_task_keys, p_dynamic_keys) x(k, d)) u) <> v_n THEN
        RAISE EXCEPTION 'pgflow: a batch of recorded task runs names a (task key, dynamic key) twice'
            USING ERRCODE = '22023', HINT = 'record each task run once per call';
    END IF;
    IF pgflow.is_terminal(v_state) AND EXISTS (
            SELECT 1 FROM unnest(p_task_keys, p_dynamic_keys) x(k, d)
             WHERE NOT EXISTS (SELECT 1 FROM pgflow.task_runs t
                                WHERE t.flow_run_id = p_flow_run_id AND t.task_key = x.k AND t.dynamic_key = coalesce(x.d, '0'))) THEN
        RAISE EXCEPTION 'pgflow: flow run % is %, it cannot get new task runs', p_flow_run_id, v_state
            USING ERRCODE = '55000', HINT = 'create task runs while the flow run is RUNNING';
    END IF;

    WITH x AS MATERIALIZED (
        SELECT x.ord, x.k, coalesce(x.d, '0') AS d, x.n, x.i, x.t, x.ck, x.ce, x.r, x.rd, x.rb, x.rj, x.ts, x.cr,
               -- the fast path: started, no tag limit to wait for, no cache entry to look up
               x.s IS NOT NULL AND (x.t IS NULL OR x.t = '{}') AND (x.ck IS NULL OR x.cr) AS fast,
               CASE WHEN x.s IS NOT NULL THEN greatest(x.s, x.ts) END AS s,  -- (greatest skips NULLs)
               CASE WHEN x.c IS NOT NULL THEN greatest(x.c, x.s, x.ts) END AS c, x.res, x.sid, x.cid
          FROM (SELECT x.ord, x.k, x.d, x.n, x.i, x.t, x.ck, x.ce, x.r, x.rd, x.rb, x.rj, coalesce(x.ts, p_now) AS ts,
                       coalesce(x.cr, false) AS cr, x.s, x.c, x.res, x.sid, x.cid
                  FROM unnest(p_task_keys, p_dynamic_keys, p_names, p_inputs, p_tags, p_cache_keys, p_cache_expirations,
                              p_retries, p_retry_delays, p_retry_backoffs, p_retry_jitters, p_created_at, p_cache_refresh,
                              p_started_at, p_completed_at, p_results, p_start_transition_ids, p_complete_transition_ids)
                       WITH ORDINALITY AS x(k, d, n, i, t, ck, ce, r, rd, rb, rj, ts, cr, s, c, res, sid, cid, ord)) x),
    ins AS (
        INSERT INTO pgflow.task_runs (flow_run_id, task_key, dynamic_key, name, inputs, tags, cache_key, cache_expiration,
                                      cache_refresh, retries, retry_delays, retry_backoff, retry_jitter, run_count,
                                      expected_start_time, start_time, end_time, total_run_time,
                                      state_type, state_name, state_timestamp, created_at)
        SELECT p_flow_run_id, x.k, x.d, coalesce(x.n, x.k || '-' || x.d), x.i,
               CASE WHEN x.t IS NULL OR x.t = '{}' THEN '{}' ELSE pgflow._check_tags(x.t::text[]) END,
               x.ck, x.ce, x.cr, x.r, x.rd::float8[], x.rb, x.rj, CASE WHEN x.fast THEN 1 ELSE 0 END,
               x.ts, CASE WHEN x.fast THEN x.s END, CASE WHEN x.fast THEN x.c END,
               CASE WHEN x.fast AND x.c IS NOT NULL THEN x.c - x.s ELSE interval '0' END,
               CASE WHEN NOT x.fast THEN 'PENDING' WHEN x.c IS NULL THEN 'RUNNING' ELSE 'COMPLETED' END::pgflow.state_type,
               CASE WHEN NOT x.fast THEN 'Pending' WHEN x.c IS NULL THEN 'Running' ELSE 'Completed' END,
               CASE WHEN NOT x.fast THEN x.ts ELSE coalesce(x.c, x.s) END, x.ts
          FROM x ORDER BY x.ord
        ON CONFLICT (flow_run_id, task_key, dynamic_key) DO NOTHING
        RETURNING id, task_key, dynamic_key),
    made AS (SELECT x.*, i.id FROM x JOIN ins i ON i.task_key = x.k AND i.dynamic_key = x.d),
    hist AS (
        INSERT INTO pgflow.task_run_states (task_run_id, state_type, state_name, "timestamp", transition_id)
        SELECT h.id, h.type, h.name, h.at, h.tid
          FROM (SELECT m.id, m.ord, 1 AS step, 'PENDING'::pgflow.state_type AS type, 'Pending' AS name, m.ts AS at, NULL::uuid AS tid
                  FROM made m
                UNION ALL
                SELECT m.id, m.ord, 2, 'RUNNING', 'Running', m.s, m.sid FROM made m WHERE m.fast
                UNION ALL
                SELECT m.id, m.ord, 3, 'COMPLETED', 'Completed', m.c, m.cid FROM made m WHERE m.fast AND m.c IS NOT NULL) h
         ORDER BY h.ord, h.step),
    results AS (
        INSERT INTO pgflow.results (run_id, value, created_at)
        SELECT m.id, m.res, m.c FROM made m WHERE m.fast AND m.c IS NOT NULL AND m.res IS NOT NULL),
    cache AS (
        INSERT INTO pgflow.task_run_cache (cache_key, value, task_run_id, created_at, expires_at)
        SELECT m.ck, coalesce(m.res, 'null'), m.id, m.c, m.c + m.ce
          FROM made m WHERE m.fast AND m.c IS NOT NULL AND m.ck IS NOT NULL
        ON CONFLICT (cache_key) DO UPDATE SET value = excluded.value, task_run_id = excluded.task_run_id,
                                              created_at = excluded.created_at, expires_at = excluded.expires_at)
    SELECT array_agg(m.id ORDER BY x.ord), array_agg(x.ord ORDER BY x.ord) FILTER (WHERE x.s IS NOT NULL AND NOT coalesce(m.fast, false))
      INTO v_ids, v_slow
      FROM x LEFT JOIN made m ON m.ord = x.ord;

    IF array_position(v_ids, NULL) IS NOT NULL THEN  -- existing task runs (this statement sees ones a concurrent call just made)
        v_ids := ARRAY(SELECT coalesce(v_ids[x.ord], t.id)
                         FROM unnest(p_task_keys, p_dynamic_keys) WITH ORDINALITY x(k, d, ord)
                         LEFT JOIN pgflow.task_runs t
                                ON t.flow_run_id = p_flow_run_id AND t.task_key = x.k AND t.dynamic_key = coalesce(x.d, '0')
                        ORDER BY x.ord);
    END IF;

    -- the general path: Running, then Completed, by the rules of set_task_run_states
    IF cardinality(v_slow) > 0 THEN
        PERFORM 1 FROM pgflow._transition_task_runs_isolated(
            ARRAY(SELECT ROW(v_ids[o], 'RUNNING', 'Running', NULL, NULL, NULL, NULL, p_start_transition_ids[o], NULL)::pgflow._proposal
                    FROM unnest(v_slow) o ORDER BY o),
            true, p_now, ARRAY(SELECT p_started_at[o] FROM unnest(v_slow) o ORDER BY o));
        v_slow := ARRAY(SELECT o FROM unnest(v_slow) o WHERE p_completed_at[o] IS NOT NULL ORDER BY o);
        IF cardinality(v_slow) > 0 THEN
            PERFORM 1 FROM pgflow._transition_task_runs_isolated(
                ARRAY(SELECT ROW(v_ids[o], 'COMPLETED', 'Completed', NULL, p_results[o], NULL, NULL, p_complete_transition_ids[o],
                                 NULL)::pgflow._proposal
                        FROM unnest(v_slow) o ORDER BY o),
                true, p_now, ARRAY(SELECT p_completed_at[o] FROM unnest(v_slow) o ORDER BY o));
        END IF;
    END IF;
    RETURN QUERY SELECT x.id FROM unnest(v_ids) WITH ORDINALITY x(id, ord) ORDER BY x.ord;
END $$;

-- Privileges (the rule of docs/security.md): an API function, SECURITY DEFINER with a pinned
-- search_path; the SDK runs as pgflow_agent (as create_task_runs and set_task_run_states); the admin
-- role gets every API function.
ALTER FUNCTION pgflow.record_task_runs(uuid, text[], text[], text[], jsonb[], text[], text[], interval[], integer[], text[],
                                       text[], float8[], timestamptz[], boolean[], timestamptz[], uuid[], timestamptz[], jsonb[],
                                       uuid[], timestamptz)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.record_task_runs(uuid, text[], text[], text[], jsonb[], text[], text[], interval[], integer[],
                                                  text[], text[], float8[], timestamptz[], boolean[], timestamptz[], uuid[],
                                                  timestamptz[], jsonb[], uuid[], timestamptz)
    TO pgflow_agent, pgflow_admin;
