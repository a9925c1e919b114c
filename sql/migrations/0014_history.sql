-- 0014: listings that stay fast with 10,000,000 runs in the history (issue 17). Every listing of flow
-- runs — the API's and dashboard's pgflow.flow_run_page and the CLI's pgflow.list_flow_runs — is now
-- one order, newest created first, (created_at, id) as the keyset, and each filter reads an index that
-- serves that order, so a page reads about as many index entries as it returns rows:
--
--   no filter, COMPLETED, a time range, a cursor    flow_runs_created (created_at DESC, id DESC), from 0007
--   deployment                                      flow_runs_deployment (deployment_id, flow_id, created_at, id)
--   flow                                            the same index, one stream per deployment of the flow and
--                                                   one for its runs without a deployment, merged
--   work queue                                      flow_runs_queue (work_queue_id, created_at, id)
--   FAILED, CRASHED, CANCELLED (and their names)    flow_runs_failed (state_name, created_at, id) WHERE state_type IN (…),
--                                                   one stream per state name of the type, merged
--   PENDING, RUNNING, PAUSED, CANCELLING            flow_runs_active_created (state_type, created_at, id), partial (new)
--   SCHEDULED (Scheduled, Late, AwaitingRetry, …)   run_queue (the waiting runs: few), then sorted
--   tag                                             flow_runs_tags (GIN), or flow_runs_created when the tag
--                                                   is common (the planner picks by the tag's frequency)
--
-- When several filters are given, the most selective route above reads its index and applies the rest
-- as filters. The CLI's old default order, "recent activity" (the greatest of end, start and scheduled
-- time), was an expression no index serves: every call sorted the whole history (5–9.5 s at 2,000,000
-- runs); it is gone, as are the sorts by name and by scheduled time of past runs.
--
-- What the indexes cost the hot path: flow_runs' updates are not HOT (flow_runs_active, _ended, _failed
-- name state columns), so every index of flow_runs gets an entry at the run's insert and at each of its
-- two updates in a drain. flow_runs_deployment and flow_runs_failed are reshaped (no new index); the
-- queue B-tree and the tags GIN are new, and a partial B-tree of the runs in progress (one entry per run
-- when it starts). BENCHMARKS.md ("History at 10M runs") has the drain's cost.

-- ============================================================================================
-- Indexes
-- ============================================================================================
-- deployment and flow listings, newest first (replaces (deployment_id, created_at), whose order was
-- not the listing's: ties and the cursor need id; flow_id lets runs without a deployment be found by
-- flow, and keeps deployment_id first for every "runs of deployment X" lookup)
DROP INDEX pgflow.flow_runs_deployment;
CREATE INDEX flow_runs_deployment ON pgflow.flow_runs (deployment_id, flow_id, created_at, id);
-- work queue listings, newest first
CREATE INDEX flow_runs_queue ON pgflow.flow_runs (work_queue_id, created_at, id);
-- "what failed lately": failed, crashed and cancelled runs by state name, newest first (a type is one
-- stream per name: FAILED is Failed and TimedOut; a name alone, TimedOut, is one). The key was end_time, which
-- nothing reads any more (the dashboard's windows read flow_runs_ended's covering index); the predicate
-- names state_type as before, so updates stay as HOT (not at all) as they were.
DROP INDEX pgflow.flow_runs_failed;
CREATE INDEX flow_runs_failed ON pgflow.flow_runs (state_name, created_at, id) WHERE state_type IN ('FAILED', 'CRASHED', 'CANCELLED');
-- listings of runs in progress by state, newest first (the active runs only: an entry when a run becomes
-- Pending or Running, none for the history; flow_runs_active is keyed by agent for the agents' reads)
CREATE INDEX flow_runs_active_created ON pgflow.flow_runs (state_type, created_at, id)
    WHERE state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
-- tag listings (rare tags; a tag on many runs is found by walking flow_runs_created)
CREATE INDEX flow_runs_tags ON pgflow.flow_runs USING gin (tags) WITH (fastupdate = off);

-- ============================================================================================
-- The state type a state filter implies: a type, or the type of a state name (NULL: not a state).
-- ============================================================================================
CREATE FUNCTION pgflow._state_type_of(p_state text) RETURNS pgflow.state_type
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN upper(p_state) IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED', 'CANCELLING', 'COMPLETED', 'FAILED',
                                'CANCELLED', 'CRASHED') THEN upper(p_state)
        WHEN p_state IN ('Late', 'AwaitingRetry', 'AwaitingConcurrencySlot') THEN 'SCHEDULED'
        WHEN p_state = 'Retrying' THEN 'RUNNING'
        WHEN p_state = 'Suspended' THEN 'PAUSED'
        WHEN p_state = 'Cached' THEN 'COMPLETED'
        WHEN p_state = 'TimedOut' THEN 'FAILED'
    END::pgflow.state_type
