-- 0004: what the command line (and any other client) reads and changes without touching tables:
-- NOTIFY on every flow run state and log line (followers wake instead of polling), state filters
-- accepted case-insensitively and rejected when unknown, the flow run listing (recent activity or
-- upcoming, filters, sort), a run's states and logs after an id, agents, flows, schedules and the
-- queue preview as views, schedule pause/resume, and changing some settings of a deployment.

-- ============================================================================================
-- NOTIFY: one message per transaction and channel (an empty payload is deduplicated by PostgreSQL),
-- so a batch of a thousand transitions costs one notification; followers re-read after their last id.
-- ============================================================================================
CREATE FUNCTION pgflow._notify_flow_run_states() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow.notify('pgflow_flow_run_states', '');
    RETURN NULL;
END $$;

CREATE TRIGGER flow_run_states_notify AFTER INSERT ON pgflow.flow_run_states
    FOR EACH STATEMENT EXECUTE FUNCTION pgflow._notify_flow_run_states();

CREATE FUNCTION pgflow._notify_logs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow.notify('pgflow_logs', '');
    RETURN NULL;
END $$;

CREATE TRIGGER logs_notify AFTER INSERT ON pgflow.logs
    FOR EACH STATEMENT EXECUTE FUNCTION pgflow._notify_logs();

