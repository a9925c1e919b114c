-- 0005: what the HTTP API (pgflow-api) needs, usable from psql as well: API tokens (stored as SHA-256
-- hashes, with scopes), the audit log of changes made through the API, listings with filters and
-- keyset pagination, NOTIFYs for state changes and log lines (the API's live stream), and the cheap
-- views /metrics reads on every scrape.

-- ============================================================================================
-- API tokens: a token is shown once, when created; only its SHA-256 hash is stored. Scopes nest:
-- 'read' reads, 'run' also creates, cancels, retries, resumes and deletes runs, 'admin' also changes
-- configuration (deployments, schedules, queues, limits, variables).
-- ============================================================================================
CREATE TABLE pgflow.api_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (name ~ '^[A-Za-z0-9_.:@-]{1,100}$'),
    scope      text        NOT NULL CHECK (scope IN ('read', 'run', 'admin')),
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
-- one live token per name (revoked ones stay for the audit trail)
CREATE UNIQUE INDEX api_tokens_live_name ON pgflow.api_tokens (name) WHERE revoked_at IS NULL;

-- Whether a token of scope p_scope may do what needs p_needed ('read' < 'run' < 'admin').
CREATE FUNCTION pgflow.api_scope_allows(p_scope text, p_needed text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_position(ARRAY['read', 'run', 'admin'], p_scope) >= array_position(ARRAY['read', 'run', 'admin'], p_needed)
$$;

-- Creates a token and returns it (the only time it is seen): 'pgf_' and 64 hex digits.
CREATE FUNCTION pgflow.create_api_token(p_name text, p_scope text, p_now timestamptz DEFAULT now()) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_token text;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.:@-]{1,100}$' THEN
        RAISE EXCEPTION 'pgflow: invalid API token name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 100 letters, digits, ''_'', ''.'', '':'', ''@'' or ''-''';
    END IF;
    IF p_scope IS NULL OR p_scope NOT IN ('read', 'run', 'admin') THEN
        RAISE EXCEPTION 'pgflow: invalid API token scope %', coalesce(quote_literal(p_scope), 'NULL')
            USING ERRCODE = '22023', HINT = 'use ''read'' (reads), ''run'' (reads and operates runs) or ''admin'' (everything)';
    END IF;
    IF EXISTS (SELECT 1 FROM pgflow.api_tokens WHERE name = p_name AND revoked_at IS NULL) THEN
        RAISE EXCEPTION 'pgflow: an API token named % exists', quote_literal(p_name)
            USING ERRCODE = '23505', HINT = 'revoke it first (pgflow.revoke_api_token) or pick another name';
    END IF;
    -- two version-4 UUIDs: 244 random bits from PostgreSQL's strong random source
    v_token := 'pgf_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    INSERT INTO pgflow.api_tokens (name, scope, token_hash, created_at)
    VALUES (p_name, p_scope, sha256(convert_to(v_token, 'UTF8')), p_now);
    RETURN v_token;
END $$;

-- Revokes the live token of that name (P0002 when there is none).
CREATE FUNCTION pgflow.revoke_api_token(p_name text, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgflow.api_tokens SET revoked_at = p_now WHERE name = p_name AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: no live API token named %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT * FROM pgflow.api_token_list shows them';
    END IF;
END $$;

-- Who a presented token is and whether it may do what needs p_needed: no row for an unknown or
-- revoked token (HTTP 401), allowed false for a token whose scope is too small (HTTP 403).
CREATE FUNCTION pgflow.authorize_api_token(p_token text, p_needed text)
RETURNS TABLE (token_name text, scope text, allowed boolean)
LANGUAGE sql STABLE AS $$
    SELECT t.name, t.scope, pgflow.api_scope_allows(t.scope, p_needed)
      FROM pgflow.api_tokens t
     WHERE t.token_hash = sha256(convert_to(p_token, 'UTF8')) AND t.revoked_at IS NULL
$$;

CREATE VIEW pgflow.api_token_list AS
SELECT name, scope, created_at, revoked_at FROM pgflow.api_tokens;

-- ============================================================================================
-- Audit: one row per change made through the API (and its outcome), written by the API in the
-- transaction of the change (result 'ok') or, when the change failed, after it ('error <SQLSTATE>').
-- ============================================================================================
CREATE TABLE pgflow.api_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    token_name text,                   -- NULL: the API ran with --insecure-no-auth
    action     text        NOT NULL,   -- e.g. 'POST /api/deployments/{flow}/{deployment}/runs'
    object     text,                   -- what it acted on, e.g. 'etl/daily' or a run id
    result     text        NOT NULL,   -- 'ok', or 'error <SQLSTATE>: <message>'
    detail     jsonb                   -- e.g. the id of what it created
);
CREATE INDEX api_audit_at ON pgflow.api_audit (at);

CREATE FUNCTION pgflow.record_api_audit(p_token_name text, p_action text, p_object text, p_result text,
                                        p_detail jsonb DEFAULT NULL, p_now timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO pgflow.api_audit (at, token_name, action, object, result, detail)
    VALUES (p_now, p_token_name, p_action, p_object, p_result, p_detail)
    RETURNING id
$$;

-- ============================================================================================
-- Listings (the API's and anyone's): filters, newest first, keyset pagination. A page ends with a
-- cursor ('<created_at>,<id>' of its last row); passing it returns the rows after it.
-- ============================================================================================
-- keyset listing of runs, newest first (created_at and id never change, so updates stay HOT)
CREATE INDEX flow_runs_created ON pgflow.flow_runs (created_at DESC, id DESC);
-- resuming a live stream after a state id (BRIN: ids grow with the table, nearly free to maintain)
CREATE INDEX flow_run_states_id ON pgflow.flow_run_states USING brin (id);

CREATE FUNCTION pgflow._check_page(p_limit integer, p_cursor text, OUT created_at timestamptz, OUT id uuid)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        RAISE EXCEPTION 'pgflow: page size must be 1 to 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass limit 50, say, and follow next_cursor for more';
    END IF;
    IF p_cursor IS NOT NULL THEN
        BEGIN
            created_at := split_part(p_cursor, ',', 1)::timestamptz;
            id := split_part(p_cursor, ',', 2)::uuid;
        EXCEPTION WHEN OTHERS THEN
            created_at := NULL;
        END;
        IF created_at IS NULL OR id IS NULL THEN
            RAISE EXCEPTION 'pgflow: invalid page cursor %', quote_literal(left(p_cursor, 100))
                USING ERRCODE = '22023', HINT = 'pass the next_cursor of the previous page unchanged';
        END IF;
    END IF;
END $$;

-- Flow runs, newest first. Every filter is optional: state type ('FAILED'), state name ('Late'),
-- flow, deployment ('flow/deployment'), tag, work queue, created in [p_since, p_until).
CREATE FUNCTION pgflow.flow_run_page(
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
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
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
      FROM pgflow.flow_runs r
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
      LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
     WHERE (v_type IS NULL OR r.state_type = v_type)
       AND (p_state_name IS NULL OR r.state_name = p_state_name)
       AND (v_flow IS NULL OR r.flow_id = v_flow)
       AND (v_dep_id IS NULL OR r.deployment_id = v_dep_id)
       AND (p_tag IS NULL OR r.tags @> ARRAY[p_tag])
       AND (v_queue IS NULL OR r.work_queue_id = v_queue)
       AND (p_since IS NULL OR r.created_at >= p_since)
       AND (p_until IS NULL OR r.created_at < p_until)
       AND (v_page.created_at IS NULL OR (r.created_at, r.id) < (v_page.created_at, v_page.id))
     ORDER BY r.created_at DESC, r.id DESC
     LIMIT p_limit;
END $$;

-- One flow run with its result (P0002 for an unknown id).
CREATE FUNCTION pgflow.get_flow_run(p_id uuid)
RETURNS TABLE (
    id uuid, name text, flow text, deployment text, work_queue text, state_type text, state_name text,
    state_timestamp timestamptz, state_message text, run_count integer, expected_start_time timestamptz,
    next_scheduled_start timestamptz, start_time timestamptz, end_time timestamptz, total_run_time float8,
    parameters jsonb, tags text[], idempotency_key text, agent_id uuid, parent_task_run_id uuid,
    created_at timestamptz, result jsonb
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT r.id, r.name, f.name, d.name, q.name, r.state_type::text, r.state_name, r.state_timestamp, r.state_message,
           r.run_count, r.expected_start_time, r.next_scheduled_start, r.start_time, r.end_time,
           extract(epoch FROM r.total_run_time)::float8, r.parameters, r.tags, r.idempotency_key, r.agent_id,
           r.parent_task_run_id, r.created_at, res.value
      FROM pgflow.flow_runs r
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
      LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
      LEFT JOIN pgflow.results res ON res.run_id = r.id
     WHERE r.id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_id::text, 'NULL') USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
END $$;

-- A flow run's states, oldest first (P0002 for an unknown run).
CREATE FUNCTION pgflow.flow_run_state_history(p_flow_run_id uuid)
RETURNS TABLE (id bigint, state_type text, state_name text, "timestamp" timestamptz, message text, scheduled_time timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_flow_run_id::text, 'NULL') USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    RETURN QUERY SELECT s.id, s.state_type::text, s.state_name, s."timestamp", s.message, s.scheduled_time
                   FROM pgflow.flow_run_states s WHERE s.flow_run_id = p_flow_run_id ORDER BY s.id;
END $$;

-- A flow run's log lines with id > p_after, oldest first, at most p_limit (P0002 for an unknown run).
CREATE FUNCTION pgflow.flow_run_log_page(p_flow_run_id uuid, p_after bigint DEFAULT 0, p_limit integer DEFAULT 1000)
RETURNS TABLE (id bigint, task_run_id uuid, level smallint, name text, message text, "timestamp" timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pgflow._check_page(p_limit, NULL);
    IF NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_flow_run_id::text, 'NULL') USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    RETURN QUERY SELECT l.id, l.task_run_id, l.level, l.name, l.message, l."timestamp"
                   FROM pgflow.logs l WHERE l.flow_run_id = p_flow_run_id AND l.id > coalesce(p_after, 0)
                  ORDER BY l.id LIMIT p_limit;
END $$;

-- Task runs, newest first, of one flow run or of all; optional state type filter; keyset pagination.
CREATE FUNCTION pgflow.list_task_runs(
    p_flow_run_id uuid    DEFAULT NULL,
    p_state_type  text    DEFAULT NULL,
    p_limit       integer DEFAULT 50,
    p_cursor      text    DEFAULT NULL
) RETURNS TABLE (
    id uuid, flow_run_id uuid, task_key text, dynamic_key text, name text, state_type text, state_name text,
    state_timestamp timestamptz, state_message text, run_count integer, start_time timestamptz, end_time timestamptz,
    total_run_time float8, inputs jsonb, tags text[], cache_key text, created_at timestamptz, cursor text
)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    v_page record := pgflow._check_page(p_limit, p_cursor);
BEGIN
    IF p_state_type IS NOT NULL AND upper(p_state_type) NOT IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED', 'CANCELLING',
                                                                'COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') THEN
        RAISE EXCEPTION 'pgflow: invalid state type %', quote_literal(p_state_type)
            USING ERRCODE = '22023', HINT = 'use one of SCHEDULED, PENDING, RUNNING, PAUSED, CANCELLING, COMPLETED, FAILED, CANCELLED, CRASHED';
    END IF;
    RETURN QUERY
    SELECT t.id, t.flow_run_id, t.task_key, t.dynamic_key, t.name, t.state_type::text, t.state_name, t.state_timestamp,
           t.state_message, t.run_count, t.start_time, t.end_time, extract(epoch FROM t.total_run_time)::float8,
           t.inputs, t.tags, t.cache_key, t.created_at,
           to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ',' || t.id
      FROM pgflow.task_runs t
     WHERE (p_flow_run_id IS NULL OR t.flow_run_id = p_flow_run_id)
       AND (p_state_type IS NULL OR t.state_type = upper(p_state_type)::pgflow.state_type)
       AND (v_page.created_at IS NULL OR (t.created_at, t.id) < (v_page.created_at, v_page.id))
     ORDER BY t.created_at DESC, t.id DESC
     LIMIT p_limit;
END $$;

-- Agents with whether their heartbeat is recent.
CREATE VIEW pgflow.agent_status AS
SELECT a.id, a.name, a.work_queues, a.status, a.registered_at, a.last_heartbeat_at,
       (SELECT count(*) FROM pgflow.flow_runs r
         WHERE r.agent_id = a.id AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')) AS active_runs
  FROM pgflow.agents a;


-- ============================================================================================
-- Live updates: every statement that appends states or log lines NOTIFYs (one notification per
-- 100 rows) while some API process has stream clients. pgflow_stream_states: 'runid:stateid,…' (the rows
-- of pgflow.flow_run_states); pgflow_stream_logs: 'runid:logid,…' (per run, its newest line of the statement).
-- Listeners read the rows after them. An API process with stream clients holds a lease row in
-- pgflow.stream_listeners (renewed while it has clients); with no live lease the triggers send
-- nothing, so the engine's hot path pays no NOTIFY (whose commit takes a global lock) when nobody
-- watches. These call pg_notify directly, not pgflow.notify: they are for API listeners only, and the
-- engine's NOTIFY tests swap pgflow.notify for a recorder of the engine's own channels.
-- ============================================================================================
CREATE TABLE pgflow.stream_listeners (
    id         uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Takes or renews a listener lease (and forgets expired ones).
CREATE FUNCTION pgflow.renew_stream_listener(p_id uuid, p_lease interval DEFAULT interval '60 seconds',
                                             p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM pgflow.stream_listeners WHERE expires_at < p_now AND id <> p_id;
    INSERT INTO pgflow.stream_listeners (id, expires_at) VALUES (p_id, p_now + p_lease)
    ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at;
$$;

-- Gives a listener lease back.
CREATE FUNCTION pgflow.drop_stream_listener(p_id uuid) RETURNS void
LANGUAGE sql AS $$ DELETE FROM pgflow.stream_listeners WHERE id = p_id $$;

CREATE FUNCTION pgflow._notify_stream_states() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.stream_listeners WHERE expires_at > now()) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('pgflow_stream_states', string_agg(c.flow_run_id::text || ':' || c.id, ',' ORDER BY c.id))
       FROM (SELECT n.flow_run_id, n.id, (row_number() OVER (ORDER BY n.id) - 1) / 100 AS chunk FROM new_rows n) c
      GROUP BY c.chunk;
    RETURN NULL;
END $$;

CREATE TRIGGER flow_run_states_stream_notify AFTER INSERT ON pgflow.flow_run_states
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._notify_stream_states();

CREATE FUNCTION pgflow._notify_stream_logs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.stream_listeners WHERE expires_at > now()) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('pgflow_stream_logs', string_agg(c.flow_run_id::text || ':' || c.id, ','))
       FROM (SELECT m.flow_run_id, m.id, (row_number() OVER () - 1) / 100 AS chunk
               FROM (SELECT n.flow_run_id, max(n.id) AS id FROM new_rows n WHERE n.flow_run_id IS NOT NULL
                      GROUP BY n.flow_run_id) m) c
      GROUP BY c.chunk;
    RETURN NULL;
END $$;

CREATE TRIGGER logs_stream_notify AFTER INSERT ON pgflow.logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._notify_stream_logs();

-- ============================================================================================
-- Metrics (read on every scrape, so each reads only small sets: the claimable table, the partial
-- index of active runs, runs that ended in the last hour).
-- ============================================================================================
-- Runs not finished, by deployment, work queue and state; and runs that ended in the last hour.
CREATE VIEW pgflow.metrics_flow_runs AS
SELECT coalesce(f.name || '/' || d.name, f.name) AS deployment, coalesce(q.name, '') AS work_queue,
       r.state_type::text AS state_type, r.state_name, false AS ended_last_hour, count(*) AS runs
  FROM pgflow.run_queue rq
  JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
  JOIN pgflow.flows f ON f.id = r.flow_id
  LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
  LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
 GROUP BY 1, 2, 3, 4
UNION ALL
SELECT coalesce(f.name || '/' || d.name, f.name), coalesce(q.name, ''), r.state_type::text, r.state_name, false, count(*)
  FROM pgflow.flow_runs r
  JOIN pgflow.flows f ON f.id = r.flow_id
  LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
  LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
 WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
 GROUP BY 1, 2, 3, 4
UNION ALL
SELECT coalesce(f.name || '/' || d.name, f.name), coalesce(q.name, ''), r.state_type::text, r.state_name, true, count(*)
  FROM pgflow.flow_runs r
  JOIN pgflow.flows f ON f.id = r.flow_id
  LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
  LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
 WHERE r.end_time > now() - interval '1 hour'
 GROUP BY 1, 2, 3, 4;

-- Per work queue: due runs and the age of the oldest due run (seconds; 0 when none is due).
CREATE VIEW pgflow.metrics_work_queues AS
SELECT q.name AS work_queue, q.paused,
       count(rq.flow_run_id) AS due_runs,
       coalesce(extract(epoch FROM now() - min(rq.scheduled_at)), 0)::float8 AS oldest_due_age_seconds
  FROM pgflow.work_queues q
  LEFT JOIN pgflow.run_queue rq ON rq.work_queue_id = q.id AND rq.scheduled_at <= now()
 GROUP BY q.id;

-- State changes for the live stream: the rows of pgflow.flow_run_states with id > p_after (for one run
-- or one deployment, or all), oldest first, at most p_limit; with the run's name and deployment.
CREATE FUNCTION pgflow.flow_run_state_events(p_after bigint, p_flow_run_id uuid DEFAULT NULL,
                                             p_deployment text DEFAULT NULL, p_limit integer DEFAULT 1000)
RETURNS TABLE (id bigint, flow_run_id uuid, flow_run text, deployment text, state_type text, state_name text,
               "timestamp" timestamptz, message text)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    v_dep_id uuid;
BEGIN
    PERFORM pgflow._check_page(p_limit, NULL);
    IF p_deployment IS NOT NULL THEN v_dep_id := pgflow._deployment_id(p_deployment); END IF;
    RETURN QUERY
    SELECT s.id, s.flow_run_id, r.name, coalesce(f.name || '/' || d.name, f.name), s.state_type::text, s.state_name,
           s."timestamp", s.message
      FROM pgflow.flow_run_states s
      JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     WHERE s.id > coalesce(p_after, 0)
       AND (p_flow_run_id IS NULL OR s.flow_run_id = p_flow_run_id)
       AND (v_dep_id IS NULL OR r.deployment_id = v_dep_id)
     ORDER BY s.id
     LIMIT p_limit;
END $$;

-- ============================================================================================
-- Fix (found by the API's schemathesis run): dropping a queue's or deployment's concurrency limit
-- (p_concurrency_limit NULL after it had one) failed with SQLSTATE 27000, because the limit row was
-- deleted (its ON DELETE SET NULL touching the very row) inside the UPDATE of that row. The limit is
-- now set or deleted first, then the row updated. Bodies as in 0002 otherwise (0003 renamed them to
-- _…_unchecked behind its checking wrappers; the same fix applies to set_work_queue_concurrency_limit).
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow._create_work_queue_unchecked(
    p_name              text,
    p_priority          integer     DEFAULT 1,
    p_concurrency_limit integer     DEFAULT NULL,
    p_paused            boolean     DEFAULT false,
    p_description       text        DEFAULT NULL,
    p_now               timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_queue pgflow.work_queues;
    v_limit uuid;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
        RAISE EXCEPTION 'pgflow: invalid work queue name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 100 letters, digits, ''_'', ''.'', '':'' or ''-''';
    END IF;
    IF p_priority IS NULL OR p_priority < 1 THEN
        RAISE EXCEPTION 'pgflow: work queue priority must be 1 or more, got %', coalesce(p_priority::text, 'NULL')
            USING ERRCODE = '22023', HINT = '1 is served first, then 2, ...';
    END IF;
    PERFORM pgflow._check_limit(p_concurrency_limit, 'work queue concurrency limit');
    INSERT INTO pgflow.work_queues AS q (name, priority, paused, description, created_at, updated_at)
    VALUES (p_name, p_priority, coalesce(p_paused, false), p_description, p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET priority = excluded.priority, paused = excluded.paused,
                                     description = excluded.description, updated_at = excluded.updated_at
    RETURNING * INTO v_queue;
    v_limit := pgflow._set_managed_limit(v_queue.concurrency_limit_id, 'work_queue:' || p_name,
                                         'work_queue', p_concurrency_limit, p_now);
    UPDATE pgflow.work_queues SET concurrency_limit_id = v_limit WHERE id = v_queue.id;
    RETURN v_queue.id;
END $$;

CREATE OR REPLACE FUNCTION pgflow._create_deployment_unchecked(
    p_flow_name          text,
    p_name               text,
    p_entrypoint         text,
    p_parameters         jsonb       DEFAULT '{}',
    p_work_queue         text        DEFAULT 'default',
    p_tags               text[]      DEFAULT '{}',
    p_description        text        DEFAULT NULL,
    p_version            text        DEFAULT NULL,
    p_concurrency_limit  integer     DEFAULT NULL,
    p_collision_strategy text        DEFAULT 'ENQUEUE',
    p_retries            integer     DEFAULT 0,
    p_retry_delays       float8[]    DEFAULT '{0}',
    p_retry_backoff      text        DEFAULT 'fixed',
    p_retry_jitter       float8      DEFAULT 0,
    p_paused             boolean     DEFAULT false,
    p_timeout_seconds    float8      DEFAULT NULL,
    p_missed_run_policy  text        DEFAULT NULL,
    p_now                timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_queue_id uuid := pgflow._work_queue_id(p_work_queue);
    v_dep      pgflow.deployments;
    v_limit    uuid;
BEGIN
    IF p_name IS NULL OR p_name = '' OR strpos(p_name, '/') > 0 THEN
        RAISE EXCEPTION 'pgflow: invalid deployment name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'a deployment name is not empty and has no ''/''';
    END IF;
    IF p_entrypoint IS NULL OR p_entrypoint = '' THEN
        RAISE EXCEPTION 'pgflow: deployment % has no entrypoint', quote_literal(p_name)
            USING ERRCODE = '22023', HINT = 'pass a command (''./etl.sh'') or a Swift flow name the agent knows';
    END IF;
    PERFORM pgflow._check_parameters(p_parameters, 'deployment parameters');
    PERFORM pgflow._check_limit(p_concurrency_limit, 'deployment concurrency limit');
    IF p_collision_strategy IS NULL OR p_collision_strategy NOT IN ('ENQUEUE', 'CANCEL_NEW') THEN
        RAISE EXCEPTION 'pgflow: invalid collision strategy %', coalesce(quote_literal(p_collision_strategy), 'NULL')
            USING ERRCODE = '22023', HINT = 'use ''ENQUEUE'' (wait for a slot) or ''CANCEL_NEW'' (cancel the new run)';
    END IF;
    PERFORM pgflow._check_retry_policy(p_retries, p_retry_backoff, p_retry_delays, p_retry_jitter);
    IF p_timeout_seconds <= 0 THEN
        RAISE EXCEPTION 'pgflow: a deployment timeout must be positive, got % seconds', p_timeout_seconds
            USING ERRCODE = '22023', HINT = 'pass NULL for no timeout';
    END IF;
    PERFORM pgflow._check_missed_run_policy(p_missed_run_policy);
    INSERT INTO pgflow.deployments AS d (flow_id, name, entrypoint, parameters, tags, work_queue_id, version,
                                         description, paused, collision_strategy, retries, retry_delays,
                                         retry_backoff, retry_jitter, timeout_seconds, missed_run_policy,
                                         created_at, updated_at)
    VALUES (pgflow._flow_id(p_flow_name), p_name, p_entrypoint, p_parameters, pgflow._check_tags(p_tags), v_queue_id,
            p_version, p_description, coalesce(p_paused, false), p_collision_strategy, p_retries, p_retry_delays,
            p_retry_backoff, p_retry_jitter, p_timeout_seconds, p_missed_run_policy, p_now, p_now)
    ON CONFLICT (flow_id, name) DO UPDATE SET
        entrypoint = excluded.entrypoint, parameters = excluded.parameters, tags = excluded.tags,
        work_queue_id = excluded.work_queue_id, version = excluded.version, description = excluded.description,
        paused = excluded.paused, collision_strategy = excluded.collision_strategy, retries = excluded.retries,
        retry_delays = excluded.retry_delays, retry_backoff = excluded.retry_backoff,
        retry_jitter = excluded.retry_jitter, timeout_seconds = excluded.timeout_seconds,
        missed_run_policy = excluded.missed_run_policy, updated_at = excluded.updated_at
    RETURNING * INTO v_dep;
    v_limit := pgflow._set_managed_limit(v_dep.concurrency_limit_id, 'deployment:' || p_flow_name || '/' || p_name,
                                         'deployment', p_concurrency_limit, p_now);
    UPDATE pgflow.deployments SET concurrency_limit_id = v_limit WHERE id = v_dep.id;
    RETURN v_dep.id;
END $$;

-- Deletes a schedule of the named deployment ('flow/deployment'), with its future Scheduled runs;
-- P0002 when that deployment has no such schedule (so a schedule id is never deleted through another
-- deployment's name). Its own name: an overload of delete_deployment_schedule would make untyped calls ambiguous.
CREATE FUNCTION pgflow.delete_schedule_of_deployment(p_deployment text, p_id uuid, p_now timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.deployment_schedules s
                    WHERE s.id = p_id AND s.deployment_id = pgflow._deployment_id(p_deployment)) THEN
        RAISE EXCEPTION 'pgflow: deployment % has no schedule %', quote_literal(p_deployment), coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'list them with SELECT id, kind FROM pgflow.deployment_schedules';
    END IF;
    RETURN pgflow.delete_deployment_schedule(p_id, p_now);
END $$;

-- ============================================================================================
-- Privileges (the rule of docs/security.md)
-- ============================================================================================
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'pgflow'::regnamespace
           AND p.proname IN ('api_scope_allows', 'authorize_api_token', 'create_api_token', 'revoke_api_token',
                             'record_api_audit', 'delete_schedule_of_deployment', 'renew_stream_listener',
                             'drop_stream_listener', 'flow_run_state_events', 'flow_run_state_history', 'get_flow_run',
                             'flow_run_page', 'flow_run_log_page', 'list_task_runs')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp', v_fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgflow_api, pgflow_admin', v_fn);
    END LOOP;
END $$;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.get_flow_run(uuid), pgflow.flow_run_state_history(uuid),
                          pgflow.flow_run_log_page(uuid, bigint, integer)
    TO pgflow_reader;
GRANT SELECT ON pgflow.agent_status, pgflow.metrics_flow_runs, pgflow.metrics_work_queues TO pgflow_reader, pgflow_api, pgflow_admin;
GRANT SELECT ON pgflow.api_token_list, pgflow.api_audit, pgflow.api_tokens, pgflow.stream_listeners TO pgflow_api, pgflow_admin;