$$;

-- ============================================================================================
-- The keys of one page of flow runs, newest created first: (id, created_at) of at most p_limit runs
-- matching every filter given, after the keyset (p_after_at, p_after_id) when given. Internal: the
-- listing functions validate and resolve names first. p_past_only keeps runs that started or whose
-- start time has come (the CLI's default listing). Builds the one query the filters need, each value
-- a bound parameter ($1…$14), and picks the route (module comment) by the filters.
-- ============================================================================================
CREATE FUNCTION pgflow._flow_run_keys(
    p_type      pgflow.state_type,
    p_name      text,
    p_flow_id   uuid,
    p_dep_id    uuid,
    p_tag       text,
    p_queue_id  uuid,
    p_since     timestamptz,
    p_until     timestamptz,
    p_after_at  timestamptz,
    p_after_id  uuid,
    p_limit     integer,
    p_past_only boolean DEFAULT false,
    p_now       timestamptz DEFAULT now()
) RETURNS TABLE (id uuid, created_at timestamptz)
LANGUAGE plpgsql STABLE ROWS 50 AS $$  -- ROWS: a page, so callers join it by primary key, never by a scan
DECLARE
    v_dep_flow uuid;
    v_where    text := '';
    v_order    text := ' ORDER BY r.created_at DESC, r.id DESC LIMIT $11';
    v_sql      text;
BEGIN
    IF p_name IS NOT NULL AND (p_name NOT IN ('Scheduled', 'Late', 'AwaitingRetry', 'AwaitingConcurrencySlot', 'Pending',
                                              'Running', 'Retrying', 'Paused', 'Suspended', 'Cancelling', 'Completed',
                                              'Cached', 'Failed', 'TimedOut', 'Cancelled', 'Crashed')
                               OR coalesce(p_type, pgflow._state_type_of(p_name)) IS DISTINCT FROM pgflow._state_type_of(p_name)) THEN
        RETURN;  -- no such state name, or a name of another type: nothing matches
    END IF;
    p_type := coalesce(p_type, pgflow._state_type_of(p_name));
    IF p_dep_id IS NOT NULL THEN
        SELECT d.flow_id INTO v_dep_flow FROM pgflow.deployments d WHERE d.id = p_dep_id;
        IF v_dep_flow IS NULL OR v_dep_flow IS DISTINCT FROM coalesce(p_flow_id, v_dep_flow) THEN
            RETURN;  -- the deployment of another flow
        END IF;
    END IF;
    IF p_type IS NOT NULL THEN v_where := v_where || ' AND r.state_type = $1'; END IF;
    IF p_name IS NOT NULL THEN v_where := v_where || ' AND r.state_name = $2'; END IF;
    IF p_flow_id IS NOT NULL THEN v_where := v_where || ' AND r.flow_id = $3'; END IF;
    IF p_dep_id IS NOT NULL THEN v_where := v_where || ' AND r.deployment_id = $4 AND r.flow_id = $12'; END IF;
    IF p_tag IS NOT NULL THEN v_where := v_where || ' AND r.tags @> ARRAY[$5]'; END IF;
    IF p_queue_id IS NOT NULL THEN v_where := v_where || ' AND r.work_queue_id = $6'; END IF;
    IF p_since IS NOT NULL THEN v_where := v_where || ' AND r.created_at >= $7'; END IF;
    IF p_until IS NOT NULL THEN v_where := v_where || ' AND r.created_at < $8'; END IF;
    IF p_after_at IS NOT NULL THEN v_where := v_where || ' AND (r.created_at, r.id) < ($9, $10)'; END IF;
    IF p_past_only AND p_type IS NULL THEN
        v_where := v_where || ' AND (r.start_time IS NOT NULL OR r.expected_start_time <= $13)';
    END IF;

    IF p_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') THEN
        -- the runs in progress of that state, newest first (flow_runs_active_created)
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE r.state_type IN '
              || '(''PENDING'', ''RUNNING'', ''PAUSED'', ''CANCELLING'')' || v_where || v_order;
    ELSIF p_type = 'SCHEDULED' THEN
        -- the waiting runs: a run is SCHEDULED exactly while it has a run_queue row
        v_sql := 'SELECT r.id, r.created_at FROM (SELECT w.flow_run_id FROM pgflow.run_queue w OFFSET 0) w '
              || 'JOIN pgflow.flow_runs r ON r.id = w.flow_run_id WHERE true' || v_where || v_order;
    ELSIF p_dep_id IS NOT NULL THEN
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE true' || v_where || v_order;
    ELSIF p_queue_id IS NOT NULL THEN
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE true' || v_where || v_order;
    ELSIF p_type IN ('FAILED', 'CRASHED', 'CANCELLED') THEN
        -- one stream per state name of the type (FAILED: Failed and TimedOut), merged
        v_sql := 'SELECT s.id, s.created_at FROM unnest($14::text[]) n(name) CROSS JOIN LATERAL ('
              || '  SELECT r.id, r.created_at FROM pgflow.flow_runs r'
              || '   WHERE r.state_type IN (''FAILED'', ''CRASHED'', ''CANCELLED'') AND r.state_name = n.name' || v_where || v_order
              || ') s ORDER BY s.created_at DESC, s.id DESC LIMIT $11';
    ELSIF p_flow_id IS NOT NULL THEN
        -- one ordered stream per deployment of the flow and one of its runs without a deployment
        v_sql := 'SELECT s.id, s.created_at FROM ('
              || '  SELECT x.id, x.created_at FROM pgflow.deployments d CROSS JOIN LATERAL ('
              || '    SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE r.deployment_id = d.id' || v_where || v_order
              || '  ) x WHERE d.flow_id = $3'
              || '  UNION ALL ('
              -- the flow's runs without a deployment, read by flow_runs_deployment (OFFSET 0: never a walk of
              -- the whole history in created order, which the planner may pick for a flow with none), sorted
              || '    SELECT r.id, r.created_at FROM (SELECT * FROM pgflow.flow_runs a'
              || '     WHERE a.deployment_id IS NULL AND a.flow_id = $3 OFFSET 0) r WHERE true' || v_where || v_order
              || ')) s ORDER BY s.created_at DESC, s.id DESC LIMIT $11';
    ELSE
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE true' || v_where || v_order;
    END IF;
    RETURN QUERY EXECUTE v_sql USING p_type, p_name, p_flow_id, p_dep_id, p_tag, p_queue_id, p_since, p_until,
                                     p_after_at, p_after_id, p_limit, v_dep_flow, p_now,
                                     CASE WHEN p_name IS NOT NULL THEN ARRAY[p_name]
                                          WHEN p_type = 'FAILED' THEN ARRAY['Failed', 'TimedOut']
                                          ELSE ARRAY[initcap(p_type::text)] END;