-- ============================================================================================
-- State filters
-- ============================================================================================
-- The state type ('FAILED') or state name ('TimedOut') a user means, matched case-insensitively and
-- ignoring '_', '-' and spaces ('timed_out', 'failed'); a type wins over the name it shares
-- ('completed' is COMPLETED, which includes Cached). NULL stays NULL; anything else is SQLSTATE 22023.
CREATE FUNCTION pgflow.state_filter(p_state text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_key   text := lower(regexp_replace(coalesce(p_state, ''), '[\s_-]', '', 'g'));
    v_match text;
BEGIN
    IF p_state IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT t INTO v_match FROM unnest(enum_range(NULL::pgflow.state_type)::text[]) t WHERE lower(t) = v_key;
    IF v_match IS NULL THEN
        SELECT n INTO v_match
          FROM unnest(ARRAY['Scheduled', 'Late', 'AwaitingRetry', 'AwaitingConcurrencySlot', 'Pending', 'Running',
                            'Retrying', 'Paused', 'Suspended', 'Cancelling', 'Completed', 'Cached', 'Failed',
                            'TimedOut', 'Cancelled', 'Crashed']) n
         WHERE lower(n) = v_key;
    END IF;
    IF v_match IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown state %', quote_literal(p_state)
            USING ERRCODE = '22023',
                  HINT = 'use a state type (SCHEDULED, PENDING, RUNNING, PAUSED, CANCELLING, COMPLETED, FAILED, CANCELLED, '
                         'CRASHED) or a state name (Late, AwaitingRetry, AwaitingConcurrencySlot, Retrying, Suspended, '
                         'Cached, TimedOut, …), in any case';
    END IF;
    RETURN v_match;
END $$;

-- ============================================================================================
-- Views the CLI reads (added columns go at the end of existing views)
-- ============================================================================================
CREATE OR REPLACE VIEW pgflow.flow_run_history AS
SELECT r.id, r.name, f.name AS flow, d.name AS deployment, q.name AS work_queue,
       r.state_type AS state, r.state_name, r.state_timestamp AS state_at, r.state_message,
       r.run_count, r.expected_start_time, r.next_scheduled_start, r.start_time, r.end_time, r.total_run_time,
       r.parameters, r.tags, res.value AS result, r.agent_id, r.process_id, r.parent_task_run_id,
       r.idempotency_key, r.created_at, a.name AS agent, r.deployment_schedule_id
  FROM pgflow.flow_runs r
  JOIN pgflow.flows f ON f.id = r.flow_id
  LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
  LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
  LEFT JOIN pgflow.results res ON res.run_id = r.id
  LEFT JOIN pgflow.agents a ON a.id = r.agent_id;

CREATE OR REPLACE VIEW pgflow.deployment_list AS
SELECT f.name || '/' || d.name AS deployment, d.entrypoint, q.name AS work_queue, d.paused, d.tags,
       d.parameters, l.concurrency_limit, d.collision_strategy, d.missed_run_policy, d.retries, d.retry_backoff, d.retry_delays,
       d.version, d.description,
       (SELECT count(*) FROM pgflow.deployment_schedules s WHERE s.deployment_id = d.id AND s.active) AS active_schedules,
       d.id, d.timeout_seconds, d.retry_jitter, d.created_at, d.updated_at
  FROM pgflow.deployments d
  JOIN pgflow.flows f ON f.id = d.flow_id
  JOIN pgflow.work_queues q ON q.id = d.work_queue_id
  LEFT JOIN pgflow.concurrency_limits l ON l.id = d.concurrency_limit_id;

-- Agents: their queues, last heartbeat and the runs they hold now (pending, running, paused, cancelling).
CREATE VIEW pgflow.agent_list AS
SELECT a.name, a.work_queues, a.status, a.last_heartbeat_at, a.registered_at,
       (SELECT count(*) FROM pgflow.flow_runs r
         WHERE r.agent_id = a.id AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')) AS runs_held,
       a.id
  FROM pgflow.agents a;

-- Flows with their deployments.
CREATE VIEW pgflow.flow_list AS
SELECT f.name, (SELECT count(*) FROM pgflow.deployments d WHERE d.flow_id = f.id) AS deployments,
       ARRAY(SELECT d.name FROM pgflow.deployments d WHERE d.flow_id = f.id ORDER BY d.name) AS deployment_names,
       f.created_at, f.id
  FROM pgflow.flows f;

-- Schedules with their deployment, expression, state and next run.
CREATE VIEW pgflow.schedule_list AS
SELECT s.id, f.name || '/' || d.name AS deployment, s.kind,
       coalesce(s.cron, s.rrule, (extract(epoch FROM s."interval")::float8)::text || ' seconds') AS expression,
       s.timezone, s.active, d.paused AS deployment_paused,
       (SELECT min(r.expected_start_time) FROM pgflow.flow_runs r
         WHERE r.deployment_id = s.deployment_id AND r.deployment_schedule_id = s.id
           AND r.expected_start_time > now()) AS next_run,
       s.anchor_date, s.parameters, extract(epoch FROM s."interval")::float8 AS interval_seconds,
       s.deployment_id, s.created_at, s.updated_at
  FROM pgflow.deployment_schedules s
  JOIN pgflow.deployments d ON d.id = s.deployment_id
  JOIN pgflow.flows f ON f.id = d.flow_id;

-- The runs waiting in each work queue, in claim order (ORDER BY scheduled_at, id).
CREATE VIEW pgflow.queue_preview AS
SELECT q.name AS work_queue, r.id, r.name, coalesce(f.name || '/' || d.name, f.name) AS deployment,
       r.state_name AS state, rq.scheduled_at
  FROM pgflow.run_queue rq
  JOIN pgflow.work_queues q ON q.id = rq.work_queue_id
  JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
  JOIN pgflow.flows f ON f.id = r.flow_id
  LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id;

-- ============================================================================================
-- Flow runs: the listing, a run's states and logs after an id
-- ============================================================================================
-- Flow runs, filtered and sorted. Without p_upcoming: recent activity, i.e. runs that have started, or
-- whose start time has come (a late run shows up), newest first by their latest of end, start and
-- scheduled time ('activity'); p_state alone also shows future runs of that state. With p_upcoming: the
-- Scheduled runs still ahead, soonest first. p_state is a type or name (pgflow.state_filter); p_sort
-- 'activity' (default), 'scheduled' (expected start, newest first), 'created' or 'name'; p_since keeps
-- runs active (or, with p_upcoming, scheduled) since then. Unknown flows and deployments are P0002.
CREATE FUNCTION pgflow.list_flow_runs(
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
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_state text := pgflow.state_filter(p_state);
    v_dep   uuid;
    v_sort  text := lower(coalesce(p_sort, CASE WHEN p_upcoming THEN 'scheduled' ELSE 'activity' END));
BEGIN
    IF v_sort NOT IN ('activity', 'scheduled', 'created', 'name') THEN
        RAISE EXCEPTION 'pgflow: unknown sort %', quote_literal(p_sort)
            USING ERRCODE = '22023', HINT = 'sort by activity, scheduled, created or name';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'pgflow: a listing limit must be 1 or more, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass e.g. 20';
    END IF;
    IF p_flow IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.flows WHERE name = p_flow) THEN
        RAISE EXCEPTION 'pgflow: unknown flow %', quote_literal(p_flow)
            USING ERRCODE = 'P0002', HINT = 'SELECT name FROM pgflow.flow_list lists them';
    END IF;
    IF p_deployment IS NOT NULL THEN
        v_dep := pgflow._deployment_id(p_deployment);
    END IF;
    RETURN QUERY
    SELECT h.* FROM pgflow.flow_run_history h
     WHERE (v_state IS NULL OR h.state::text = v_state OR h.state_name = v_state)
       AND (p_flow IS NULL OR h.flow = p_flow)
       AND (v_dep IS NULL OR h.id IN (SELECT r.id FROM pgflow.flow_runs r WHERE r.deployment_id = v_dep))
       AND (p_tag IS NULL OR p_tag = ANY (h.tags))
       AND CASE WHEN p_upcoming THEN h.state = 'SCHEDULED' AND h.expected_start_time > p_now
                                     AND (p_since IS NULL OR h.expected_start_time >= p_since)
                ELSE (v_state IS NOT NULL OR h.start_time IS NOT NULL OR h.expected_start_time <= p_now)
                     AND (p_since IS NULL OR coalesce(h.end_time, h.start_time, h.expected_start_time) >= p_since) END
     ORDER BY CASE WHEN v_sort = 'scheduled' AND p_upcoming THEN h.expected_start_time END ASC,
              CASE v_sort WHEN 'activity' THEN greatest(h.end_time, h.start_time, least(h.expected_start_time, p_now))
                          WHEN 'scheduled' THEN h.expected_start_time
                          WHEN 'created' THEN h.created_at END DESC NULLS LAST,
              CASE WHEN v_sort = 'name' THEN h.name END ASC,
              h.expected_start_time ASC, h.id  -- future runs (activity "now") soonest first
     LIMIT p_limit;
END $$;

-- A flow run's states with ids above p_after_id, oldest first (followers pass the last id they saw,
-- so every state is seen once and in order). P0002 when the run does not exist.
CREATE FUNCTION pgflow.flow_run_states_after(p_flow_run_id uuid, p_after_id bigint DEFAULT 0)
RETURNS TABLE (id bigint, state_type text, state_name text, "timestamp" timestamptz, message text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_flow_run_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT id FROM pgflow.flow_run_history lists them';
    END IF;
    RETURN QUERY
    SELECT s.id, s.state_type::text, s.state_name, s."timestamp", s.message FROM pgflow.flow_run_states s
     WHERE s.flow_run_id = p_flow_run_id AND s.id > coalesce(p_after_id, 0) ORDER BY s.id;
END $$;

-- The name of a log level (10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL; others as numbers).
CREATE FUNCTION pgflow.log_level_name(p_level integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_level >= 50 THEN 'CRITICAL' WHEN p_level >= 40 THEN 'ERROR' WHEN p_level >= 30 THEN 'WARNING'
                WHEN p_level >= 20 THEN 'INFO' WHEN p_level >= 10 THEN 'DEBUG' ELSE 'LEVEL ' || p_level END
$$;

-- A flow run's log lines with ids above p_after_id, oldest first, at least p_min_level. P0002 when the
-- run does not exist.
CREATE FUNCTION pgflow.flow_run_logs(p_flow_run_id uuid, p_after_id bigint DEFAULT 0, p_min_level integer DEFAULT 0,
                                     p_limit integer DEFAULT 10000)
RETURNS TABLE (id bigint, "timestamp" timestamptz, level text, name text, message text, task_run_id uuid)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_flow_run_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT id FROM pgflow.flow_run_history lists them';
    END IF;
    RETURN QUERY
    SELECT l.id, l."timestamp", pgflow.log_level_name(l.level), l.name, l.message, l.task_run_id FROM pgflow.logs l
     WHERE l.flow_run_id = p_flow_run_id AND l.id > coalesce(p_after_id, 0) AND l.level >= coalesce(p_min_level, 0)
     ORDER BY l.id LIMIT greatest(coalesce(p_limit, 10000), 1);
END $$;

-- ============================================================================================
-- Changes
-- ============================================================================================
-- Pauses (p_active false: its future Scheduled runs are deleted now) or resumes a schedule.
CREATE FUNCTION pgflow.set_deployment_schedule_active(p_id uuid, p_active boolean, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_active IS NULL THEN
        RAISE EXCEPTION 'pgflow: a schedule is active or not, got NULL' USING ERRCODE = '22023', HINT = 'pass true or false';
    END IF;
    UPDATE pgflow.deployment_schedules SET active = p_active, updated_at = p_now WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown deployment schedule %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT id, deployment, kind, expression FROM pgflow.schedule_list lists them';
    END IF;
    IF NOT p_active THEN
        PERFORM pgflow.schedule_flow_runs(p_id, '{}', p_now);
    END IF;
END $$;

-- Sets (or with NULL removes) a work queue's concurrency limit, keeping its other settings.
CREATE FUNCTION pgflow.set_work_queue_concurrency_limit(p_name text, p_limit integer, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_id    uuid := pgflow._work_queue_id(p_name);
    v_limit uuid;
BEGIN
    PERFORM pgflow._check_limit(p_limit, 'work queue concurrency limit');
    -- the limit first, then the queue row: deleting a limit inside the UPDATE of the row that refers to
    -- it (ON DELETE SET NULL) would modify that row twice in one command (SQLSTATE 27000)
    v_limit := pgflow._set_managed_limit((SELECT q.concurrency_limit_id FROM pgflow.work_queues q WHERE q.id = v_id),
                                         'work_queue:' || p_name, 'work_queue', p_limit, p_now);
    UPDATE pgflow.work_queues q SET concurrency_limit_id = v_limit, updated_at = p_now WHERE q.id = v_id;
END $$;

-- Changes some settings of a deployment and keeps the others: p_settings holds the keys to change,
-- named as in pgflow.yaml (entrypoint, parameters, work_queue, tags, description, version,
-- concurrency_limit, collision_strategy, retries, retry_delays, retry_backoff, retry_jitter, paused,
-- timeout_seconds, missed_run_policy); JSON null clears the optional ones. Validated as
-- pgflow.create_deployment validates; unknown keys are SQLSTATE 22023. Returns the deployment's id.
CREATE FUNCTION pgflow.update_deployment(p_name text, p_settings jsonb, p_now timestamptz DEFAULT now())
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id    uuid := pgflow._deployment_id(p_name);
    v_d     pgflow.deployments;
    v_flow  text;
    v_queue text;
    v_limit integer;
    v_s     jsonb := coalesce(p_settings, '{}');
    v_bad   text;
BEGIN
    IF jsonb_typeof(v_s) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: deployment settings must be a JSON object' USING ERRCODE = '22023',
              HINT = 'pass e.g. ''{"timeout_seconds": 600}''';
    END IF;
    SELECT string_agg(k, ', ') INTO v_bad FROM jsonb_object_keys(v_s) k
     WHERE k NOT IN ('entrypoint', 'parameters', 'work_queue', 'tags', 'description', 'version', 'concurrency_limit',
                     'collision_strategy', 'retries', 'retry_delays', 'retry_backoff', 'retry_jitter', 'paused',
                     'timeout_seconds', 'missed_run_policy');
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: unknown deployment setting(s) %', v_bad USING ERRCODE = '22023',
              HINT = 'settings: entrypoint, parameters, work_queue, tags, description, version, concurrency_limit, '
                     'collision_strategy, retries, retry_delays, retry_backoff, retry_jitter, paused, timeout_seconds, missed_run_policy';
    END IF;
    SELECT * INTO v_d FROM pgflow.deployments WHERE id = v_id FOR UPDATE;
    SELECT f.name INTO v_flow FROM pgflow.flows f WHERE f.id = v_d.flow_id;
    SELECT q.name INTO v_queue FROM pgflow.work_queues q WHERE q.id = v_d.work_queue_id;
    SELECT l.concurrency_limit INTO v_limit FROM pgflow.concurrency_limits l WHERE l.id = v_d.concurrency_limit_id;
    BEGIN
        RETURN pgflow.create_deployment(
            v_flow, v_d.name,
            CASE WHEN v_s ? 'entrypoint' THEN v_s->>'entrypoint' ELSE v_d.entrypoint END,
            CASE WHEN v_s ? 'parameters' THEN v_s->'parameters' ELSE v_d.parameters END,
            CASE WHEN v_s ? 'work_queue' THEN v_s->>'work_queue' ELSE v_queue END,
            CASE WHEN v_s ? 'tags' THEN ARRAY(SELECT jsonb_array_elements_text(v_s->'tags')) ELSE v_d.tags END,
            CASE WHEN v_s ? 'description' THEN v_s->>'description' ELSE v_d.description END,
            CASE WHEN v_s ? 'version' THEN v_s->>'version' ELSE v_d.version END,
            CASE WHEN v_s ? 'concurrency_limit' THEN (v_s->>'concurrency_limit')::integer ELSE v_limit END,
            CASE WHEN v_s ? 'collision_strategy' THEN upper(v_s->>'collision_strategy') ELSE v_d.collision_strategy END,
            CASE WHEN v_s ? 'retries' THEN (v_s->>'retries')::integer ELSE v_d.retries END,
            CASE WHEN v_s ? 'retry_delays' THEN ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(v_s->'retry_delays') x)
                 ELSE v_d.retry_delays END,
            CASE WHEN v_s ? 'retry_backoff' THEN v_s->>'retry_backoff' ELSE v_d.retry_backoff END,
            CASE WHEN v_s ? 'retry_jitter' THEN (v_s->>'retry_jitter')::float8 ELSE v_d.retry_jitter END,
            CASE WHEN v_s ? 'paused' THEN (v_s->>'paused')::boolean ELSE v_d.paused END,
            CASE WHEN v_s ? 'timeout_seconds' THEN (v_s->>'timeout_seconds')::float8 ELSE v_d.timeout_seconds END,
            CASE WHEN v_s ? 'missed_run_policy' THEN v_s->>'missed_run_policy' ELSE v_d.missed_run_policy END,
            p_now);
    EXCEPTION WHEN invalid_text_representation OR cannot_coerce OR numeric_value_out_of_range OR datatype_mismatch THEN
        RAISE EXCEPTION 'pgflow: a deployment setting has the wrong type: %', SQLERRM USING ERRCODE = '22023',
              HINT = 'numbers for limits, retries, delays, jitter and timeout; true or false for paused; lists for tags and retry_delays';
    END;
END $$;

-- ============================================================================================
-- Privileges (the rule of docs/security.md): the new API functions run as the schema owner with a
-- pinned search_path; PUBLIC executes nothing; each role gets what its duty needs.
-- ============================================================================================
ALTER FUNCTION pgflow.state_filter(text) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.list_flow_runs(text, text, text, text, timestamptz, boolean, text, integer, timestamptz)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.flow_run_states_after(uuid, bigint) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.log_level_name(integer) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.flow_run_logs(uuid, bigint, integer, integer) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.set_deployment_schedule_active(uuid, boolean, timestamptz)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.set_work_queue_concurrency_limit(text, integer, timestamptz)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.update_deployment(text, jsonb, timestamptz) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pgflow.state_filter(text),
                          pgflow.list_flow_runs(text, text, text, text, timestamptz, boolean, text, integer, timestamptz),
                          pgflow.flow_run_states_after(uuid, bigint),
                          pgflow.log_level_name(integer),
                          pgflow.flow_run_logs(uuid, bigint, integer, integer)
    TO pgflow_reader, pgflow_api, pgflow_admin;
GRANT EXECUTE ON FUNCTION pgflow.set_deployment_schedule_active(uuid, boolean, timestamptz),
                          pgflow.set_work_queue_concurrency_limit(text, integer, timestamptz),
                          pgflow.update_deployment(text, jsonb, timestamptz)
    TO pgflow_api, pgflow_admin;
GRANT SELECT ON pgflow.agent_list, pgflow.flow_list, pgflow.queue_preview, pgflow.schedule_list
    TO pgflow_reader, pgflow_api, pgflow_admin;
