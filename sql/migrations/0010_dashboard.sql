-- 0010: what the web dashboard (served by pgflow-api at /) reads, usable from psql as well. Read-only
-- functions over the run history that stay fast with millions of runs: finished runs are read through
-- one covering index on end_time (an index-only range scan of the window, no heap visit once vacuumed),
-- runs in progress through the partial index of active runs, waiting runs through run_queue.

-- ============================================================================================
-- The covering index: the same key and predicate as flow_runs_ended (which retention and the metrics
-- use; every plan that used it can use this one), plus the columns the dashboard groups by. end_time
-- is set exactly when a run reaches a terminal state and cleared when it is retried, so these columns
-- change together with the key and the index costs no HOT update that flow_runs_ended did not.
-- ============================================================================================
DROP INDEX pgflow.flow_runs_ended;
CREATE INDEX flow_runs_ended ON pgflow.flow_runs (end_time) INCLUDE (state_type, state_name, deployment_id)
    WHERE end_time IS NOT NULL;

CREATE FUNCTION pgflow._check_window(p_since timestamptz, p_until timestamptz) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_since IS NULL OR p_until IS NULL OR p_since >= p_until OR p_until - p_since > interval '400 days' THEN
        RAISE EXCEPTION 'pgflow: invalid time window [%, %)', coalesce(p_since::text, 'NULL'), coalesce(p_until::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass a start before the end, at most 400 days apart';
    END IF;
END $$;

-- Run activity in [p_since, p_until) in buckets of p_bucket (at most 1000 buckets): runs that ended
-- in a bucket by final state type, runs in progress now in the bucket they started in (or the first
-- bucket), and runs waiting in a queue in the bucket they are due in (state_name Late or Scheduled).
CREATE FUNCTION pgflow.run_activity(p_since timestamptz, p_until timestamptz, p_bucket interval)
RETURNS TABLE (bucket timestamptz, state_type text, state_name text, runs bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pgflow._check_window(p_since, p_until);
    IF p_bucket IS NULL OR p_bucket < interval '1 second'
       OR extract(epoch FROM p_until - p_since) / extract(epoch FROM p_bucket) > 1000 THEN
        RAISE EXCEPTION 'pgflow: invalid activity bucket %', coalesce(p_bucket::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass at least one second and at most 1000 buckets per window';
    END IF;
    RETURN QUERY
    SELECT x.bucket, x.state_type::text, x.state_type::text, x.runs
      FROM (SELECT date_bin(p_bucket, r.end_time, p_since) AS bucket, r.state_type, count(*) AS runs
              FROM pgflow.flow_runs r
             WHERE r.end_time >= p_since AND r.end_time < p_until
             GROUP BY 1, 2) x
    UNION ALL
    SELECT date_bin(p_bucket, greatest(coalesce(r.start_time, r.state_timestamp), p_since), p_since),
           r.state_type::text, r.state_type::text, count(*)
      FROM pgflow.flow_runs r
     WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
       AND coalesce(r.start_time, r.state_timestamp) < p_until
     GROUP BY 1, 2
    UNION ALL
    SELECT date_bin(p_bucket, rq.scheduled_at, p_since), 'SCHEDULED', r.state_name, count(*)
      FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
     WHERE rq.scheduled_at >= p_since AND rq.scheduled_at < p_until
     GROUP BY 1, 3;
END $$;

-- Runs by state for a window starting at p_since: terminal states count the runs that ended since
-- then; other states count the runs in that state now (waiting ones when due since p_since, later included).
CREATE FUNCTION pgflow.run_state_counts(p_since timestamptz)
RETURNS TABLE (state_type text, state_name text, runs bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_since IS NULL THEN
        RAISE EXCEPTION 'pgflow: run_state_counts needs a start time' USING ERRCODE = '22023', HINT = 'pass now() - interval ''24 hours'', say';
    END IF;
    RETURN QUERY
    SELECT x.state_type::text, x.state_name, x.runs
      FROM (SELECT r.state_type, r.state_name, count(*) AS runs FROM pgflow.flow_runs r WHERE r.end_time >= p_since GROUP BY 1, 2) x
    UNION ALL
    SELECT r.state_type::text, r.state_name, count(*) FROM pgflow.flow_runs r
     WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') GROUP BY 1, 2
    UNION ALL
    SELECT r.state_type::text, r.state_name, count(*)
      FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
     WHERE rq.scheduled_at >= p_since GROUP BY 1, 2;
END $$;

-- Deployments with failed or crashed runs that ended since p_since, most failures first.
CREATE FUNCTION pgflow.failing_deployments(p_since timestamptz, p_limit integer DEFAULT 10)
RETURNS TABLE (deployment text, failed bigint, finished bigint, last_failure timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pgflow._check_page(p_limit, NULL);
    RETURN QUERY
    SELECT f.name || '/' || d.name, x.failed, x.finished, x.last_failure
      FROM (SELECT r.deployment_id,
                   count(*) FILTER (WHERE r.state_type IN ('FAILED', 'CRASHED')) AS failed, count(*) AS finished,
                   max(r.end_time) FILTER (WHERE r.state_type IN ('FAILED', 'CRASHED')) AS last_failure
              FROM pgflow.flow_runs r
             WHERE r.end_time >= p_since AND r.deployment_id IS NOT NULL
             GROUP BY r.deployment_id) x
      JOIN pgflow.deployments d ON d.id = x.deployment_id
      JOIN pgflow.flows f ON f.id = d.flow_id
     WHERE x.failed > 0
     ORDER BY x.failed DESC, 1
     LIMIT p_limit;
END $$;

-- Late runs (due, not started), the longest waiting first.
CREATE FUNCTION pgflow.late_flow_runs(p_limit integer DEFAULT 10)
RETURNS TABLE (id uuid, name text, deployment text, work_queue text, expected_start_time timestamptz, late_seconds float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pgflow._check_page(p_limit, NULL);
    RETURN QUERY
    SELECT r.id, r.name, coalesce(f.name || '/' || d.name, f.name), q.name, r.expected_start_time,
           extract(epoch FROM now() - rq.scheduled_at)::float8
      FROM pgflow.run_queue rq
      JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
      JOIN pgflow.work_queues q ON q.id = rq.work_queue_id
     WHERE r.state_name = 'Late'
     ORDER BY rq.scheduled_at, r.id
     LIMIT p_limit;
END $$;

-- A deployment's runs waiting in a queue ('flow/deployment'; P0002 when unknown), soonest first.
CREATE FUNCTION pgflow.deployment_upcoming_runs(p_deployment text, p_limit integer DEFAULT 10)
RETURNS TABLE (id uuid, name text, state_name text, scheduled_at timestamptz, schedule_id uuid)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_dep uuid := pgflow._deployment_id(p_deployment);
BEGIN
    PERFORM pgflow._check_page(p_limit, NULL);
    RETURN QUERY
    SELECT r.id, r.name, r.state_name, rq.scheduled_at, r.deployment_schedule_id
      FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
     WHERE r.deployment_id = v_dep
     ORDER BY rq.scheduled_at, r.id
     LIMIT p_limit;
END $$;

-- A flow run's task runs as a timeline (P0002 for an unknown run): its own at depth 0, and under a
-- task that ran a subflow, that subflow's task runs at depth + 1 (down to depth 4), in start order.
-- retries: the times the task waited to retry (its AwaitingRetry states). At most 2000 rows.
CREATE FUNCTION pgflow.flow_run_task_timeline(p_flow_run_id uuid)
RETURNS TABLE (depth integer, flow_run_id uuid, id uuid, task_key text, name text, state_type text, state_name text,
               start_time timestamptz, end_time timestamptz, run_count integer, retries bigint,
               subflow_run_id uuid, subflow_run_name text, subflow_state_name text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_flow_run_id::text, 'NULL') USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    RETURN QUERY
    WITH RECURSIVE tree (depth, flow_run_id, id, path) AS (
        SELECT 0, t.flow_run_id, t.id,
               ARRAY[to_char(coalesce(t.start_time, t.created_at) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || t.id::text]
          FROM pgflow.task_runs t WHERE t.flow_run_id = p_flow_run_id
        UNION ALL
        SELECT tree.depth + 1, t.flow_run_id, t.id,
               tree.path || (to_char(coalesce(t.start_time, t.created_at) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || t.id::text)
          FROM tree
          JOIN pgflow.flow_runs c ON c.parent_task_run_id = tree.id
          JOIN pgflow.task_runs t ON t.flow_run_id = c.id
         WHERE tree.depth < 4
    )
    SELECT tree.depth, tree.flow_run_id, t.id, t.task_key, t.name, t.state_type::text, t.state_name,
           t.start_time, t.end_time, t.run_count,
           (SELECT count(*) FROM pgflow.task_run_states s WHERE s.task_run_id = t.id AND s.state_name = 'AwaitingRetry'),
           c.id, c.name, c.state_name
      FROM tree
      JOIN pgflow.task_runs t ON t.id = tree.id
      LEFT JOIN LATERAL (SELECT c.id, c.name, c.state_name FROM pgflow.flow_runs c
                          WHERE c.parent_task_run_id = t.id ORDER BY c.created_at DESC LIMIT 1) c ON true
     ORDER BY tree.path
     LIMIT 2000;
END $$;

-- Who holds slots of a concurrency limit now (P0002 for an unknown limit): runs, task runs or leases.
CREATE FUNCTION pgflow.concurrency_limit_holders(p_name text)
RETURNS TABLE (holder_kind text, holder_id uuid, holder_name text, flow_run_id uuid, slots integer,
               acquired_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit uuid;
BEGIN
    SELECT l.id INTO v_limit FROM pgflow.concurrency_limits l WHERE l.name = p_name;
    IF v_limit IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown concurrency limit %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT name FROM pgflow.concurrency_status lists them';
    END IF;
    RETURN QUERY
    SELECT s.holder_kind, s.holder_id, coalesce(r.name, t.name), coalesce(r.id, t.flow_run_id), s.slots, s.acquired_at, s.expires_at
      FROM pgflow.concurrency_slots s
      LEFT JOIN pgflow.flow_runs r ON s.holder_kind = 'flow_run' AND r.id = s.holder_id
      LEFT JOIN pgflow.task_runs t ON s.holder_kind = 'task_run' AND t.id = s.holder_id
     WHERE s.limit_id = v_limit AND (s.expires_at IS NULL OR s.expires_at > now())
     ORDER BY s.acquired_at
     LIMIT 1000;
END $$;

-- ============================================================================================
-- Privileges (the rule of docs/security.md): read-only functions for the API, the admin and readers.
-- ============================================================================================
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'pgflow'::regnamespace
           AND p.proname IN ('run_activity', 'run_state_counts', 'failing_deployments', 'late_flow_runs',
                             'deployment_upcoming_runs', 'flow_run_task_timeline', 'concurrency_limit_holders')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp', v_fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgflow_api, pgflow_admin, pgflow_reader', v_fn);
    END LOOP;
END $$;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