END $$;

-- ============================================================================================
-- The API's and dashboard's listing: same signature, filters and cursor as 0007, now by the routes
-- above (it walked flow_runs_created for every filter: 176 ms for FAILED, 464 ms for RUNNING at 2M).
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow.flow_run_page(
    p_state_type text        DEFAULT NULL,
    p_state_name text        DEFAULT NULL,
    p_flow       text        DEFAULT NULL,
    p_deployment text        DEFAULT NULL,
    p_tag        text        DEFAULT NULL,
    p_work_queue text        DEFAULT NULL,
    p_since      timestamptz DEFAULT NULL,
    p_until      timestamptz DEFAULT NULL,
    p_limit      integer     DEFAULT 50,
    p_cursor     text        DEFAULT NULL
) RETURNS TABLE (
    id uuid, name text, flow text, deployment text, work_queue text, state_type text, state_name text,
    state_timestamp timestamptz, state_message text, run_count integer, expected_start_time timestamptz,
    next_scheduled_start timestamptz, start_time timestamptz, end_time timestamptz, total_run_time float8,
    parameters jsonb, tags text[], idempotency_key text, agent_id uuid, parent_task_run_id uuid,
    created_at timestamptz, cursor text
)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_page   record := pgflow._check_page(p_limit, p_cursor);
    v_type   pgflow.state_type;
    v_dep_id uuid;
    v_flow   uuid;
    v_queue  uuid;
BEGIN
    IF p_state_type IS NOT NULL THEN
        IF upper(p_state_type) NOT IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED', 'CANCELLING', 'COMPLETED',
                                       'FAILED', 'CANCELLED', 'CRASHED') THEN
            RAISE EXCEPTION 'pgflow: invalid state type %', quote_literal(p_state_type)
                USING ERRCODE = '22023', HINT = 'use one of SCHEDULED, PENDING, RUNNING, PAUSED, CANCELLING, COMPLETED, FAILED, CANCELLED, CRASHED';
        END IF;
        v_type := upper(p_state_type)::pgflow.state_type;
    END IF;
    IF p_deployment IS NOT NULL THEN v_dep_id := pgflow._deployment_id(p_deployment); END IF;
    IF p_work_queue IS NOT NULL THEN v_queue := pgflow._work_queue_id(p_work_queue); END IF;
    IF p_flow IS NOT NULL THEN
        SELECT f.id INTO v_flow FROM pgflow.flows f WHERE f.name = p_flow;
        IF v_flow IS NULL THEN
            RAISE EXCEPTION 'pgflow: unknown flow %', quote_literal(p_flow)
                USING ERRCODE = 'P0002', HINT = 'SELECT name FROM pgflow.flows lists them';
        END IF;
    END IF;
    RETURN QUERY
    SELECT r.id, r.name, f.name, d.name, q.name, r.state_type::text, r.state_name, r.state_timestamp, r.state_message,
           r.run_count, r.expected_start_time, r.next_scheduled_start, r.start_time, r.end_time,
           extract(epoch FROM r.total_run_time)::float8, r.parameters, r.tags, r.idempotency_key, r.agent_id,
           r.parent_task_run_id, r.created_at,
           to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ',' || r.id
      FROM pgflow._flow_run_keys(v_type, p_state_name, v_flow, v_dep_id, p_tag, v_queue, p_since, p_until,
                                 v_page.created_at, v_page.id, p_limit) k
      JOIN pgflow.flow_runs r ON r.id = k.id
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
      LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
     ORDER BY k.created_at DESC, k.id DESC;
END $$;

-- ============================================================================================
-- The CLI's listing (`pgflow flow-run ls`): same signature. Without p_upcoming: runs that started or
-- whose start time has come, newest created first (p_state alone also shows future runs of that state);
-- p_since keeps runs created since then. With p_upcoming: the Scheduled runs still ahead (run_queue),
-- soonest first, p_since keeping those due from then. p_sort: 'created' (the default) or, with
-- p_upcoming, 'scheduled' (its default); the old 'activity' and 'name' orders sorted the whole history
-- and are refused (22023). Unknown flows and deployments are P0002.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow.list_flow_runs(
    p_state      text        DEFAULT NULL,
    p_flow       text        DEFAULT NULL,
    p_deployment text        DEFAULT NULL,
    p_tag        text        DEFAULT NULL,
    p_since      timestamptz DEFAULT NULL,
    p_upcoming   boolean     DEFAULT false,
    p_sort       text        DEFAULT NULL,
    p_limit      integer     DEFAULT 20,
    p_now        timestamptz DEFAULT now()
) RETURNS SETOF pgflow.flow_run_history
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_state text := pgflow.state_filter(p_state);
    v_type  pgflow.state_type := pgflow._state_type_of(v_state);
    v_name  text := CASE WHEN upper(v_state) = v_state THEN NULL ELSE v_state END;
    v_dep   uuid;
    v_flow  uuid;
    v_sort  text := lower(coalesce(p_sort, CASE WHEN p_upcoming THEN 'scheduled' ELSE 'created' END));
BEGIN
    IF v_sort NOT IN ('created', 'scheduled') OR (v_sort = 'scheduled' AND NOT p_upcoming) THEN
        RAISE EXCEPTION 'pgflow: unknown sort %', quote_literal(p_sort)
            USING ERRCODE = '22023',
                  HINT = 'runs are listed newest first (sort created), --upcoming runs soonest first (sort scheduled); '
                         'the activity and name orders sorted the whole history and are gone';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'pgflow: a listing limit must be 1 or more, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass e.g. 20';
    END IF;
    IF p_flow IS NOT NULL THEN
        SELECT f.id INTO v_flow FROM pgflow.flows f WHERE f.name = p_flow;
        IF v_flow IS NULL THEN
            RAISE EXCEPTION 'pgflow: unknown flow %', quote_literal(p_flow)
                USING ERRCODE = 'P0002', HINT = 'SELECT name FROM pgflow.flow_list lists them';
        END IF;
    END IF;
    IF p_deployment IS NOT NULL THEN
        v_dep := pgflow._deployment_id(p_deployment);
    END IF;
    IF p_upcoming THEN
        -- the waiting runs (run_queue: few), soonest first
        RETURN QUERY
        SELECT h.* FROM pgflow.run_queue w
          JOIN pgflow.flow_runs r ON r.id = w.flow_run_id
          JOIN pgflow.flow_run_history h ON h.id = r.id
         WHERE r.state_type = 'SCHEDULED' AND r.expected_start_time > p_now
           AND (p_since IS NULL OR r.expected_start_time >= p_since)
           AND (v_type IS NULL OR r.state_type = v_type) AND (v_name IS NULL OR r.state_name = v_name)
           AND (v_flow IS NULL OR r.flow_id = v_flow) AND (v_dep IS NULL OR r.deployment_id = v_dep)
           AND (p_tag IS NULL OR r.tags @> ARRAY[p_tag])
         ORDER BY CASE WHEN v_sort = 'created' THEN r.created_at END DESC, r.expected_start_time, r.id
         LIMIT p_limit;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT h.* FROM pgflow._flow_run_keys(v_type, v_name, v_flow, v_dep, p_tag, NULL, p_since, NULL, NULL, NULL,
                                          p_limit, true, p_now) k
      JOIN pgflow.flow_run_history h ON h.id = k.id
     ORDER BY k.created_at DESC, k.id DESC;
END $$;

-- ============================================================================================
-- Privileges: the listings keep their grants (CREATE OR REPLACE); the helpers run only inside them.
-- ============================================================================================
ALTER FUNCTION pgflow._state_type_of(text) SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow._flow_run_keys(pgflow.state_type, text, uuid, uuid, text, uuid, timestamptz, timestamptz,
                                     timestamptz, uuid, integer, boolean, timestamptz)
    SET search_path = pg_catalog, pgflow, pg_temp;
REVOKE EXECUTE ON FUNCTION pgflow._state_type_of(text),
                           pgflow._flow_run_keys(pgflow.state_type, text, uuid, uuid, text, uuid, timestamptz, timestamptz,
                                                 timestamptz, uuid, integer, boolean, timestamptz)
    FROM PUBLIC;
