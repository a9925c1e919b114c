-- 0002: the orchestration engine: flows, deployments, schedules, work queues, agents, flow and task
-- runs with their state history, the claimable run queue, concurrency limits and slots, results,
-- the task result cache, logs; the state machine, claim, reaper, schedule and retention functions;
-- the NOTIFY trigger and the history views.

-- ============================================================================================
-- Types: the state machine's vocabulary, and the rows the SQL API returns
-- ============================================================================================
-- State types; the last four are terminal.
CREATE TYPE pgflow.state_type AS ENUM (
    'SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED', 'CANCELLING',
    'COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED'
);

-- The named states and the type each belongs to (NULL: not a state name).
CREATE FUNCTION pgflow.state_type_of(p_state_name text) RETURNS pgflow.state_type
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

-- What every state transition returns. status is one of
--   ACCEPTED   the proposed state was written;
--   REDIRECTED another state was written instead (Failed with retries left -> AwaitingRetry, Running
--              with a valid cache entry -> Cached, a paused run past its timeout -> TimedOut,
--              a deployment limit with CANCEL_NEW -> Cancelled); reason says why;
--   WAIT       a concurrency limit is full: the run waits in AwaitingConcurrencySlot, propose again later;
--   REJECTED   nothing was written, the current state forbids the proposal; reason says why;
--   DUPLICATE  this transition id was applied before; the state it wrote is returned.
CREATE TYPE pgflow.transition_result AS (
    run_id               uuid,
    status               text,
    reason               text,
    state_type           pgflow.state_type,
    state_name           text,
    state_timestamp      timestamptz,
    next_scheduled_start timestamptz,
    run_count            integer,
    result               jsonb
);

-- Internal: one proposed transition (the batch functions take arrays of these).
CREATE TYPE pgflow._proposal AS (
    run_id         uuid,
    state_type     pgflow.state_type,
    state_name     text,
    message        text,
    result         jsonb,
    scheduled_time timestamptz,
    pause_expires  timestamptz,
    transition_id  uuid,
    process_id     text
);

-- Internal: what the state machine decided for one proposal.
CREATE TYPE pgflow._decision AS (
    ord           integer,
    run_id        uuid,
    status        text,
    reason        text,
    old_type      pgflow.state_type,
    old_name      text,
    old_at        timestamptz,
    old_run_count integer,
    new_type      pgflow.state_type,
    new_name      text,
    message       text,
    result        jsonb,
    next_start    timestamptz,
    pause_expires timestamptz,
    transition_id uuid,
    process_id    text,
    write         boolean,
    new_attempt   boolean,
    admit         boolean,
    blocked_on    uuid[]
);

-- Internal: a request for one slot in each of some concurrency limits.
CREATE TYPE pgflow._slot_request AS (
    lease_id    uuid,
    holder_kind text,
    holder_id   uuid,
    limit_ids   uuid[],
    slots       integer,
    expires_at  timestamptz
);

-- ============================================================================================
-- Tables
-- ============================================================================================
-- Flows: the named programs runs belong to. '/' is reserved: 'flow/deployment' names a deployment.
CREATE TABLE pgflow.flows (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL UNIQUE CHECK (name <> '' AND strpos(name, '/') = 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Concurrency limits, all of one kind of row: 'global' limits taken explicitly with leases
-- (pgflow.acquire_concurrency_slots), 'tag' limits named 'tag:<tag>' (every flow run and task run
-- carrying the tag takes a slot on its way to Running), and the limits of work queues and deployments
-- ('work_queue:<queue>', 'deployment:<flow>/<deployment>'), managed by their create functions.
CREATE TABLE pgflow.concurrency_limits (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text        NOT NULL UNIQUE CHECK (name <> ''),
    kind              text        NOT NULL CHECK (kind IN ('global', 'tag', 'work_queue', 'deployment')),
    concurrency_limit integer     NOT NULL CHECK (concurrency_limit >= 0),
    active            boolean     NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Slot holders. A run holds one row per limit (lease_id = the run id, no expiry) from its way to
-- Running until it leaves the running states; an explicit lease holds rows until released or expired.
-- A lease past expires_at no longer counts, so a dead holder's slots come back by themselves.
CREATE TABLE pgflow.concurrency_slots (
    lease_id    uuid        NOT NULL,
    limit_id    uuid        NOT NULL REFERENCES pgflow.concurrency_limits ON DELETE CASCADE,
    slots       integer     NOT NULL DEFAULT 1 CHECK (slots > 0),
    holder_kind text        NOT NULL CHECK (holder_kind IN ('flow_run', 'task_run', 'lease')),
    holder_id   uuid,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz,
    PRIMARY KEY (lease_id, limit_id)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 200,
        autovacuum_vacuum_cost_delay = 0);

CREATE TABLE pgflow.work_queues (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    priority             integer     NOT NULL DEFAULT 1 CHECK (priority >= 1),  -- 1 is served first
    paused               boolean     NOT NULL DEFAULT false,
    concurrency_limit_id uuid REFERENCES pgflow.concurrency_limits ON DELETE SET NULL,
    description          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Retry policies (deployments, flow runs, task runs): retries = how many times a failed run runs
-- again; retry_backoff 'fixed' (retry_delays = {seconds}), 'list' (one delay per retry, the last
-- repeats) or 'exponential' ({base}: base * 2^(retry-1)); each delay grows by up to retry_jitter
-- (0.2 = up to 20 %) at random.
CREATE TABLE pgflow.deployments (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    flow_id              uuid        NOT NULL REFERENCES pgflow.flows,
    name                 text        NOT NULL CHECK (name <> '' AND strpos(name, '/') = 0),
    entrypoint           text        NOT NULL CHECK (entrypoint <> ''),
    parameters           jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    tags                 text[]      NOT NULL DEFAULT '{}',
    work_queue_id        uuid        NOT NULL REFERENCES pgflow.work_queues,
    version              text,
    description          text,
    paused               boolean     NOT NULL DEFAULT false,
    concurrency_limit_id uuid REFERENCES pgflow.concurrency_limits ON DELETE SET NULL,
    collision_strategy   text        NOT NULL DEFAULT 'ENQUEUE' CHECK (collision_strategy IN ('ENQUEUE', 'CANCEL_NEW')),
    retries              integer     NOT NULL DEFAULT 0 CHECK (retries >= 0),
    retry_delays         float8[]    NOT NULL DEFAULT '{0}',
    retry_backoff        text        NOT NULL DEFAULT 'fixed',
    retry_jitter         float8      NOT NULL DEFAULT 0,
    timeout_seconds      float8      CHECK (timeout_seconds > 0),  -- the agent stops a run past it (TimedOut)
    -- what the scheduler does with its missed scheduled runs (NULL: the scheduler's default)
    missed_run_policy    text        CHECK (missed_run_policy IN ('run_all', 'latest', 'skip')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (flow_id, name),
    CHECK (retry_backoff IN ('fixed', 'list', 'exponential') AND cardinality(retry_delays) >= 1
           AND (retry_backoff = 'list' OR cardinality(retry_delays) = 1)
           AND array_position(retry_delays, NULL) IS NULL AND 0 <= ALL (retry_delays) AND retry_jitter >= 0)
);

-- Schedules: the scheduler (Swift) computes the times; pgflow.schedule_flow_runs materialises them.
CREATE TABLE pgflow.deployment_schedules (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    deployment_id uuid        NOT NULL REFERENCES pgflow.deployments ON DELETE CASCADE,
    kind          text        NOT NULL CHECK (kind IN ('cron', 'interval', 'rrule')),
    cron          text,
    "interval"    interval,
    rrule         text,
    anchor_date   timestamptz,
    timezone      text        NOT NULL DEFAULT 'UTC',
    active        boolean     NOT NULL DEFAULT true,
    parameters    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (CASE kind WHEN 'cron' THEN cron IS NOT NULL AND "interval" IS NULL AND rrule IS NULL
                     WHEN 'interval' THEN "interval" > interval '0' AND cron IS NULL AND rrule IS NULL
                     ELSE rrule IS NOT NULL AND cron IS NULL AND "interval" IS NULL END)
);

-- Agents: stateless workers; a run's liveness is its agent's heartbeat.
CREATE TABLE pgflow.agents (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text        NOT NULL,
    work_queues       text[]      NOT NULL,
    status            text        NOT NULL DEFAULT 'ONLINE' CHECK (status IN ('ONLINE', 'OFFLINE')),
    registered_at     timestamptz NOT NULL,
    last_heartbeat_at timestamptz NOT NULL
);

-- Flow runs: one row per run with its current state; the history is in flow_run_states. Every
-- transition rewrites the row, so its CHECKs are kept to the cheap state-pair one (the functions
-- validate parameters and retry policies on the way in).
CREATE TABLE pgflow.flow_runs (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                   text              NOT NULL,
    flow_id                uuid              NOT NULL REFERENCES pgflow.flows,
    deployment_id          uuid REFERENCES pgflow.deployments,
    work_queue_id          uuid REFERENCES pgflow.work_queues,
    deployment_schedule_id uuid,             -- set on runs a schedule created (no FK: history outlives schedules)
    parameters             jsonb             NOT NULL DEFAULT '{}',
    tags                   text[]            NOT NULL DEFAULT '{}',
    idempotency_key        text,
    parent_task_run_id     uuid,             -- subflows: the task run of the parent flow (FK below)
    run_count              integer           NOT NULL DEFAULT 0,
    retries                integer           NOT NULL DEFAULT 0,
    retry_delays           float8[]          NOT NULL DEFAULT '{0}',
    retry_backoff          text              NOT NULL DEFAULT 'fixed',
    retry_jitter           float8            NOT NULL DEFAULT 0,
    expected_start_time    timestamptz       NOT NULL,
    next_scheduled_start   timestamptz,
    start_time             timestamptz,
    end_time               timestamptz,
    total_run_time         interval          NOT NULL DEFAULT '0',
    state_type             pgflow.state_type NOT NULL,
    state_name             text              NOT NULL,
    state_timestamp        timestamptz       NOT NULL,
    state_message          text,
    pause_expires_at       timestamptz,
    agent_id               uuid,
    process_id             text,
    created_at             timestamptz       NOT NULL,
    CHECK (state_type::text || ':' || state_name IN (
        'SCHEDULED:Scheduled', 'SCHEDULED:Late', 'SCHEDULED:AwaitingRetry', 'SCHEDULED:AwaitingConcurrencySlot', 'PENDING:Pending',
        'RUNNING:Running', 'RUNNING:Retrying', 'PAUSED:Paused', 'PAUSED:Suspended', 'CANCELLING:Cancelling',
        'COMPLETED:Completed', 'COMPLETED:Cached', 'FAILED:Failed', 'FAILED:TimedOut', 'CANCELLED:Cancelled', 'CRASHED:Crashed'))
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- The state history of flow runs: append-only, one row per transition, written in the same
-- transaction as the run's current-state columns. transition_id makes client retries idempotent.
-- No foreign key (here, in task_run_states and run_queue): only the state functions write these rows,
-- always with the run's own row, and an FK check on a run updated in the same transaction costs a
-- tuple lock and its WAL on every transition; retention deletes the history with its runs.
CREATE TABLE pgflow.flow_run_states (
    flow_run_id    uuid              NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    state_type     pgflow.state_type NOT NULL,
    state_name     text              NOT NULL,
    "timestamp"    timestamptz       NOT NULL,
    message        text,
    scheduled_time timestamptz,
    transition_id  uuid,
    PRIMARY KEY (flow_run_id, id),
    CHECK (state_type::text || ':' || state_name IN (
        'SCHEDULED:Scheduled', 'SCHEDULED:Late', 'SCHEDULED:AwaitingRetry', 'SCHEDULED:AwaitingConcurrencySlot', 'PENDING:Pending',
        'RUNNING:Running', 'RUNNING:Retrying', 'PAUSED:Paused', 'PAUSED:Suspended', 'CANCELLING:Cancelling',
        'COMPLETED:Completed', 'COMPLETED:Cached', 'FAILED:Failed', 'FAILED:TimedOut', 'CANCELLED:Cancelled', 'CRASHED:Crashed'))
);

-- Task runs: the tasks a flow run ran; (flow run, task key, dynamic key) identifies one.
CREATE TABLE pgflow.task_runs (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    flow_run_id          uuid              NOT NULL REFERENCES pgflow.flow_runs ON DELETE CASCADE,
    task_key             text              NOT NULL CHECK (task_key <> ''),
    dynamic_key          text              NOT NULL DEFAULT '0',
    name                 text              NOT NULL,
    inputs               jsonb             NOT NULL DEFAULT '{}',
    tags                 text[]            NOT NULL DEFAULT '{}',
    cache_key            text,
    cache_expiration     interval,         -- NULL: a cached result never expires
    cache_refresh        boolean           NOT NULL DEFAULT false,  -- ignore the cache on the way to Running, still store the result
    run_count            integer           NOT NULL DEFAULT 0,
    retries              integer           NOT NULL DEFAULT 0,
    retry_delays         float8[]          NOT NULL DEFAULT '{0}',
    retry_backoff        text              NOT NULL DEFAULT 'fixed',
    retry_jitter         float8            NOT NULL DEFAULT 0,
    expected_start_time  timestamptz       NOT NULL,
    next_scheduled_start timestamptz,
    start_time           timestamptz,
    end_time             timestamptz,
    total_run_time       interval          NOT NULL DEFAULT '0',
    state_type           pgflow.state_type NOT NULL,
    state_name           text              NOT NULL,
    state_timestamp      timestamptz       NOT NULL,
    state_message        text,
    pause_expires_at     timestamptz,
    created_at           timestamptz       NOT NULL,
    UNIQUE (flow_run_id, task_key, dynamic_key),
    CHECK (state_type::text || ':' || state_name IN (
        'SCHEDULED:Scheduled', 'SCHEDULED:Late', 'SCHEDULED:AwaitingRetry', 'SCHEDULED:AwaitingConcurrencySlot', 'PENDING:Pending',
        'RUNNING:Running', 'RUNNING:Retrying', 'PAUSED:Paused', 'PAUSED:Suspended', 'CANCELLING:Cancelling',
        'COMPLETED:Completed', 'COMPLETED:Cached', 'FAILED:Failed', 'FAILED:TimedOut', 'CANCELLED:Cancelled', 'CRASHED:Crashed'))
);

ALTER TABLE pgflow.flow_runs ADD FOREIGN KEY (parent_task_run_id)
    REFERENCES pgflow.task_runs ON DELETE SET NULL;

CREATE TABLE pgflow.task_run_states (
    task_run_id    uuid              NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    state_type     pgflow.state_type NOT NULL,
    state_name     text              NOT NULL,
    "timestamp"    timestamptz       NOT NULL,
    message        text,
    scheduled_time timestamptz,
    transition_id  uuid,
    PRIMARY KEY (task_run_id, id),
    CHECK (state_type::text || ':' || state_name IN (
        'SCHEDULED:Scheduled', 'SCHEDULED:Late', 'SCHEDULED:AwaitingRetry', 'SCHEDULED:AwaitingConcurrencySlot', 'PENDING:Pending',
        'RUNNING:Running', 'RUNNING:Retrying', 'PAUSED:Paused', 'PAUSED:Suspended', 'CANCELLING:Cancelling',
        'COMPLETED:Completed', 'COMPLETED:Cached', 'FAILED:Failed', 'FAILED:TimedOut', 'CANCELLED:Cancelled', 'CRASHED:Crashed'))
);

-- Results: the JSON value a run returned (or reported with its final state), one per run.
CREATE TABLE pgflow.results (
    run_id     uuid PRIMARY KEY,     -- a flow run id or a task run id
    value      jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);

-- The task result cache: a task run with a cache key whose entry has not expired completes as Cached.
CREATE TABLE pgflow.task_run_cache (
    cache_key   text PRIMARY KEY,
    value       jsonb       NOT NULL,
    task_run_id uuid REFERENCES pgflow.task_runs ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz            -- NULL: never
);

-- Logs of flow runs and task runs. No foreign keys: logs arrive in bulk and may outlive nothing.
CREATE TABLE pgflow.logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow_run_id uuid,
    task_run_id uuid,
    level       smallint    NOT NULL CHECK (level BETWEEN 0 AND 100),  -- 10 debug .. 50 critical
    name        text        NOT NULL DEFAULT '',
    message     text        NOT NULL,
    "timestamp" timestamptz NOT NULL
);

-- The hot path: the claimable set. A flow run has a row here exactly while it is SCHEDULED in a work
-- queue (Scheduled, Late, AwaitingRetry, AwaitingConcurrencySlot); the row goes when it is claimed.
-- Why a separate table rather than a partial index on flow_runs: claims scan and lock only these few
-- narrow rows, so millions of finished runs never touch the claim's index or heap pages, dead tuples
-- from claimed rows stay in a tiny table that the settings below vacuum at once, and claims never
-- lock the wide flow_runs rows they do not take. blocked_on lists the limits a run is waiting for
-- (AwaitingConcurrencySlot); claims skip it until one of them has room.
CREATE TABLE pgflow.run_queue (
    flow_run_id   uuid PRIMARY KEY,
    work_queue_id uuid        NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    blocked_on    uuid[]
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
        autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0,
        autovacuum_analyze_threshold = 5000);

-- ============================================================================================
-- Indexes: each names the query it serves. flow_runs keeps few, mostly partial, indexes because
-- every transition rewrites its row.
-- ============================================================================================
-- claim: due runs of a queue in scheduled order
CREATE INDEX run_queue_claim ON pgflow.run_queue (work_queue_id, scheduled_at);
-- claim: the limits blocked runs wait for (empty unless a limit is full)
CREATE INDEX run_queue_blocked ON pgflow.run_queue (work_queue_id) WHERE blocked_on IS NOT NULL;
-- limit checks: the slots of one limit
CREATE INDEX concurrency_slots_limit ON pgflow.concurrency_slots (limit_id);
-- run_deployment('name'): deployments by name alone
CREATE INDEX deployments_name ON pgflow.deployments (name);
CREATE INDEX deployment_schedules_deployment ON pgflow.deployment_schedules (deployment_id);
-- idempotent enqueue: one run per (flow, idempotency key)
CREATE UNIQUE INDEX flow_runs_idempotency ON pgflow.flow_runs (flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- schedules: one scheduler-created run per (deployment, start), whoever creates it
CREATE UNIQUE INDEX flow_runs_scheduled ON pgflow.flow_runs (deployment_id, expected_start_time)
    WHERE deployment_schedule_id IS NOT NULL;
-- heartbeat, reaper, queue_status: the active runs (small), by agent
CREATE INDEX flow_runs_active ON pgflow.flow_runs (agent_id)
    WHERE state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
-- retention and "recently finished": runs by end time
CREATE INDEX flow_runs_ended ON pgflow.flow_runs (end_time) WHERE end_time IS NOT NULL;
-- history of a deployment, newest first
CREATE INDEX flow_runs_deployment ON pgflow.flow_runs (deployment_id, created_at);
-- "what failed lately"
CREATE INDEX flow_runs_failed ON pgflow.flow_runs (end_time) WHERE state_type IN ('FAILED', 'CRASHED');
-- subflows of a task run
CREATE INDEX flow_runs_parent ON pgflow.flow_runs (parent_task_run_id) WHERE parent_task_run_id IS NOT NULL;
-- idempotent transitions
CREATE UNIQUE INDEX flow_run_states_transition ON pgflow.flow_run_states (transition_id)
    WHERE transition_id IS NOT NULL;
CREATE UNIQUE INDEX task_run_states_transition ON pgflow.task_run_states (transition_id)
    WHERE transition_id IS NOT NULL;
-- reading a run's logs in order, and deleting them with the run
CREATE INDEX logs_flow_run ON pgflow.logs (flow_run_id, "timestamp");
-- cache cleanup
CREATE INDEX task_run_cache_task_run ON pgflow.task_run_cache (task_run_id);

-- ============================================================================================
-- Functions, part 1: helpers and input checks. Every check that fails raises with a message, an
-- SQLSTATE and a HINT, before anything is written:
--   22023 invalid_parameter_value (bad names, values, states)   P0002 no_data_found (unknown object)
--   P0003 too_many_rows (ambiguous name)                        55000 object_not_in_prerequisite_state
-- ============================================================================================
-- All notifications go through here (channels pgflow_runs, pgflow_cancel, pgflow_resume).
CREATE FUNCTION pgflow.notify(p_channel text, p_payload text) RETURNS void
LANGUAGE sql AS $$ SELECT pg_notify(p_channel, p_payload) $$;

CREATE FUNCTION pgflow.is_terminal(p_state_type pgflow.state_type) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
$$;

-- A run holds its concurrency slots in these states, and releases them on leaving them.
CREATE FUNCTION pgflow._holds_slots(p_state_type pgflow.state_type, p_state_name text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_state_type IN ('PENDING', 'RUNNING', 'CANCELLING')
        OR (p_state_type = 'PAUSED' AND p_state_name = 'Paused')
$$;

-- Parses a proposed state: type 'running' or 'RUNNING', name defaulting to the type's main name.
CREATE FUNCTION pgflow._parse_state(p_state_type text, p_state_name text,
                                    OUT state_type pgflow.state_type, OUT state_name text)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_state_type IS NULL OR upper(p_state_type) NOT IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED',
            'CANCELLING', 'COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') THEN
        RAISE EXCEPTION 'pgflow: invalid state type %', coalesce(quote_literal(p_state_type), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'use one of SCHEDULED, PENDING, RUNNING, PAUSED, CANCELLING, COMPLETED, FAILED, CANCELLED, CRASHED';
    END IF;
    state_type := upper(p_state_type)::pgflow.state_type;
    state_name := coalesce(p_state_name, initcap(lower(p_state_type)));
    IF pgflow.state_type_of(state_name) IS DISTINCT FROM state_type THEN
        RAISE EXCEPTION 'pgflow: invalid state name % for state type %', quote_literal(state_name), state_type
            USING ERRCODE = '22023',
                  HINT = 'names: SCHEDULED Scheduled|Late|AwaitingRetry|AwaitingConcurrencySlot, PENDING Pending, '
                      || 'RUNNING Running|Retrying, PAUSED Paused|Suspended, CANCELLING Cancelling, COMPLETED Completed|Cached, '
                      || 'FAILED Failed|TimedOut, CANCELLED Cancelled, CRASHED Crashed';
    END IF;
END $$;

CREATE FUNCTION pgflow._check_parameters(p_parameters jsonb, p_what text DEFAULT 'parameters') RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_parameters IS NULL OR jsonb_typeof(p_parameters) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: % must be a JSON object, got %', p_what, coalesce(jsonb_typeof(p_parameters), 'NULL')
            USING ERRCODE = '22023', HINT = 'pass an object such as ''{"day": "2026-11-21"}'' (''{}'' for none)';
    END IF;
    RETURN p_parameters;
END $$;

CREATE FUNCTION pgflow._check_tags(p_tags text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_tags IS NULL THEN
        RETURN '{}';
    END IF;
    IF array_position(p_tags, NULL) IS NOT NULL OR '' = ANY (p_tags) THEN
        RAISE EXCEPTION 'pgflow: tags must not be NULL or empty, got %', p_tags
            USING ERRCODE = '22023', HINT = 'pass tags such as ARRAY[''etl'', ''nightly'']';
    END IF;
    RETURN ARRAY(SELECT DISTINCT t FROM unnest(p_tags) t ORDER BY t);
END $$;

CREATE FUNCTION pgflow._check_limit(p_limit integer, p_what text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_limit < 0 THEN
        RAISE EXCEPTION 'pgflow: % must not be negative, got %', p_what, p_limit
            USING ERRCODE = '22023', HINT = 'pass 0 or more, or NULL for no limit';
    END IF;
    RETURN p_limit;
END $$;

-- A deployment's missed-run policy: 'run_all', 'latest', 'skip', or NULL (the scheduler's default).
CREATE FUNCTION pgflow._check_missed_run_policy(p_policy text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_policy NOT IN ('run_all', 'latest', 'skip') THEN
        RAISE EXCEPTION 'pgflow: invalid missed-run policy %', quote_literal(p_policy)
            USING ERRCODE = '22023',
                  HINT = 'use ''run_all'', ''latest'' or ''skip'', or NULL for the scheduler''s default';
    END IF;
    RETURN p_policy;
END $$;

CREATE FUNCTION pgflow._check_retry_policy(p_retries integer, p_backoff text, p_delays float8[], p_jitter float8)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_retries IS NULL OR p_retries < 0 THEN
        RAISE EXCEPTION 'pgflow: retries must be 0 or more, got %', coalesce(p_retries::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass how many times a failed run runs again (0 for never)';
    END IF;
    IF p_backoff IS NULL OR p_backoff NOT IN ('fixed', 'list', 'exponential') THEN
        RAISE EXCEPTION 'pgflow: invalid retry backoff %', coalesce(quote_literal(p_backoff), 'NULL')
            USING ERRCODE = '22023', HINT = 'use ''fixed'', ''list'' or ''exponential''';
    END IF;
    IF p_delays IS NULL OR cardinality(p_delays) = 0 OR array_position(p_delays, NULL) IS NOT NULL
       OR NOT 0 <= ALL (p_delays) OR (p_backoff <> 'list' AND cardinality(p_delays) <> 1) THEN
        RAISE EXCEPTION 'pgflow: invalid retry delays % for backoff %', coalesce(p_delays::text, 'NULL'), p_backoff
            USING ERRCODE = '22023',
                  HINT = 'fixed and exponential take one delay in seconds (''{10}''), list one or more (''{1,10,60}''), none negative';
    END IF;
    IF p_jitter IS NULL OR p_jitter < 0 THEN
        RAISE EXCEPTION 'pgflow: retry jitter must be 0 or more, got %', coalesce(p_jitter::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass a factor such as 0.2 (delays grow by up to 20 %%), or 0';
    END IF;
END $$;

-- The delay before retry number p_retry (1 = the first retry) under a retry policy.
CREATE FUNCTION pgflow.retry_delay(p_backoff text, p_delays float8[], p_jitter float8, p_retry integer)
RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT make_interval(secs => base * (1 + p_jitter * random()))
      FROM (SELECT CASE p_backoff
                       WHEN 'exponential' THEN p_delays[1] * power(2, greatest(p_retry, 1) - 1)
                       WHEN 'list' THEN p_delays[least(greatest(p_retry, 1), cardinality(p_delays))]
                       ELSE p_delays[1]
                   END AS base) b
$$;

-- A Prefect-style run name: adjective-animal.
CREATE FUNCTION pgflow.random_run_name() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT (ARRAY['amber','brave','calm','daring','eager','fancy','gentle','happy','icy','jolly','keen',
                  'lively','merry','nimble','olive','proud','quick','rapid','silent','tidy','upbeat',
                  'vivid','witty','young','zesty','bold','cosmic','dusty','golden','misty'])[1 + floor(random() * 30)::int]
        || '-' ||
           (ARRAY['otter','falcon','badger','heron','lynx','panda','tapir','koala','gecko','bison','moose',
                  'okapi','raven','sloth','wombat','yak','zebra','ibis','marmot','newt','orca','puffin',
                  'quail','seal','toucan','urchin','viper','walrus','fox','crane'])[1 + floor(random() * 30)::int]
$$;

CREATE FUNCTION pgflow._work_queue_id(p_name text) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id uuid;
BEGIN
    SELECT id INTO v_id FROM pgflow.work_queues WHERE name = p_name;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown work queue %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'create it with SELECT pgflow.create_work_queue(''' || coalesce(p_name, 'name') || ''')';
    END IF;
    RETURN v_id;
END $$;

-- Resolves 'flow/deployment', or a deployment name that only one flow uses.
CREATE FUNCTION pgflow._deployment_id(p_name text) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ids uuid[];
BEGIN
    IF strpos(p_name, '/') > 0 THEN
        v_ids := ARRAY(SELECT d.id FROM pgflow.deployments d JOIN pgflow.flows f ON f.id = d.flow_id
                        WHERE f.name = split_part(p_name, '/', 1)
                          AND d.name = substr(p_name, strpos(p_name, '/') + 1));
    ELSE
        v_ids := ARRAY(SELECT id FROM pgflow.deployments WHERE name = p_name);
    END IF;
    IF cardinality(v_ids) = 0 OR p_name IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown deployment %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002',
                  HINT = 'name it as flow/deployment; SELECT * FROM pgflow.deployment_list shows them';
    END IF;
    IF cardinality(v_ids) > 1 THEN
        RAISE EXCEPTION 'pgflow: deployment name % is used by % flows', quote_literal(p_name), cardinality(v_ids)
            USING ERRCODE = 'P0003',
                  HINT = 'name it as flow/deployment, one of: ' || (SELECT string_agg(f.name || '/' || d.name, ', ')
                      FROM pgflow.deployments d JOIN pgflow.flows f ON f.id = d.flow_id WHERE d.id = ANY (v_ids));
    END IF;
    RETURN v_ids[1];
END $$;

CREATE FUNCTION pgflow._flow_id(p_name text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    IF p_name IS NULL OR p_name = '' OR strpos(p_name, '/') > 0 THEN
        RAISE EXCEPTION 'pgflow: invalid flow name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'a flow name is not empty and has no ''/''';
    END IF;
    SELECT id INTO v_id FROM pgflow.flows WHERE name = p_name;
    IF v_id IS NULL THEN
        INSERT INTO pgflow.flows (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING RETURNING id INTO v_id;
        IF v_id IS NULL THEN
            SELECT id INTO v_id FROM pgflow.flows WHERE name = p_name;
        END IF;
    END IF;
    RETURN v_id;
END $$;

-- Creates, changes or (p_limit NULL) deletes a managed limit; returns its id.
CREATE FUNCTION pgflow._set_managed_limit(p_current uuid, p_name text, p_kind text, p_limit integer, p_now timestamptz)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    IF p_limit IS NULL THEN
        DELETE FROM pgflow.concurrency_limits WHERE id = p_current;
        RETURN NULL;
    END IF;
    INSERT INTO pgflow.concurrency_limits (name, kind, concurrency_limit, created_at, updated_at)
    VALUES (p_name, p_kind, p_limit, p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, active = true,
                                     updated_at = excluded.updated_at
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- ============================================================================================
-- Functions, part 2: configuration (work queues, deployments, schedules, limits, variables)
-- ============================================================================================
-- Creates a work queue, or updates it to these settings; returns its id.
CREATE FUNCTION pgflow.create_work_queue(
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
    UPDATE pgflow.work_queues
       SET concurrency_limit_id = pgflow._set_managed_limit(v_queue.concurrency_limit_id, 'work_queue:' || p_name,
                                                            'work_queue', p_concurrency_limit, p_now)
     WHERE id = v_queue.id;
    RETURN v_queue.id;
END $$;

-- Pauses (claims skip it) or resumes a work queue.
CREATE FUNCTION pgflow.set_work_queue_paused(p_name text, p_paused boolean, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgflow.work_queues SET paused = p_paused, updated_at = p_now WHERE id = pgflow._work_queue_id(p_name);
END $$;

-- Creates a deployment of a flow (creating the flow if new), or updates it to these settings.
-- p_missed_run_policy: what the scheduler does with its scheduled runs missed while nothing ran them
-- ('run_all', 'latest', 'skip'; NULL: the scheduler's default).
CREATE FUNCTION pgflow.create_deployment(
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
    UPDATE pgflow.deployments
       SET concurrency_limit_id = pgflow._set_managed_limit(v_dep.concurrency_limit_id,
                                                            'deployment:' || p_flow_name || '/' || p_name,
                                                            'deployment', p_concurrency_limit, p_now)
     WHERE id = v_dep.id;
    RETURN v_dep.id;
END $$;

-- Pauses a deployment (its schedules create no runs; runs asked for by hand still run) or resumes it.
CREATE FUNCTION pgflow.set_deployment_paused(p_name text, p_paused boolean, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgflow.deployments SET paused = p_paused, updated_at = p_now WHERE id = pgflow._deployment_id(p_name);
END $$;

-- Sets what the scheduler does with a deployment's scheduled runs missed while nothing ran them:
-- 'run_all' (run every one), 'latest' (run only the newest, cancel the older), 'skip' (cancel them all),
-- or NULL (the scheduler's default, `--missed-runs`).
CREATE FUNCTION pgflow.set_deployment_missed_run_policy(p_name text, p_policy text, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_missed_run_policy(p_policy);
    UPDATE pgflow.deployments SET missed_run_policy = p_policy, updated_at = p_now WHERE id = pgflow._deployment_id(p_name);
END $$;

-- Adds a schedule to a deployment. p_kind 'cron' (p_expression '0 6 * * *'), 'interval'
-- (p_expression '1 hour', optional p_anchor_date) or 'rrule' (p_expression 'FREQ=DAILY;BYHOUR=6').
CREATE FUNCTION pgflow.create_deployment_schedule(
    p_deployment  text,
    p_kind        text,
    p_expression  text,
    p_timezone    text        DEFAULT 'UTC',
    p_parameters  jsonb       DEFAULT '{}',
    p_active      boolean     DEFAULT true,
    p_anchor_date timestamptz DEFAULT NULL,
    p_now         timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_dep_id   uuid := pgflow._deployment_id(p_deployment);
    v_interval interval;
    v_id       uuid;
BEGIN
    PERFORM pgflow._check_parameters(p_parameters, 'schedule parameters');
    IF p_timezone IS NULL OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
        RAISE EXCEPTION 'pgflow: unknown time zone %', coalesce(quote_literal(p_timezone), 'NULL')
            USING ERRCODE = '22023', HINT = 'use an IANA name such as ''UTC'' or ''Europe/Paris''';
    END IF;
    CASE p_kind
    WHEN 'cron' THEN
        IF p_expression IS NULL OR array_length(regexp_split_to_array(btrim(p_expression), '\s+'), 1) NOT IN (5, 6)
           OR p_expression !~ '^[0-9A-Za-z*/,?#LW\- ]+$' THEN
            RAISE EXCEPTION 'pgflow: invalid cron expression %', coalesce(quote_literal(p_expression), 'NULL')
                USING ERRCODE = '22023', HINT = 'use five fields: minute hour day-of-month month day-of-week, e.g. ''0 6 * * *''';
        END IF;
    WHEN 'interval' THEN
        BEGIN
            v_interval := p_expression::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            v_interval := NULL;
        END;
        IF v_interval IS NULL OR v_interval <= interval '0' THEN
            RAISE EXCEPTION 'pgflow: invalid schedule interval %', coalesce(quote_literal(p_expression), 'NULL')
                USING ERRCODE = '22023', HINT = 'use a positive interval such as ''15 minutes'' or ''1 day''';
        END IF;
    WHEN 'rrule' THEN
        IF p_expression IS NULL OR p_expression !~* '(^|\n|RRULE:)FREQ=(SECONDLY|MINUTELY|HOURLY|DAILY|WEEKLY|MONTHLY|YEARLY)' THEN
            RAISE EXCEPTION 'pgflow: invalid rrule %', coalesce(quote_literal(p_expression), 'NULL')
                USING ERRCODE = '22023', HINT = 'use an RFC 5545 rule such as ''FREQ=DAILY;BYHOUR=6''';
        END IF;
    ELSE
        RAISE EXCEPTION 'pgflow: invalid schedule kind %', coalesce(quote_literal(p_kind), 'NULL')
            USING ERRCODE = '22023', HINT = 'use ''cron'', ''interval'' or ''rrule''';
    END CASE;
    INSERT INTO pgflow.deployment_schedules (deployment_id, kind, cron, "interval", rrule, anchor_date, timezone,
                                             active, parameters, created_at, updated_at)
    VALUES (v_dep_id, p_kind, CASE WHEN p_kind = 'cron' THEN btrim(p_expression) END, v_interval,
            CASE WHEN p_kind = 'rrule' THEN p_expression END,
            CASE WHEN p_kind = 'interval' THEN coalesce(p_anchor_date, p_now) ELSE p_anchor_date END,
            p_timezone, coalesce(p_active, true), p_parameters, p_now, p_now)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Creates or changes a global limit ('db') or a tag limit ('tag:db'); returns its id.
CREATE FUNCTION pgflow.create_concurrency_limit(
    p_name   text,
    p_limit  integer,
    p_active boolean     DEFAULT true,
    p_now    timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    IF p_name IS NULL OR p_name = '' OR p_name ~ '^(work_queue|deployment):' OR p_name = 'tag:' THEN
        RAISE EXCEPTION 'pgflow: invalid concurrency limit name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'use a name (''db'') or ''tag:<tag>''; queue and deployment limits are set with create_work_queue / create_deployment';
    END IF;
    IF p_limit IS NULL THEN
        RAISE EXCEPTION 'pgflow: concurrency limit % needs a limit', quote_literal(p_name)
            USING ERRCODE = '22023', HINT = 'pass 0 or more; delete a limit with pgflow.delete_concurrency_limit';
    END IF;
    PERFORM pgflow._check_limit(p_limit, 'concurrency limit');
    INSERT INTO pgflow.concurrency_limits (name, kind, concurrency_limit, active, created_at, updated_at)
    VALUES (p_name, CASE WHEN p_name LIKE 'tag:%' THEN 'tag' ELSE 'global' END, p_limit, coalesce(p_active, true), p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, active = excluded.active,
                                     updated_at = excluded.updated_at
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Deletes a global or tag limit (and its slots); returns whether it existed.
CREATE FUNCTION pgflow.delete_concurrency_limit(p_name text) RETURNS boolean
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM pgflow.concurrency_limits WHERE name = p_name AND kind IN ('global', 'tag') RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM d)
$$;

CREATE FUNCTION pgflow.set_variable(p_key text, p_value jsonb, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NULL OR p_key !~ '^[a-z0-9_./-]{1,255}$' THEN
        RAISE EXCEPTION 'pgflow: invalid variable key %', coalesce(quote_literal(p_key), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 255 of a-z 0-9 _ . / -';
    END IF;
    IF p_value IS NULL THEN
        RAISE EXCEPTION 'pgflow: variable % needs a value', quote_literal(p_key)
            USING ERRCODE = '22023', HINT = 'pass a JSON value, e.g. ''"text"'' or ''{"a": 1}''';
    END IF;
    INSERT INTO pgflow.variables (key, value, updated_at) VALUES (p_key, p_value, p_now)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
END $$;

CREATE FUNCTION pgflow.get_variable(p_key text) RETURNS jsonb
LANGUAGE sql STABLE AS $$ SELECT value FROM pgflow.variables WHERE key = p_key $$;

-- ============================================================================================
-- Functions, part 3: the state machine. _decide holds every rule about which transition is allowed
-- (flow runs and task runs share it); _take_slots admits runs into concurrency limits; the
-- _transition_* functions apply many decisions at once with a handful of set-based statements:
-- lock the runs, decide, admit, then update the current-state columns, append the history, maintain
-- the claimable set and the slots, store results, notify.
-- ============================================================================================
CREATE FUNCTION pgflow._decide(
    p_kind              text,                -- 'flow run' or 'task run', for messages
    p_cur_type          pgflow.state_type,
    p_cur_name          text,
    p_cur_next_start    timestamptz,
    p_run_count         integer,
    p_retries           integer,
    p_retry_backoff     text,
    p_retry_delays      float8[],
    p_retry_jitter      float8,
    p_pause_expires_at  timestamptz,
    p_owner             uuid,                -- the agent that claimed the run
    p_new_type          pgflow.state_type,
    p_new_name          text,
    p_scheduled_time    timestamptz,
    p_agent_id          uuid,                -- the agent proposing, if any
    p_allow_retry       boolean,
    p_now               timestamptz,
    OUT status          text,
    OUT reason          text,
    OUT new_type        pgflow.state_type,
    OUT new_name        text,
    OUT next_start      timestamptz,
    OUT new_attempt     boolean,
    OUT admit           boolean
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    status := 'ACCEPTED'; new_type := p_new_type; new_name := p_new_name;
    new_attempt := false; admit := false;

    IF pgflow.is_terminal(p_cur_type) THEN
        reason := format('the %s is %s (%s), a terminal state; only an explicit retry (pgflow.retry_flow_run) moves it',
                         p_kind, p_cur_name, p_cur_type);
    ELSIF p_agent_id IS NOT NULL AND p_owner IS NOT NULL AND p_owner <> p_agent_id THEN
        reason := format('the %s belongs to agent %s, not to agent %s', p_kind, p_owner, p_agent_id);
    ELSIF p_cur_type = 'CANCELLING' AND p_new_type <> 'CANCELLED' THEN
        reason := format('a cancelling %s may only end as CANCELLED', p_kind);
    END IF;
    IF reason IS NOT NULL THEN
        status := 'REJECTED'; new_type := p_cur_type; new_name := p_cur_name; next_start := p_cur_next_start;
        RETURN;
    END IF;
    IF p_cur_type = 'PAUSED' AND p_pause_expires_at <= p_now AND p_new_type IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED') THEN
        status := 'REDIRECTED'; new_type := 'FAILED'; new_name := 'TimedOut';
        reason := format('the %s was paused past its timeout (%s)', p_kind, p_pause_expires_at);
        RETURN;
    END IF;

    CASE p_new_type
    WHEN 'SCHEDULED' THEN
        IF p_new_name = 'Late' AND NOT (p_cur_type = 'SCHEDULED' AND p_cur_name = 'Scheduled') THEN
            reason := format('only a Scheduled %s can become Late, this one is %s', p_kind, p_cur_name);
        ELSIF p_new_name = 'AwaitingRetry' AND p_cur_type NOT IN ('PENDING', 'RUNNING') THEN
            reason := format('only a PENDING or RUNNING %s can await a retry, this one is %s', p_kind, p_cur_type);
        ELSIF p_new_name = 'AwaitingConcurrencySlot' AND p_cur_type NOT IN ('SCHEDULED', 'PENDING') THEN
            reason := format('only a SCHEDULED or PENDING %s can await a concurrency slot, this one is %s', p_kind, p_cur_type);
        ELSIF p_new_name = 'Scheduled' AND p_cur_type NOT IN ('SCHEDULED', 'PENDING', 'PAUSED') THEN
            reason := format('a %s %s cannot be scheduled again', p_cur_type, p_kind);
        END IF;
        next_start := CASE WHEN p_new_name = 'Late' THEN p_cur_next_start ELSE coalesce(p_scheduled_time, p_now) END;
    WHEN 'PENDING' THEN
        IF p_cur_type <> 'SCHEDULED' THEN
            reason := format('the %s is already %s; only a SCHEDULED one can be claimed', p_kind, p_cur_type);
        END IF;
        admit := true;
    WHEN 'RUNNING' THEN
        IF p_cur_type = 'RUNNING' THEN
            reason := format('the %s is already RUNNING; it cannot be started twice', p_kind);
        ELSIF p_cur_type NOT IN ('SCHEDULED', 'PENDING', 'PAUSED') THEN
            reason := format('a %s %s cannot start', p_cur_type, p_kind);
        END IF;
        new_attempt := p_cur_type <> 'PAUSED';
        admit := p_cur_type <> 'PAUSED' OR p_cur_name = 'Suspended';
        IF new_attempt AND p_new_name = 'Running' AND p_run_count >= 1 THEN
            new_name := 'Retrying';
        END IF;
    WHEN 'PAUSED' THEN
        IF p_cur_type <> 'RUNNING' THEN
            reason := format('only a RUNNING %s can pause, this one is %s', p_kind, p_cur_type);
        END IF;
    WHEN 'CANCELLING' THEN
        IF p_cur_type = 'SCHEDULED' OR (p_cur_type = 'PAUSED' AND p_cur_name = 'Suspended') THEN
            status := 'REDIRECTED'; new_type := 'CANCELLED'; new_name := 'Cancelled';
            reason := format('the %s had no process to stop, so it is cancelled at once', p_kind);
        END IF;
    WHEN 'COMPLETED' THEN
        IF p_cur_type <> 'RUNNING' THEN
            reason := format('only a RUNNING %s can complete, this one is %s', p_kind, p_cur_type);
        END IF;
    WHEN 'FAILED', 'CRASHED' THEN
        IF p_new_type = 'CRASHED' AND p_cur_type NOT IN ('PENDING', 'RUNNING', 'PAUSED') THEN
            reason := format('only a PENDING, RUNNING or PAUSED %s can crash, this one is %s', p_kind, p_cur_type);
        ELSIF p_allow_retry AND p_cur_type IN ('PENDING', 'RUNNING') AND greatest(p_run_count, 1) <= p_retries THEN  -- a crash while Pending counts as an attempt
            status := 'REDIRECTED'; new_type := 'SCHEDULED'; new_name := 'AwaitingRetry';
            next_start := p_now + pgflow.retry_delay(p_retry_backoff, p_retry_delays, p_retry_jitter, greatest(p_run_count, 1));
            reason := format('%s: retry %s of %s at %s', p_new_name, greatest(p_run_count, 1), p_retries, next_start);
        END IF;
    ELSE  -- CANCELLED: from any state that is not terminal
    END CASE;

    IF reason IS NOT NULL AND status = 'ACCEPTED' THEN
        status := 'REJECTED';
    END IF;
    IF status = 'REJECTED' THEN
        new_type := p_cur_type; new_name := p_cur_name; next_start := p_cur_next_start;
        new_attempt := false; admit := false;
    END IF;
END $$;

-- Admits holders into concurrency limits, in the order given; returns, per request, whether it got
-- its slots and, if not, the limits that were full. Race-free: the limit rows are locked (in id
-- order, so two callers never deadlock) before the slots in use are counted, and the count runs
-- in a later statement, whose snapshot sees every slot committed by whoever held the lock before.
-- Limits the holder already holds (re-admission) and inactive limits are not counted again.
CREATE FUNCTION pgflow._take_slots(p_requests pgflow._slot_request[], p_now timestamptz)
RETURNS TABLE (lease_id uuid, granted boolean, full_limits uuid[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    v_ids     uuid[];
    v_free    integer[];
    v_req     pgflow._slot_request;
    v_full    uuid[];
    v_pos     integer;
    v_lim     uuid;
    v_granted pgflow._slot_request[] := '{}';
BEGIN
    -- drop limits already held by the holder
    p_requests := ARRAY(
        SELECT ROW(r.lease_id, r.holder_kind, r.holder_id,
                   ARRAY(SELECT DISTINCT l FROM unnest(r.limit_ids) l
                          WHERE NOT EXISTS (SELECT 1 FROM pgflow.concurrency_slots s
                                             WHERE s.lease_id = r.lease_id AND s.limit_id = l)),
                   r.slots, r.expires_at)::pgflow._slot_request
          FROM unnest(p_requests) WITH ORDINALITY r ORDER BY r.ordinality);
    v_ids := ARRAY(SELECT DISTINCT l FROM unnest(p_requests) r, unnest(r.limit_ids) l);
    IF cardinality(v_ids) = 0 THEN
        RETURN QUERY SELECT r.lease_id, true, '{}'::uuid[] FROM unnest(p_requests) r;
        RETURN;
    END IF;
    PERFORM 1 FROM pgflow.concurrency_limits l WHERE l.id = ANY (v_ids) AND l.active ORDER BY l.id FOR NO KEY UPDATE;
    SELECT coalesce(array_agg(l.id), '{}'), coalesce(array_agg(l.concurrency_limit - coalesce(u.used, 0)), '{}')
      INTO v_ids, v_free
      FROM pgflow.concurrency_limits l
      LEFT JOIN LATERAL (SELECT sum(s.slots)::integer AS used FROM pgflow.concurrency_slots s
                          WHERE s.limit_id = l.id AND (s.expires_at IS NULL OR s.expires_at > p_now)) u ON true
     WHERE l.id = ANY (v_ids) AND l.active;
    FOREACH v_req IN ARRAY p_requests LOOP
        v_full := '{}';
        FOREACH v_lim IN ARRAY v_req.limit_ids LOOP
            v_pos := array_position(v_ids, v_lim);
            IF v_pos IS NOT NULL AND v_free[v_pos] < v_req.slots THEN
                v_full := v_full || v_lim;
            END IF;
        END LOOP;
        IF cardinality(v_full) = 0 THEN
            FOREACH v_lim IN ARRAY v_req.limit_ids LOOP
                v_pos := array_position(v_ids, v_lim);
                IF v_pos IS NOT NULL THEN
                    v_free[v_pos] := v_free[v_pos] - v_req.slots;
                END IF;
            END LOOP;
            v_granted := v_granted || v_req;
        END IF;
        lease_id := v_req.lease_id; granted := cardinality(v_full) = 0; full_limits := v_full;
        RETURN NEXT;
    END LOOP;
    INSERT INTO pgflow.concurrency_slots (lease_id, limit_id, slots, holder_kind, holder_id, acquired_at, expires_at)
    SELECT g.lease_id, l, g.slots, g.holder_kind, g.holder_id, p_now, g.expires_at
      FROM unnest(v_granted) g, unnest(g.limit_ids) l
     WHERE l = ANY (v_ids);
END $$;

-- Free slots of a limit now (NULL for no limit or an inactive one).
CREATE FUNCTION pgflow._free_slots(p_limit_id uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT greatest(l.concurrency_limit - coalesce((SELECT sum(s.slots) FROM pgflow.concurrency_slots s
                                                             WHERE s.limit_id = l.id
                                                               AND (s.expires_at IS NULL OR s.expires_at > p_now)), 0), 0)::integer
              FROM pgflow.concurrency_limits l WHERE l.id = p_limit_id AND l.active);
END $$;

-- The limits a flow run counts against: its work queue's, its deployment's, and 'tag:<tag>' for
-- each of its tags; cancel_limit is the deployment limit when its collision strategy is CANCEL_NEW.
CREATE FUNCTION pgflow._flow_run_limits(p_run_ids uuid[])
RETURNS TABLE (ord bigint, run_id uuid, limit_ids uuid[], cancel_limit uuid)
LANGUAGE sql STABLE AS $$
    SELECT x.ord, r.id,
           array_remove(ARRAY[q.concurrency_limit_id, d.concurrency_limit_id], NULL)
             || ARRAY(SELECT l.id FROM pgflow.concurrency_limits l
                       WHERE l.name IN (SELECT 'tag:' || t FROM unnest(r.tags) t) AND l.active),
           CASE WHEN d.collision_strategy = 'CANCEL_NEW' THEN d.concurrency_limit_id END
      FROM unnest(p_run_ids) WITH ORDINALITY x(id, ord)
      JOIN pgflow.flow_runs r ON r.id = x.id
      LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     ORDER BY x.ord
$$;

-- Applies proposals to flow runs (all rules; see _decide). Callers have checked the input.
-- p_agent_id: the proposing agent (claims record it on the run); p_locked: the caller holds the row locks;
-- p_allow_retry false: a failure is final (Failed) even with retries left.
CREATE FUNCTION pgflow._transition_flow_runs(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamptz,
                                             p_locked boolean DEFAULT false, p_allow_retry boolean DEFAULT true)
RETURNS SETOF pgflow.transition_result
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_dec   pgflow._decision[];
    v_admit uuid[];
    v_ended uuid[];
    v_dequeue boolean;
    v_enqueue boolean;
    v_release boolean;
    v_results boolean;
BEGIN
    -- 1. lock the runs in id order (two batches over the same runs never deadlock)
    IF NOT p_locked THEN
        PERFORM 1 FROM pgflow.flow_runs WHERE id = ANY (ARRAY(SELECT p.run_id FROM unnest(p_proposals) p)) ORDER BY id FOR UPDATE;
    END IF;

    -- 2. decide, on a snapshot taken after the locks (an idempotent replay returns what it wrote)
    v_dec := ARRAY(
        SELECT ROW(p.ordinality, p.run_id,
                   CASE WHEN h.flow_run_id IS NOT NULL THEN 'DUPLICATE' ELSE d.status END,
                   CASE WHEN h.flow_run_id IS NOT NULL THEN format('transition %s was applied before', p.transition_id) ELSE d.reason END,
                   r.state_type, r.state_name, coalesce(h."timestamp", r.state_timestamp), r.run_count,
                   coalesce(h.state_type, d.new_type), coalesce(h.state_name, d.new_name),
                   CASE WHEN d.status = 'ACCEPTED' THEN p.message ELSE concat_ws(' — ', p.message, d.reason) END, p.result,
                   CASE WHEN h.flow_run_id IS NOT NULL THEN r.next_scheduled_start ELSE d.next_start END,
                   p.pause_expires, p.transition_id, p.process_id,
                   h.flow_run_id IS NULL AND d.status IN ('ACCEPTED', 'REDIRECTED'),
                   h.flow_run_id IS NULL AND d.new_attempt,
                   h.flow_run_id IS NULL AND d.admit AND d.status = 'ACCEPTED', NULL)::pgflow._decision
          FROM unnest(p_proposals) WITH ORDINALITY p
          JOIN pgflow.flow_runs r ON r.id = p.run_id
          LEFT JOIN pgflow.flow_run_states h ON p.transition_id IS NOT NULL AND h.transition_id = p.transition_id
                                            AND h.flow_run_id = p.run_id
          CROSS JOIN LATERAL pgflow._decide('flow run', r.state_type, r.state_name, r.next_scheduled_start,
                   r.run_count, r.retries, r.retry_backoff, r.retry_delays, r.retry_jitter, r.pause_expires_at,
                   r.agent_id, p.state_type, p.state_name, p.scheduled_time, p_agent_id, p_allow_retry, p_now) d
         ORDER BY p.ordinality);

    -- 3. admit runs on their way to Running into their concurrency limits (skipped when no limit exists)
    v_admit := ARRAY(SELECT d.run_id FROM unnest(v_dec) d WHERE d.admit ORDER BY d.ord);
    IF cardinality(v_admit) > 0 AND EXISTS (SELECT 1 FROM pgflow.concurrency_limits WHERE active) THEN
        v_dec := ARRAY(
            WITH lim AS (SELECT * FROM pgflow._flow_run_limits(v_admit)),
                 took AS (SELECT * FROM pgflow._take_slots(
                             ARRAY(SELECT ROW(l.run_id, 'flow_run', l.run_id, l.limit_ids, 1, NULL)::pgflow._slot_request
                                     FROM lim l ORDER BY l.ord), p_now))
            SELECT CASE
                   WHEN t.granted IS NOT FALSE THEN d
                   WHEN l.cancel_limit = ANY (t.full_limits) THEN
                       ROW(d.ord, d.run_id, 'REDIRECTED',
                           'the deployment''s concurrency limit is full and its collision strategy is CANCEL_NEW',
                           d.old_type, d.old_name, d.old_at, d.old_run_count, 'CANCELLED', 'Cancelled',
                           'the deployment''s concurrency limit is full and its collision strategy is CANCEL_NEW',
                           d.result, NULL, NULL, d.transition_id, d.process_id, true, false, false, NULL)::pgflow._decision
                   ELSE
                       ROW(d.ord, d.run_id, 'WAIT',
                           'waiting for a slot in: ' || (SELECT string_agg(c.name, ', ') FROM pgflow.concurrency_limits c
                                                         WHERE c.id = ANY (t.full_limits)),
                           d.old_type, d.old_name, d.old_at, d.old_run_count, 'SCHEDULED', 'AwaitingConcurrencySlot',
                           'waiting for a slot in: ' || (SELECT string_agg(c.name, ', ') FROM pgflow.concurrency_limits c
                                                         WHERE c.id = ANY (t.full_limits)),
                           d.result,
                           CASE WHEN d.old_type = 'SCHEDULED' THEN (SELECT q.scheduled_at FROM pgflow.run_queue q WHERE q.flow_run_id = d.run_id) ELSE p_now END,
                           NULL, d.transition_id, d.process_id, d.old_name <> 'AwaitingConcurrencySlot',
                           false, false, t.full_limits)::pgflow._decision
                   END
              FROM unnest(v_dec) d
              LEFT JOIN lim l ON l.run_id = d.run_id
              LEFT JOIN took t ON t.lease_id = d.run_id
             ORDER BY d.ord);
        -- runs already waiting: only the limits they wait for change
        UPDATE pgflow.run_queue q SET blocked_on = d.blocked_on
          FROM unnest(v_dec) d
         WHERE q.flow_run_id = d.run_id AND d.status = 'WAIT' AND NOT d.write;
    END IF;

    -- 4. write: current state and history always; the claimable set, slots and results only when
    -- some row needs it (a statement that touches no row still costs its start-up)
    SELECT coalesce(bool_or(d.old_type = 'SCHEDULED' AND d.new_type <> 'SCHEDULED'), false),
           coalesce(bool_or(d.new_type = 'SCHEDULED'), false),
           coalesce(bool_or(pgflow._holds_slots(d.old_type, d.old_name) AND NOT pgflow._holds_slots(d.new_type, d.new_name)), false),
           coalesce(bool_or(d.result IS NOT NULL), false)
      INTO v_dequeue, v_enqueue, v_release, v_results
      FROM unnest(v_dec) d WHERE d.write;
    WITH d AS (SELECT * FROM unnest(v_dec) d WHERE d.write),
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = d.new_type, state_name = d.new_name, state_timestamp = p_now, state_message = d.message,
            run_count = r.run_count + d.new_attempt::integer,
            start_time = CASE WHEN d.new_type = 'RUNNING' THEN coalesce(r.start_time, p_now) ELSE r.start_time END,
            end_time = CASE WHEN pgflow.is_terminal(d.new_type) THEN p_now END,
            total_run_time = r.total_run_time + CASE WHEN r.state_type = 'RUNNING' THEN p_now - r.state_timestamp ELSE interval '0' END,
            next_scheduled_start = CASE WHEN d.new_type = 'SCHEDULED' THEN d.next_start END,
            pause_expires_at = CASE WHEN d.new_type = 'PAUSED' THEN d.pause_expires END,
            agent_id = CASE WHEN d.new_type = 'SCHEDULED' THEN NULL ELSE coalesce(p_agent_id, r.agent_id) END,
            process_id = CASE WHEN d.new_type = 'SCHEDULED' THEN NULL ELSE coalesce(d.process_id, r.process_id) END
          FROM d WHERE r.id = d.run_id
        RETURNING r.id)
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, scheduled_time, transition_id)
    SELECT d.run_id, d.new_type, d.new_name, p_now, d.message, d.next_start, d.transition_id
      FROM d JOIN upd ON upd.id = d.run_id;
    IF v_dequeue THEN
        DELETE FROM pgflow.run_queue q USING unnest(v_dec) d
         WHERE q.flow_run_id = d.run_id AND d.write AND d.new_type <> 'SCHEDULED';
    END IF;
    IF v_enqueue THEN
        INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at, blocked_on)
        SELECT d.run_id, r.work_queue_id, d.next_start, d.blocked_on
          FROM unnest(v_dec) d JOIN pgflow.flow_runs r ON r.id = d.run_id
         WHERE d.write AND d.new_type = 'SCHEDULED' AND r.work_queue_id IS NOT NULL
        ON CONFLICT (flow_run_id) DO UPDATE SET scheduled_at = excluded.scheduled_at, blocked_on = excluded.blocked_on;
    END IF;
    IF v_release THEN
        DELETE FROM pgflow.concurrency_slots s USING unnest(v_dec) d
         WHERE s.lease_id = d.run_id AND d.write AND NOT pgflow._holds_slots(d.new_type, d.new_name);
    END IF;
    IF v_results THEN
        INSERT INTO pgflow.results (run_id, value, created_at)
        SELECT d.run_id, d.result, p_now FROM unnest(v_dec) d WHERE d.write AND d.result IS NOT NULL
        ON CONFLICT (run_id) DO UPDATE SET value = excluded.value, created_at = excluded.created_at;
    END IF;

    -- 5. a flow run that ended (or went back to wait for a retry) ends its unfinished task runs
    v_ended := ARRAY(SELECT d.run_id FROM unnest(v_dec) d
                      WHERE d.write AND (pgflow.is_terminal(d.new_type) OR d.new_name = 'AwaitingRetry'));
    IF cardinality(v_ended) > 0 THEN
        PERFORM pgflow._transition_task_runs(ARRAY(
                    SELECT ROW(t.id, CASE WHEN r.state_type = 'CANCELLED' OR t.state_type NOT IN ('PENDING', 'RUNNING', 'PAUSED')
                                          THEN 'CANCELLED' ELSE 'CRASHED' END::pgflow.state_type,
                               CASE WHEN r.state_type = 'CANCELLED' OR t.state_type NOT IN ('PENDING', 'RUNNING', 'PAUSED')
                                    THEN 'Cancelled' ELSE 'Crashed' END,
                               format('its flow run ended as %s', r.state_name),
                               NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
                      FROM pgflow.task_runs t JOIN pgflow.flow_runs r ON r.id = t.flow_run_id
                     WHERE t.flow_run_id = ANY (v_ended) AND NOT pgflow.is_terminal(t.state_type)
                     ORDER BY t.id), false, p_now);
    END IF;

    -- 6. tell the agents: cancel these, resume those
    PERFORM pgflow.notify(CASE WHEN d.new_type = 'CANCELLING' THEN 'pgflow_cancel' ELSE 'pgflow_resume' END, d.run_id::text)
       FROM unnest(v_dec) d
      WHERE d.write AND (d.new_type = 'CANCELLING' OR (d.old_type = 'PAUSED' AND d.new_type IN ('RUNNING', 'SCHEDULED')));

    RETURN QUERY
    SELECT d.run_id, d.status, d.reason, d.new_type, d.new_name,
           CASE WHEN d.write THEN p_now ELSE d.old_at END,
           d.next_start, d.old_run_count + d.new_attempt::integer, d.result
      FROM unnest(v_dec) d ORDER BY d.ord;
END $$;

-- Applies proposals to task runs: the same rules, plus the result cache (a proposal to start a task
-- run whose cache key has a valid entry completes it as Cached, unless the run refreshes its entry;
-- completing one stores its result) and tag limits (slots taken on the way to Running).
-- p_allow_retry false: failures are final. p_timestamps: when each proposal really happened (the
-- state's time, start, end and run time; NULL or a NULL element: p_now); a time before the run's
-- current state's time is taken as that time, so history stays in order and run time never negative.
CREATE FUNCTION pgflow._transition_task_runs(p_proposals pgflow._proposal[], p_allow_retry boolean, p_now timestamptz,
                                             p_timestamps timestamptz[] DEFAULT NULL)
RETURNS SETOF pgflow.transition_result
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_dec   pgflow._decision[];
    v_admit uuid[];
    v_at    timestamptz[];  -- per proposal, when it happened (NULL: p_now)
BEGIN
    PERFORM 1 FROM pgflow.task_runs WHERE id IN (SELECT p.run_id FROM unnest(p_proposals) p) ORDER BY id FOR UPDATE;
    IF p_timestamps IS NOT NULL THEN
        v_at := ARRAY(SELECT CASE WHEN p_timestamps[p.ordinality] IS NULL THEN p_now
                                  ELSE greatest(p_timestamps[p.ordinality], t.state_timestamp) END
                        FROM unnest(p_proposals) WITH ORDINALITY p LEFT JOIN pgflow.task_runs t ON t.id = p.run_id
                       ORDER BY p.ordinality);
    END IF;

    v_dec := ARRAY(
        SELECT CASE
               WHEN h.task_run_id IS NOT NULL THEN
                   ROW(p.ordinality, p.run_id, 'DUPLICATE', format('transition %s was applied before', p.transition_id),
                       t.state_type, t.state_name, h."timestamp", t.run_count, h.state_type, h.state_name, p.message,
                       p.result, t.next_scheduled_start, NULL, p.transition_id, NULL, false, false, false, NULL)::pgflow._decision
               WHEN d.admit AND d.status = 'ACCEPTED' AND c.cache_key IS NOT NULL THEN
                   ROW(p.ordinality, p.run_id, 'REDIRECTED', format('a valid cache entry exists for cache key %s', t.cache_key),
                       t.state_type, t.state_name, t.state_timestamp, t.run_count, 'COMPLETED', 'Cached',
                       coalesce(p.message, format('result from the cache (key %s)', t.cache_key)),
                       c.value, NULL, NULL, p.transition_id, NULL, true, false, false, NULL)::pgflow._decision
               ELSE
                   ROW(p.ordinality, p.run_id, d.status, d.reason, t.state_type, t.state_name, t.state_timestamp, t.run_count,
                       d.new_type, d.new_name, CASE WHEN d.status = 'ACCEPTED' THEN p.message ELSE concat_ws(' — ', p.message, d.reason) END,
                       p.result, d.next_start, p.pause_expires, p.transition_id, NULL,
                       d.status IN ('ACCEPTED', 'REDIRECTED'), d.new_attempt,
                       d.admit AND d.status = 'ACCEPTED' AND d.new_type = 'RUNNING', NULL)::pgflow._decision
               END
          FROM unnest(p_proposals) WITH ORDINALITY p
          JOIN pgflow.task_runs t ON t.id = p.run_id
          CROSS JOIN LATERAL (SELECT coalesce(v_at[p.ordinality], p_now) AS at) a
          LEFT JOIN pgflow.task_run_states h ON p.transition_id IS NOT NULL AND h.transition_id = p.transition_id
                                            AND h.task_run_id = p.run_id
          LEFT JOIN pgflow.task_run_cache c ON c.cache_key = t.cache_key AND NOT t.cache_refresh
                                           AND (c.expires_at IS NULL OR c.expires_at > a.at)
          CROSS JOIN LATERAL pgflow._decide('task run', t.state_type, t.state_name, t.next_scheduled_start,
                   t.run_count, t.retries, t.retry_backoff, t.retry_delays, t.retry_jitter, t.pause_expires_at,
                   NULL, p.state_type, p.state_name, p.scheduled_time, NULL, p_allow_retry, a.at) d
         ORDER BY p.ordinality);

    v_admit := ARRAY(SELECT d.run_id FROM unnest(v_dec) d WHERE d.admit ORDER BY d.ord);
    IF cardinality(v_admit) > 0 THEN
        v_dec := ARRAY(
            WITH took AS (SELECT * FROM pgflow._take_slots(ARRAY(
                    SELECT ROW(t.id, 'task_run', t.id,
                               ARRAY(SELECT l.id FROM pgflow.concurrency_limits l
                                      WHERE l.name IN (SELECT 'tag:' || g FROM unnest(t.tags) g) AND l.active),
                               1, NULL)::pgflow._slot_request
                      FROM unnest(v_admit) WITH ORDINALITY a(id, ord) JOIN pgflow.task_runs t ON t.id = a.id
                     ORDER BY a.ord), p_now))
            SELECT CASE WHEN t.granted IS NOT FALSE THEN d ELSE
                       ROW(d.ord, d.run_id, 'WAIT',
                           'waiting for a slot in: ' || (SELECT string_agg(c.name, ', ') FROM pgflow.concurrency_limits c
                                                         WHERE c.id = ANY (t.full_limits)),
                           d.old_type, d.old_name, d.old_at, d.old_run_count, 'SCHEDULED', 'AwaitingConcurrencySlot',
                           'waiting for a slot in: ' || (SELECT string_agg(c.name, ', ') FROM pgflow.concurrency_limits c
                                                         WHERE c.id = ANY (t.full_limits)),
                           d.result, coalesce(v_at[d.ord], p_now), NULL, d.transition_id, NULL,
                           d.old_name <> 'AwaitingConcurrencySlot', false, false, t.full_limits)::pgflow._decision
                   END
              FROM unnest(v_dec) d LEFT JOIN took t ON t.lease_id = d.run_id
             ORDER BY d.ord);
    END IF;

    WITH d AS (SELECT d.*, coalesce(v_at[d.ord], p_now) AS at FROM unnest(v_dec) d WHERE d.write),
    upd AS (
        UPDATE pgflow.task_runs r SET
            state_type = d.new_type, state_name = d.new_name, state_timestamp = d.at, state_message = d.message,
            run_count = r.run_count + d.new_attempt::integer,
            start_time = CASE WHEN d.new_type = 'RUNNING' THEN coalesce(r.start_time, d.at) ELSE r.start_time END,
            end_time = CASE WHEN pgflow.is_terminal(d.new_type) THEN d.at END,
            total_run_time = r.total_run_time + CASE WHEN r.state_type = 'RUNNING' THEN d.at - r.state_timestamp ELSE interval '0' END,
            next_scheduled_start = CASE WHEN d.new_type = 'SCHEDULED' THEN d.next_start END,
            pause_expires_at = CASE WHEN d.new_type = 'PAUSED' THEN d.pause_expires END
          FROM d WHERE r.id = d.run_id
        RETURNING r.id, r.cache_key, r.cache_expiration),
    hist AS (
        INSERT INTO pgflow.task_run_states (task_run_id, state_type, state_name, "timestamp", message, scheduled_time, transition_id)
        SELECT d.run_id, d.new_type, d.new_name, d.at, d.message, d.next_start, d.transition_id FROM d),
    release AS (
        DELETE FROM pgflow.concurrency_slots s USING d
         WHERE s.lease_id = d.run_id AND NOT pgflow._holds_slots(d.new_type, d.new_name)),
    results AS (
        INSERT INTO pgflow.results (run_id, value, created_at)
        SELECT d.run_id, d.result, d.at FROM d WHERE d.result IS NOT NULL
        ON CONFLICT (run_id) DO UPDATE SET value = excluded.value, created_at = excluded.created_at),
    cache AS (
        INSERT INTO pgflow.task_run_cache (cache_key, value, task_run_id, created_at, expires_at)
        SELECT u.cache_key, coalesce(d.result, 'null'), d.run_id, d.at, d.at + u.cache_expiration
          FROM d JOIN upd u ON u.id = d.run_id
         WHERE d.new_type = 'COMPLETED' AND d.new_name = 'Completed' AND u.cache_key IS NOT NULL
        ON CONFLICT (cache_key) DO UPDATE SET value = excluded.value, task_run_id = excluded.task_run_id,
                                              created_at = excluded.created_at, expires_at = excluded.expires_at)
    SELECT NULL INTO v_admit;

    RETURN QUERY
    SELECT d.run_id, d.status, d.reason, d.new_type, d.new_name,
           CASE WHEN d.write THEN coalesce(v_at[d.ord], p_now) ELSE d.old_at END,
           d.next_start, d.old_run_count + d.new_attempt::integer, d.result
      FROM unnest(v_dec) d ORDER BY d.ord;
END $$;

-- ============================================================================================
-- Functions, part 4: the public state API
-- ============================================================================================
-- Internal: checks a batch (equal lengths, known runs, no run twice, valid states) and builds proposals.
-- p_timestamps is only checked for its length (the transition functions take it separately).
CREATE FUNCTION pgflow._proposals(
    p_table text, p_run_ids uuid[], p_state_types text[], p_state_names text[], p_messages text[],
    p_results jsonb[], p_transition_ids uuid[], p_timestamps timestamptz[] DEFAULT NULL
) RETURNS pgflow._proposal[]
LANGUAGE plpgsql AS $$
DECLARE
    v_n       integer := coalesce(cardinality(p_run_ids), 0);
    v_missing uuid;
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
    RETURN ARRAY(
        SELECT ROW(x.id, s.state_type, s.state_name, x.msg, x.res, NULL, NULL, x.tid, NULL)::pgflow._proposal
          FROM unnest(p_run_ids, p_state_types, coalesce(p_state_names, array_fill(NULL::text, ARRAY[v_n])),
                      coalesce(p_messages, array_fill(NULL::text, ARRAY[v_n])),
                      coalesce(p_results, array_fill(NULL::jsonb, ARRAY[v_n])),
                      coalesce(p_transition_ids, array_fill(NULL::uuid, ARRAY[v_n]))) WITH ORDINALITY
               AS x(id, st, sn, msg, res, tid, ord)
         CROSS JOIN LATERAL pgflow._parse_state(x.st, x.sn) s
         ORDER BY x.ord);
END $$;

-- Proposes a new state for a flow run; returns what happened (see pgflow.transition_result).
-- p_scheduled_time: when a SCHEDULED run is due; p_pause_expires_at: when a PAUSED run fails;
-- p_transition_id: a client id that makes retries of this call idempotent; p_agent_id: the agent
-- proposing (rejected if the run belongs to another); p_process_id: recorded on the run;
-- p_allow_retry false: a failure is written Failed even with retries left (a retry condition refused it).
CREATE FUNCTION pgflow.set_flow_run_state(
    p_flow_run_id      uuid,
    p_state_type       text,
    p_state_name       text        DEFAULT NULL,
    p_message          text        DEFAULT NULL,
    p_result           jsonb       DEFAULT NULL,
    p_scheduled_time   timestamptz DEFAULT NULL,
    p_pause_expires_at timestamptz DEFAULT NULL,
    p_transition_id    uuid        DEFAULT NULL,
    p_agent_id         uuid        DEFAULT NULL,
    p_process_id       text        DEFAULT NULL,
    p_now              timestamptz DEFAULT now(),
    p_allow_retry      boolean     DEFAULT true
) RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_p pgflow._proposal;
BEGIN
    v_p := (pgflow._proposals('flow_runs', ARRAY[p_flow_run_id], ARRAY[p_state_type], ARRAY[p_state_name],
                              ARRAY[p_message], ARRAY[p_result], ARRAY[p_transition_id]))[1];
    v_p.scheduled_time := p_scheduled_time;
    v_p.pause_expires := p_pause_expires_at;
    v_p.process_id := p_process_id;
    RETURN (SELECT t FROM pgflow._transition_flow_runs(ARRAY[v_p], p_agent_id, p_now, false, p_allow_retry) t);
END $$;

-- Many flow run transitions in one call (the agent's hot path), same rules; one result per run, in order.
CREATE FUNCTION pgflow.set_flow_run_states(
    p_run_ids        uuid[],
    p_state_types    text[],
    p_state_names    text[]      DEFAULT NULL,
    p_messages       text[]      DEFAULT NULL,
    p_results        jsonb[]     DEFAULT NULL,
    p_transition_ids uuid[]      DEFAULT NULL,
    p_agent_id       uuid        DEFAULT NULL,
    p_now            timestamptz DEFAULT now(),
    p_allow_retry    boolean     DEFAULT true
) RETURNS SETOF pgflow.transition_result
LANGUAGE sql AS $$
    SELECT * FROM pgflow._transition_flow_runs(
        pgflow._proposals('flow_runs', p_run_ids, p_state_types, p_state_names, p_messages, p_results, p_transition_ids),
        p_agent_id, p_now, false, p_allow_retry)
$$;

-- Proposes a new state for a task run (cache and tag limits included); p_allow_retry as for flow runs.
CREATE FUNCTION pgflow.set_task_run_state(
    p_task_run_id      uuid,
    p_state_type       text,
    p_state_name       text        DEFAULT NULL,
    p_message          text        DEFAULT NULL,
    p_result           jsonb       DEFAULT NULL,
    p_scheduled_time   timestamptz DEFAULT NULL,
    p_pause_expires_at timestamptz DEFAULT NULL,
    p_transition_id    uuid        DEFAULT NULL,
    p_now              timestamptz DEFAULT now(),
    p_allow_retry      boolean     DEFAULT true
) RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_p pgflow._proposal;
BEGIN
    v_p := (pgflow._proposals('task_runs', ARRAY[p_task_run_id], ARRAY[p_state_type], ARRAY[p_state_name],
                              ARRAY[p_message], ARRAY[p_result], ARRAY[p_transition_id]))[1];
    v_p.scheduled_time := p_scheduled_time;
    v_p.pause_expires := p_pause_expires_at;
    RETURN (SELECT t FROM pgflow._transition_task_runs(ARRAY[v_p], p_allow_retry, p_now) t);
END $$;

-- Many task run transitions in one call (the SDK's hot path). p_timestamps: when each transition
-- really happened (the SDK records them after the fact), used for the state's time, start, end and
-- run time; NULL (or a NULL element): p_now. A time before the run's current state's time counts as that time.
CREATE FUNCTION pgflow.set_task_run_states(
    p_run_ids        uuid[],
    p_state_types    text[],
    p_state_names    text[]        DEFAULT NULL,
    p_messages       text[]        DEFAULT NULL,
    p_results        jsonb[]       DEFAULT NULL,
    p_transition_ids uuid[]        DEFAULT NULL,
    p_now            timestamptz   DEFAULT now(),
    p_timestamps     timestamptz[] DEFAULT NULL,
    p_allow_retry    boolean       DEFAULT true
) RETURNS SETOF pgflow.transition_result
LANGUAGE sql AS $$
    SELECT * FROM pgflow._transition_task_runs(
        pgflow._proposals('task_runs', p_run_ids, p_state_types, p_state_names, p_messages, p_results, p_transition_ids,
                          p_timestamps),
        p_allow_retry, p_now, p_timestamps)
$$;

-- Cancels a flow run: a SCHEDULED (or Suspended) run becomes Cancelled at once; a run with a process
-- becomes Cancelling and its agent is told on channel pgflow_cancel (payload: the run id).
CREATE FUNCTION pgflow.cancel_flow_run(p_flow_run_id uuid, p_message text DEFAULT NULL, p_now timestamptz DEFAULT now())
RETURNS pgflow.transition_result
LANGUAGE sql AS $$
    SELECT pgflow.set_flow_run_state(p_flow_run_id, 'CANCELLING', p_message => coalesce(p_message, 'cancelled by request'),
                                     p_now => p_now)
$$;

-- Resumes a paused run: Paused -> Running (its process goes on), Suspended -> Scheduled (an agent
-- runs it again). Either way channel pgflow_resume gets the run id. A run past its pause timeout fails.
CREATE FUNCTION pgflow.resume_flow_run(p_flow_run_id uuid, p_now timestamptz DEFAULT now())
RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_run pgflow.flow_runs;
BEGIN
    SELECT * INTO v_run FROM pgflow.flow_runs WHERE id = p_flow_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    IF v_run.state_type <> 'PAUSED' THEN
        RETURN ROW(v_run.id, 'REJECTED', format('only a PAUSED flow run can be resumed, this one is %s', v_run.state_type),
                   v_run.state_type, v_run.state_name, v_run.state_timestamp, v_run.next_scheduled_start,
                   v_run.run_count, NULL)::pgflow.transition_result;
    END IF;
    RETURN pgflow.set_flow_run_state(p_flow_run_id,
                                     CASE WHEN v_run.state_name = 'Suspended' THEN 'SCHEDULED' ELSE 'RUNNING' END,
                                     p_message => 'resumed', p_now => p_now);
END $$;

-- The explicit retry: a terminal flow run goes back to Scheduled (now, or p_scheduled_time) in its
-- work queue; run_count is kept.
CREATE FUNCTION pgflow.retry_flow_run(p_flow_run_id uuid, p_scheduled_time timestamptz DEFAULT NULL,
                                      p_now timestamptz DEFAULT now())
RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_run pgflow.flow_runs;
BEGIN
    SELECT * INTO v_run FROM pgflow.flow_runs WHERE id = p_flow_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    IF v_run.work_queue_id IS NULL THEN
        RAISE EXCEPTION 'pgflow: flow run % has no work queue, so no agent can run it again', p_flow_run_id
            USING ERRCODE = '55000', HINT = 'only runs of deployments can be retried; run an ad-hoc flow again from its program';
    END IF;
    IF NOT pgflow.is_terminal(v_run.state_type) THEN
        RETURN ROW(v_run.id, 'REJECTED', format('only a terminal flow run can be retried, this one is %s', v_run.state_type),
                   v_run.state_type, v_run.state_name, v_run.state_timestamp, v_run.next_scheduled_start,
                   v_run.run_count, NULL)::pgflow.transition_result;
    END IF;
    UPDATE pgflow.flow_runs
       SET state_type = 'SCHEDULED', state_name = 'Scheduled', state_timestamp = p_now,
           state_message = 'retried by request', next_scheduled_start = coalesce(p_scheduled_time, p_now),
           end_time = NULL, agent_id = NULL, process_id = NULL, pause_expires_at = NULL
     WHERE id = p_flow_run_id;
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, scheduled_time)
    VALUES (p_flow_run_id, 'SCHEDULED', 'Scheduled', p_now, 'retried by request', coalesce(p_scheduled_time, p_now));
    INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at)
    VALUES (p_flow_run_id, v_run.work_queue_id, coalesce(p_scheduled_time, p_now));
    RETURN ROW(v_run.id, 'ACCEPTED', NULL, 'SCHEDULED', 'Scheduled', p_now, coalesce(p_scheduled_time, p_now),
               v_run.run_count, NULL)::pgflow.transition_result;
END $$;

-- ============================================================================================
-- Functions, part 5: enqueue and claim (the hot path)
-- ============================================================================================
-- Internal: inserts Scheduled runs of a deployment (their history row and queue entry too) in one
-- statement; a run whose idempotency key or (deployment, scheduled start) of a schedule exists
-- already is skipped. Returns the new ids.
CREATE FUNCTION pgflow._enqueue_runs(
    p_deployment_id uuid, p_parameters jsonb[], p_times timestamptz[], p_tags text[], p_idempotency_keys text[],
    p_names text[], p_work_queue_id uuid, p_parent_task_run_id uuid, p_schedule_id uuid, p_now timestamptz
) RETURNS SETOF uuid
LANGUAGE sql AS $$
    WITH d AS (SELECT * FROM pgflow.deployments WHERE id = p_deployment_id),
    x AS (SELECT * FROM unnest(p_parameters, p_times, p_idempotency_keys, p_names) WITH ORDINALITY
                        AS x(params, at, key, name, ord)),
    ins AS (
        INSERT INTO pgflow.flow_runs (name, flow_id, deployment_id, work_queue_id, deployment_schedule_id, parameters,
                                      tags, idempotency_key, parent_task_run_id, retries, retry_delays, retry_backoff,
                                      retry_jitter, expected_start_time, next_scheduled_start, state_type, state_name,
                                      state_timestamp, created_at)
        SELECT coalesce(x.name, pgflow.random_run_name()), d.flow_id, d.id, coalesce(p_work_queue_id, d.work_queue_id),
               p_schedule_id, d.parameters || coalesce(x.params, '{}'),
               ARRAY(SELECT DISTINCT t FROM unnest(d.tags || coalesce(p_tags, '{}')) t ORDER BY t),
               x.key, p_parent_task_run_id, d.retries, d.retry_delays, d.retry_backoff, d.retry_jitter,
               coalesce(x.at, p_now), coalesce(x.at, p_now), 'SCHEDULED', 'Scheduled', p_now, p_now
          FROM x CROSS JOIN d ORDER BY x.ord
        ON CONFLICT DO NOTHING
        RETURNING id, work_queue_id, expected_start_time),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", scheduled_time)
        SELECT id, 'SCHEDULED', 'Scheduled', p_now, expected_start_time FROM ins),
    q AS (
        INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at)
        SELECT id, work_queue_id, expected_start_time FROM ins)
    SELECT id FROM ins
$$;

-- Enqueues a run of a deployment ('flow/deployment', or a deployment name only one flow uses) and
-- returns its id. Parameters are merged over the deployment's defaults, tags added to its tags.
-- With an idempotency key that was used before for this flow, returns that run instead.
CREATE FUNCTION pgflow.run_deployment(
    p_name               text,
    p_parameters         jsonb       DEFAULT '{}',
    p_scheduled_time     timestamptz DEFAULT NULL,
    p_idempotency_key    text        DEFAULT NULL,
    p_tags               text[]      DEFAULT NULL,
    p_flow_run_name      text        DEFAULT NULL,
    p_work_queue         text        DEFAULT NULL,
    p_parent_task_run_id uuid        DEFAULT NULL,
    p_now                timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_dep_id uuid := pgflow._deployment_id(p_name);
    v_id     uuid;
BEGIN
    PERFORM pgflow._check_parameters(p_parameters);
    PERFORM pgflow._check_tags(p_tags);
    IF p_parent_task_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.task_runs WHERE id = p_parent_task_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown parent task run %', p_parent_task_run_id
            USING ERRCODE = 'P0002', HINT = 'pass the id pgflow.create_task_run returned, or NULL';
    END IF;
    SELECT e INTO v_id FROM pgflow._enqueue_runs(v_dep_id, ARRAY[p_parameters], ARRAY[p_scheduled_time], p_tags,
                                                 ARRAY[p_idempotency_key], ARRAY[p_flow_run_name],
                                                 CASE WHEN p_work_queue IS NOT NULL THEN pgflow._work_queue_id(p_work_queue) END,
                                                 p_parent_task_run_id, NULL, p_now) e;
    IF v_id IS NULL THEN  -- the idempotency key was used before
        SELECT r.id INTO v_id FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.flow_id = r.flow_id
         WHERE d.id = v_dep_id AND r.idempotency_key = p_idempotency_key;
    END IF;
    RETURN v_id;
END $$;

-- Enqueues many runs of one deployment in one statement (one NOTIFY); returns their ids.
CREATE FUNCTION pgflow.run_deployments(
    p_name           text,
    p_parameters     jsonb[],
    p_scheduled_time timestamptz DEFAULT NULL,
    p_tags           text[]      DEFAULT NULL,
    p_now            timestamptz DEFAULT now()
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_dep_id uuid := pgflow._deployment_id(p_name);
    v_n      integer := coalesce(cardinality(p_parameters), 0);
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_parameters) p WHERE p IS NULL OR jsonb_typeof(p) <> 'object') THEN
        RAISE EXCEPTION 'pgflow: every element of the parameters array must be a JSON object'
            USING ERRCODE = '22023', HINT = 'pass ARRAY[''{"day": 1}'', ''{}'']::jsonb[]';
    END IF;
    PERFORM pgflow._check_tags(p_tags);
    RETURN QUERY SELECT * FROM pgflow._enqueue_runs(v_dep_id, p_parameters, array_fill(p_scheduled_time, ARRAY[v_n]), p_tags,
                                                    array_fill(NULL::text, ARRAY[v_n]), array_fill(NULL::text, ARRAY[v_n]),
                                                    NULL, NULL, NULL, p_now);
END $$;

-- Creates an ad-hoc flow run (no deployment; local mode, subflows) in PENDING, or RUNNING at once
-- (p_state_type 'RUNNING'; if a tag limit is full it waits in AwaitingConcurrencySlot instead).
-- p_agent_id: an agent whose heartbeat keeps the run alive (else the reaper never touches it).
CREATE FUNCTION pgflow.create_flow_run(
    p_flow_name          text,
    p_parameters         jsonb       DEFAULT '{}',
    p_name               text        DEFAULT NULL,
    p_tags               text[]      DEFAULT '{}',
    p_parent_task_run_id uuid        DEFAULT NULL,
    p_state_type         text        DEFAULT 'PENDING',
    p_idempotency_key    text        DEFAULT NULL,
    p_retries            integer     DEFAULT 0,
    p_retry_delays       float8[]    DEFAULT '{0}',
    p_retry_backoff      text        DEFAULT 'fixed',
    p_retry_jitter       float8      DEFAULT 0,
    p_agent_id           uuid        DEFAULT NULL,
    p_now                timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_flow_id uuid;
    v_id      uuid;
BEGIN
    IF upper(p_state_type) IS DISTINCT FROM 'PENDING' AND upper(p_state_type) IS DISTINCT FROM 'RUNNING' THEN
        RAISE EXCEPTION 'pgflow: an ad-hoc flow run starts PENDING or RUNNING, not %', coalesce(quote_literal(p_state_type), 'NULL')
            USING ERRCODE = '22023', HINT = 'to schedule runs for agents, create a deployment and use pgflow.run_deployment';
    END IF;
    PERFORM pgflow._check_parameters(p_parameters);
    PERFORM pgflow._check_retry_policy(p_retries, p_retry_backoff, p_retry_delays, p_retry_jitter);
    IF p_parent_task_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.task_runs WHERE id = p_parent_task_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown parent task run %', p_parent_task_run_id
            USING ERRCODE = 'P0002', HINT = 'pass the id pgflow.create_task_run returned, or NULL';
    END IF;
    IF p_agent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.agents WHERE id = p_agent_id) THEN
        RAISE EXCEPTION 'pgflow: unknown agent %', p_agent_id
            USING ERRCODE = 'P0002', HINT = 'register one with pgflow.register_agent, or pass NULL';
    END IF;
    v_flow_id := pgflow._flow_id(p_flow_name);
    INSERT INTO pgflow.flow_runs (name, flow_id, parameters, tags, idempotency_key, parent_task_run_id, retries,
                                  retry_delays, retry_backoff, retry_jitter, expected_start_time, state_type,
                                  state_name, state_timestamp, agent_id, created_at)
    VALUES (coalesce(p_name, pgflow.random_run_name()), v_flow_id, p_parameters, pgflow._check_tags(p_tags),
            p_idempotency_key, p_parent_task_run_id, p_retries, p_retry_delays, p_retry_backoff, p_retry_jitter,
            p_now, 'PENDING', 'Pending', p_now, p_agent_id, p_now)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN  -- the idempotency key was used before
        SELECT id INTO v_id FROM pgflow.flow_runs WHERE flow_id = v_flow_id AND idempotency_key = p_idempotency_key;
        RETURN v_id;
    END IF;
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
    VALUES (v_id, 'PENDING', 'Pending', p_now);
    IF upper(p_state_type) = 'RUNNING' THEN
        PERFORM pgflow._transition_flow_runs(ARRAY[ROW(v_id, 'RUNNING', 'Running', NULL, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal],
                                             p_agent_id, p_now);
    END IF;
    RETURN v_id;
END $$;

-- Creates task runs of a flow run in PENDING, many in one statement, or returns the existing one
-- with the same (flow run, task key, dynamic key), so a retried flow finds its earlier task runs;
-- one id per task key, in input order (a key given twice gets one task run). The arrays run in
-- parallel, one element per task run; a NULL array gives every run the default, a NULL element the
-- default of that run: dynamic key '0', name '<task key>-<dynamic key>', no tags, no cache key (no
-- expiry), created at p_now, no cache refresh; inputs and the retry policy take no NULL elements
-- (NULL arrays: '{}', no retries). Tags and retry delays are array literals ('{etl,gpu}', '{1,10}'),
-- since SQL arrays do not nest. p_cache_refresh: the run ignores the cache on its way to Running (it
-- runs) and its result replaces the entry.
CREATE FUNCTION pgflow.create_task_runs(
    p_flow_run_id       uuid,
    p_task_keys         text[],
    p_dynamic_keys      text[]        DEFAULT NULL,
    p_names             text[]        DEFAULT NULL,
    p_inputs            jsonb[]       DEFAULT NULL,
    p_tags              text[]        DEFAULT NULL,
    p_cache_keys        text[]        DEFAULT NULL,
    p_cache_expirations interval[]    DEFAULT NULL,
    p_retries           integer[]     DEFAULT NULL,
    p_retry_delays      text[]        DEFAULT NULL,
    p_retry_backoffs    text[]        DEFAULT NULL,
    p_retry_jitters     float8[]      DEFAULT NULL,
    p_created_at        timestamptz[] DEFAULT NULL,
    p_cache_refresh     boolean[]     DEFAULT NULL,
    p_now               timestamptz   DEFAULT now()
) RETURNS SETOF uuid
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_n     integer := coalesce(cardinality(p_task_keys), 0);
    v_state pgflow.state_type;
    v_bad   record;
    v_ids   uuid[];
BEGIN
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
       OR coalesce(cardinality(p_created_at), v_n) <> v_n OR coalesce(cardinality(p_cache_refresh), v_n) <> v_n THEN
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

    -- the first bad task run, in input order (the rules of every run; the messages of create_task_run)
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
    -- retry policies: each distinct one once (a batch of one task's runs shares one)
    PERFORM pgflow._check_retry_policy(r.retries, r.backoff, r.delays::float8[], r.jitter)
       FROM (SELECT DISTINCT x.retries, x.backoff, x.delays, x.jitter
               FROM unnest(p_retries, p_retry_backoffs, p_retry_delays, p_retry_jitters) x(retries, backoff, delays, jitter)) r;
    IF pgflow.is_terminal(v_state) AND EXISTS (
            SELECT 1 FROM unnest(p_task_keys, p_dynamic_keys) x(k, d)
             WHERE NOT EXISTS (SELECT 1 FROM pgflow.task_runs t
                                WHERE t.flow_run_id = p_flow_run_id AND t.task_key = x.k AND t.dynamic_key = coalesce(x.d, '0'))) THEN
        RAISE EXCEPTION 'pgflow: flow run % is %, it cannot get new task runs', p_flow_run_id, v_state
            USING ERRCODE = '55000', HINT = 'create task runs while the flow run is RUNNING';
    END IF;

    WITH x AS MATERIALIZED (
        SELECT x.ord, x.k, coalesce(x.d, '0') AS d, x.n, x.i, x.t, x.ck, x.ce, x.r, x.rd, x.rb, x.rj,
               coalesce(x.ts, p_now) AS ts, coalesce(x.cr, false) AS cr
          FROM unnest(p_task_keys, p_dynamic_keys, p_names, p_inputs, p_tags, p_cache_keys, p_cache_expirations,
                      p_retries, p_retry_delays, p_retry_backoffs, p_retry_jitters, p_created_at, p_cache_refresh)
               WITH ORDINALITY AS x(k, d, n, i, t, ck, ce, r, rd, rb, rj, ts, cr, ord)),
    ins AS (
        INSERT INTO pgflow.task_runs (flow_run_id, task_key, dynamic_key, name, inputs, tags, cache_key, cache_expiration,
                                      cache_refresh, retries, retry_delays, retry_backoff, retry_jitter,
                                      expected_start_time, state_type, state_name, state_timestamp, created_at)
        SELECT p_flow_run_id, x.k, x.d, coalesce(x.n, x.k || '-' || x.d), x.i,
               CASE WHEN x.t IS NULL OR x.t = '{}' THEN '{}' ELSE pgflow._check_tags(x.t::text[]) END,
               x.ck, x.ce, x.cr, x.r, x.rd::float8[], x.rb, x.rj, x.ts, 'PENDING', 'Pending', x.ts, x.ts
          FROM x ORDER BY x.ord
        ON CONFLICT (flow_run_id, task_key, dynamic_key) DO NOTHING
        RETURNING id, task_key, dynamic_key, created_at),
    hist AS (
        INSERT INTO pgflow.task_run_states (task_run_id, state_type, state_name, "timestamp")
        SELECT i.id, 'PENDING', 'Pending', i.created_at FROM ins i)
    SELECT array_agg(i.id ORDER BY x.ord) INTO v_ids
      FROM x LEFT JOIN ins i ON i.task_key = x.k AND i.dynamic_key = x.d;

    IF array_position(v_ids, NULL) IS NOT NULL THEN  -- existing task runs (this statement sees ones a concurrent call just made)
        v_ids := ARRAY(SELECT coalesce(v_ids[x.ord], t.id)
                         FROM unnest(p_task_keys, p_dynamic_keys) WITH ORDINALITY x(k, d, ord)
                         LEFT JOIN pgflow.task_runs t
                                ON t.flow_run_id = p_flow_run_id AND t.task_key = x.k AND t.dynamic_key = coalesce(x.d, '0')
                        ORDER BY x.ord);
    END IF;
    RETURN QUERY SELECT x.id FROM unnest(v_ids) WITH ORDINALITY x(id, ord) ORDER BY x.ord;
END $$;

-- Creates one task run (see create_task_runs), or returns the existing one with the same key.
CREATE FUNCTION pgflow.create_task_run(
    p_flow_run_id      uuid,
    p_task_key         text,
    p_dynamic_key      text        DEFAULT '0',
    p_name             text        DEFAULT NULL,
    p_inputs           jsonb       DEFAULT '{}',
    p_tags             text[]      DEFAULT '{}',
    p_cache_key        text        DEFAULT NULL,
    p_cache_expiration interval    DEFAULT NULL,
    p_retries          integer     DEFAULT 0,
    p_retry_delays     float8[]    DEFAULT '{0}',
    p_retry_backoff    text        DEFAULT 'fixed',
    p_retry_jitter     float8      DEFAULT 0,
    p_now              timestamptz DEFAULT now(),
    p_cache_refresh    boolean     DEFAULT false
) RETURNS uuid
LANGUAGE sql AS $$
    SELECT pgflow.create_task_runs(p_flow_run_id, ARRAY[p_task_key], ARRAY[p_dynamic_key], ARRAY[p_name], ARRAY[p_inputs],
                                   ARRAY[p_tags::text], ARRAY[p_cache_key], ARRAY[p_cache_expiration], ARRAY[p_retries],
                                   ARRAY[p_retry_delays::text], ARRAY[p_retry_backoff], ARRAY[p_retry_jitter],
                                   ARRAY[p_now], ARRAY[p_cache_refresh], p_now)
$$;

-- Claims up to p_max due runs for an agent from its work queues (p_queues, or the queues it registered
-- with): paused queues skipped, highest priority (lowest number) first, then earliest scheduled time.
-- The runs move to Pending (and on to Running in the same statement with p_start: both states are recorded) owned by the agent, after taking
-- their queue / deployment / tag concurrency slots; a run a limit blocks goes to
-- AwaitingConcurrencySlot (or Cancelled, for a deployment with collision strategy CANCEL_NEW) and is
-- not returned. Two claimers never get one run: queue rows and runs are locked FOR UPDATE SKIP LOCKED.
CREATE FUNCTION pgflow.claim_flow_runs(
    p_agent_id uuid,
    p_queues   text[]      DEFAULT NULL,
    p_max      integer     DEFAULT 1,
    p_start    boolean     DEFAULT false,
    p_now      timestamptz DEFAULT now()
) RETURNS TABLE (
    flow_run_id         uuid,
    flow_run_name       text,
    flow_name           text,
    deployment_id       uuid,
    deployment_name     text,
    entrypoint          text,
    parameters          jsonb,
    tags                text[],
    work_queue          text,
    state_type          pgflow.state_type,
    state_name          text,
    run_count           integer,
    expected_start_time timestamptz,
    parent_task_run_id  uuid
)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    v_status  text;
    v_queues  text[];
    v_qids    uuid[];
    v_full    uuid[];
    v_cand    uuid[];
    v_locked  uuid[];
    v_results pgflow.transition_result[];
BEGIN
    IF p_max IS NULL OR p_max < 1 THEN
        RAISE EXCEPTION 'pgflow: claim at least one run, not %', coalesce(p_max::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 or more';
    END IF;
    SELECT a.status, coalesce(nullif(p_queues, '{}'), a.work_queues) INTO v_status, v_queues
      FROM pgflow.agents a WHERE a.id = p_agent_id;
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown agent %', coalesce(p_agent_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'register with SELECT pgflow.register_agent(name, queues) and claim with its id';
    END IF;
    IF v_status <> 'ONLINE' THEN
        RAISE EXCEPTION 'pgflow: agent % is offline (its heartbeat lapsed or it deregistered)', p_agent_id
            USING ERRCODE = '55000', HINT = 'call pgflow.heartbeat(agent id) to come back, or register again';
    END IF;
    v_qids := ARRAY(SELECT q.id FROM pgflow.work_queues q WHERE q.name = ANY (v_queues) AND NOT q.paused);
    IF (SELECT count(*) FROM pgflow.work_queues q WHERE q.name = ANY (v_queues)) < cardinality(ARRAY(SELECT DISTINCT unnest(v_queues))) THEN
        RAISE EXCEPTION 'pgflow: unknown work queue in %', v_queues
            USING ERRCODE = 'P0002', HINT = 'create it with pgflow.create_work_queue(name)';
    END IF;

    -- the limits that are full now, among the queues' limits and those blocked runs wait for
    v_full := ARRAY(
        SELECT l.id FROM pgflow.concurrency_limits l
         WHERE l.active
           AND l.id IN (SELECT q.concurrency_limit_id FROM pgflow.work_queues q WHERE q.id = ANY (v_qids)
                        UNION
                        SELECT unnest(rq.blocked_on) FROM pgflow.run_queue rq
                         WHERE rq.work_queue_id = ANY (v_qids) AND rq.blocked_on IS NOT NULL)
           AND pgflow._free_slots(l.id, p_now) = 0);

    -- candidates: per queue its earliest due runs (locked, skipping rows another claimer holds),
    -- then merged in priority and time order
    v_cand := ARRAY(
        SELECT c.flow_run_id
          FROM pgflow.work_queues q
          CROSS JOIN LATERAL (
              SELECT rq.flow_run_id, rq.scheduled_at FROM pgflow.run_queue rq
               WHERE rq.work_queue_id = q.id AND rq.scheduled_at <= p_now
                 AND (rq.blocked_on IS NULL OR NOT rq.blocked_on && v_full)
               ORDER BY rq.scheduled_at
               LIMIT CASE WHEN q.concurrency_limit_id IS NULL THEN p_max  -- a limited queue: at most its free slots
                          ELSE least(p_max, pgflow._free_slots(q.concurrency_limit_id, p_now)) END
               FOR UPDATE SKIP LOCKED) c
         WHERE q.id = ANY (v_qids) AND (q.concurrency_limit_id IS NULL OR q.concurrency_limit_id <> ALL (v_full))
         ORDER BY q.priority, c.scheduled_at
         LIMIT p_max);
    IF cardinality(v_cand) = 0 THEN
        RETURN;
    END IF;

    -- lock the runs too (skipping any a concurrent transition holds), then move them
    v_locked := ARRAY(SELECT r.id FROM pgflow.flow_runs r WHERE r.id = ANY (v_cand) AND r.state_type = 'SCHEDULED'
                       ORDER BY r.id FOR UPDATE SKIP LOCKED);
    v_results := ARRAY(
        SELECT t FROM pgflow._transition_flow_runs(ARRAY(
                   SELECT ROW(c.id, 'PENDING'::pgflow.state_type, 'Pending', NULL, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
                     FROM unnest(v_cand) WITH ORDINALITY c(id, ord)
                    WHERE c.id = ANY (v_locked)
                    ORDER BY c.ord), p_agent_id, p_now, true) t);
    -- p_start: on to Running in the same statement (both states recorded), saving the agent a round trip
    IF p_start THEN
        v_results := ARRAY(
            SELECT t FROM pgflow._transition_flow_runs(ARRAY(
                       SELECT ROW(r.run_id, 'RUNNING'::pgflow.state_type, 'Running', NULL, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
                         FROM unnest(v_results) WITH ORDINALITY r
                        WHERE r.status = 'ACCEPTED'
                        ORDER BY r.ordinality), p_agent_id, p_now, true) t);
    END IF;

    RETURN QUERY
    SELECT r.id, r.name, f.name, d.id, d.name, d.entrypoint, r.parameters, r.tags, q.name,
           t.state_type, t.state_name, t.run_count, r.expected_start_time, r.parent_task_run_id
      FROM unnest(v_results) WITH ORDINALITY t
      JOIN pgflow.flow_runs r ON r.id = t.run_id
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
      LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
     WHERE t.status = 'ACCEPTED'
     ORDER BY t.ordinality;
END $$;

-- ============================================================================================
-- Functions, part 6: agents, heartbeats and the reaper (idempotent, safe to run in many processes)
-- ============================================================================================
CREATE FUNCTION pgflow.register_agent(p_name text, p_queues text[], p_now timestamptz DEFAULT now())
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_unknown text;
    v_id      uuid;
BEGIN
    IF p_name IS NULL OR p_name = '' THEN
        RAISE EXCEPTION 'pgflow: an agent needs a name' USING ERRCODE = '22023', HINT = 'pass e.g. the host name';
    END IF;
    IF coalesce(cardinality(p_queues), 0) = 0 THEN
        RAISE EXCEPTION 'pgflow: agent % serves no work queue', quote_literal(p_name)
            USING ERRCODE = '22023', HINT = 'pass ARRAY[''default'']';
    END IF;
    SELECT n INTO v_unknown FROM unnest(p_queues) n WHERE NOT EXISTS (SELECT 1 FROM pgflow.work_queues q WHERE q.name = n) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown work queue %', coalesce(quote_literal(v_unknown), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'create it with SELECT pgflow.create_work_queue(''' || coalesce(v_unknown, 'name') || ''')';
    END IF;
    INSERT INTO pgflow.agents (name, work_queues, registered_at, last_heartbeat_at)
    VALUES (p_name, p_queues, p_now, p_now) RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Refreshes the agent (the liveness of all its runs: one row write however many runs it has) and
-- returns the ids of its runs that are Cancelling, which the agent must stop.
CREATE FUNCTION pgflow.heartbeat(p_agent_id uuid, p_now timestamptz DEFAULT now())
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgflow.agents SET last_heartbeat_at = greatest(last_heartbeat_at, p_now), status = 'ONLINE'
     WHERE id = p_agent_id;
    IF NOT FOUND THEN
        PERFORM pgflow._unknown_agent(p_agent_id);
    END IF;
    RETURN QUERY SELECT r.id FROM pgflow.flow_runs r WHERE r.agent_id = p_agent_id AND r.state_type = 'CANCELLING';
END $$;

CREATE FUNCTION pgflow._unknown_agent(p_agent_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pgflow: unknown agent %', coalesce(p_agent_id::text, 'NULL')
        USING ERRCODE = 'P0002', HINT = 'register with SELECT pgflow.register_agent(name, queues)';
END $$;

-- Internal: ends the active runs of the given agents: Pending runs go back to the queue (p_give_back)
-- or crash, Running and Paused runs crash (a retry follows when retries are left), Cancelling runs
-- end Cancelled. Runs another transaction holds are skipped (the next pass gets them).
CREATE FUNCTION pgflow._end_agent_runs(p_agent_ids uuid[], p_why text, p_give_back boolean, p_now timestamptz)
RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*)::integer FROM pgflow._transition_flow_runs(ARRAY(
        SELECT ROW(r.id,
                   CASE WHEN r.state_type = 'CANCELLING' THEN 'CANCELLED'
                        WHEN r.state_type = 'PENDING' AND p_give_back THEN 'SCHEDULED'
                        ELSE 'CRASHED' END::pgflow.state_type,
                   CASE WHEN r.state_type = 'CANCELLING' THEN 'Cancelled'
                        WHEN r.state_type = 'PENDING' AND p_give_back THEN 'Scheduled'
                        ELSE 'Crashed' END,
                   p_why, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.flow_runs r
         WHERE r.agent_id = ANY (p_agent_ids) AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
           AND r.state_name <> 'Suspended'
         ORDER BY r.id
           FOR UPDATE SKIP LOCKED), NULL, p_now) t
     WHERE t.status IN ('ACCEPTED', 'REDIRECTED')
$$;

-- An agent shutting down: marks it offline, gives its Pending runs back to the queue, crashes the
-- runs it still runs. Returns how many runs changed.
CREATE FUNCTION pgflow.deregister_agent(p_agent_id uuid, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgflow.agents SET status = 'OFFLINE' WHERE id = p_agent_id;
    IF NOT FOUND THEN
        PERFORM pgflow._unknown_agent(p_agent_id);
    END IF;
    RETURN pgflow._end_agent_runs(ARRAY[p_agent_id], 'its agent deregistered', true, p_now);
END $$;

-- Marks agents silent for longer than p_heartbeat_timeout offline and crashes their Pending,
-- Running and Paused runs (retrying those with retries left; Cancelling ones end Cancelled),
-- releasing their slots. Returns how many runs it ended.
CREATE FUNCTION pgflow.reap_crashed_runs(p_heartbeat_timeout interval, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF p_heartbeat_timeout IS NULL OR p_heartbeat_timeout <= interval '0' THEN
        RAISE EXCEPTION 'pgflow: heartbeat timeout must be positive, got %', coalesce(p_heartbeat_timeout::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass a few heartbeat periods, e.g. interval ''90 seconds''';
    END IF;
    UPDATE pgflow.agents SET status = 'OFFLINE'
     WHERE status = 'ONLINE' AND last_heartbeat_at < p_now - p_heartbeat_timeout;
    RETURN pgflow._end_agent_runs(ARRAY(
        SELECT DISTINCT a.id FROM pgflow.flow_runs r JOIN pgflow.agents a ON a.id = r.agent_id
         WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
           AND (a.status = 'OFFLINE' OR a.last_heartbeat_at < p_now - p_heartbeat_timeout)),
        format('its agent stopped heartbeating (timeout %s)', p_heartbeat_timeout), false, p_now);
END $$;

-- Fails (TimedOut) the paused flow runs whose pause timeout has passed; returns how many.
CREATE FUNCTION pgflow.expire_paused_runs(p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*)::integer FROM pgflow._transition_flow_runs(ARRAY(
        SELECT ROW(r.id, 'FAILED', 'TimedOut', format('paused past its timeout (%s)', r.pause_expires_at),
                   NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.flow_runs r
         WHERE r.state_type = 'PAUSED' AND r.pause_expires_at <= p_now
         ORDER BY r.id
           FOR UPDATE SKIP LOCKED), NULL, p_now) t
     WHERE t.status IN ('ACCEPTED', 'REDIRECTED')
$$;

-- Marks Scheduled runs more than p_threshold past their start Late; returns how many.
CREATE FUNCTION pgflow.mark_late_runs(p_threshold interval, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*)::integer FROM pgflow._transition_flow_runs(ARRAY(
        SELECT ROW(r.id, 'SCHEDULED', 'Late', format('not started %s after its scheduled time', p_threshold),
                   NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.run_queue q JOIN pgflow.flow_runs r ON r.id = q.flow_run_id
         WHERE q.scheduled_at < p_now - p_threshold AND r.state_name = 'Scheduled'
         ORDER BY r.id
           FOR UPDATE OF r SKIP LOCKED), NULL, p_now) t
     WHERE t.status = 'ACCEPTED'
$$;

-- ============================================================================================
-- Functions, part 7: named global limits with leases
-- ============================================================================================
-- Takes p_slots slots in every named limit, all or nothing, for p_lease; returns the lease id, or
-- NULL when a limit is full now (try again later). A lease not renewed or released in time stops
-- counting by itself.
CREATE FUNCTION pgflow.acquire_concurrency_slots(
    p_names     text[],
    p_slots     integer     DEFAULT 1,
    p_lease     interval    DEFAULT interval '5 minutes',
    p_holder_id uuid        DEFAULT NULL,
    p_now       timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_ids     uuid[];
    v_unknown text;
    v_lease   uuid := gen_random_uuid();
    v_granted boolean;
BEGIN
    IF coalesce(cardinality(p_names), 0) = 0 THEN
        RAISE EXCEPTION 'pgflow: name at least one concurrency limit' USING ERRCODE = '22023', HINT = 'pass ARRAY[''db'']';
    END IF;
    IF p_slots IS NULL OR p_slots < 1 THEN
        RAISE EXCEPTION 'pgflow: acquire at least one slot, not %', coalesce(p_slots::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass p_slots => 1 or more';
    END IF;
    IF p_lease IS NULL OR p_lease <= interval '0' THEN
        RAISE EXCEPTION 'pgflow: a lease must be positive, got %', coalesce(p_lease::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass e.g. interval ''5 minutes'' and renew it with pgflow.renew_concurrency_lease';
    END IF;
    SELECT n INTO v_unknown FROM unnest(p_names) n
     WHERE NOT EXISTS (SELECT 1 FROM pgflow.concurrency_limits l WHERE l.name = n) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown concurrency limit %', coalesce(quote_literal(v_unknown), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'create it with SELECT pgflow.create_concurrency_limit(''' || coalesce(v_unknown, 'name') || ''', 10)';
    END IF;
    SELECT l.name INTO v_unknown FROM pgflow.concurrency_limits l
     WHERE l.name = ANY (p_names) AND l.active AND l.concurrency_limit < p_slots LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgflow: % slots can never be granted by limit %', p_slots, quote_literal(v_unknown)
            USING ERRCODE = '22023', HINT = 'ask for no more slots than the limit has';
    END IF;
    v_ids := ARRAY(SELECT id FROM pgflow.concurrency_limits WHERE name = ANY (p_names));
    SELECT t.granted INTO v_granted
      FROM pgflow._take_slots(ARRAY[ROW(v_lease, 'lease', p_holder_id, v_ids, p_slots, p_now + p_lease)::pgflow._slot_request], p_now) t;
    RETURN CASE WHEN v_granted THEN v_lease END;
END $$;

-- Releases a lease's slots; returns how many limits it held.
CREATE FUNCTION pgflow.release_concurrency_slots(p_lease_id uuid) RETURNS integer
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM pgflow.concurrency_slots WHERE lease_id = p_lease_id AND holder_kind = 'lease' RETURNING 1)
    SELECT count(*)::integer FROM d
$$;

-- Extends a lease that has not expired yet to now + p_lease; false if it is gone or expired.
CREATE FUNCTION pgflow.renew_concurrency_lease(p_lease_id uuid, p_lease interval DEFAULT interval '5 minutes',
                                               p_now timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE sql AS $$
    WITH u AS (UPDATE pgflow.concurrency_slots SET expires_at = p_now + p_lease
                WHERE lease_id = p_lease_id AND holder_kind = 'lease' AND expires_at > p_now RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM u)
$$;

-- Deletes expired leases (they stopped counting already); returns how many rows.
CREATE FUNCTION pgflow.release_expired_slots(p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM pgflow.concurrency_slots WHERE expires_at <= p_now RETURNING 1)
    SELECT count(*)::integer FROM d
$$;

-- ============================================================================================
-- Functions, part 8: schedules, logs, retention
-- ============================================================================================
-- Makes the future Scheduled runs of a schedule exactly p_times (computed by the scheduler): inserts
-- the missing ones (two schedulers never create one twice: unique (deployment, start)) and deletes
-- future Scheduled runs of the schedule not in the list. An inactive schedule or a paused deployment
-- wants none. Idempotent. The schedule row is key-share locked, so a concurrent
-- delete_deployment_schedule either waits for this or makes it raise P0002.
CREATE FUNCTION pgflow.schedule_flow_runs(p_deployment_schedule_id uuid, p_times timestamptz[],
                                          p_now timestamptz DEFAULT now())
RETURNS TABLE (inserted integer, deleted integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_s       pgflow.deployment_schedules;
    v_paused  boolean;
    v_times   timestamptz[];
    v_deleted integer;
BEGIN
    SELECT * INTO v_s FROM pgflow.deployment_schedules WHERE id = p_deployment_schedule_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown deployment schedule %', coalesce(p_deployment_schedule_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'create one with pgflow.create_deployment_schedule';
    END IF;
    IF array_position(p_times, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: schedule times must not be NULL' USING ERRCODE = '22023', HINT = 'pass timestamps';
    END IF;
    SELECT paused INTO v_paused FROM pgflow.deployments WHERE id = v_s.deployment_id;
    v_times := CASE WHEN v_s.active AND NOT v_paused
                    THEN ARRAY(SELECT DISTINCT t FROM unnest(coalesce(p_times, '{}')) t ORDER BY t) ELSE '{}' END;
    WITH d AS (
        DELETE FROM pgflow.flow_runs r
         WHERE r.deployment_id = v_s.deployment_id AND r.deployment_schedule_id = v_s.id
           AND r.deployment_schedule_id IS NOT NULL AND r.expected_start_time > p_now
           AND r.state_type = 'SCHEDULED' AND r.state_name = 'Scheduled'
           AND r.expected_start_time <> ALL (v_times)
        RETURNING r.id),
    s AS (DELETE FROM pgflow.flow_run_states h WHERE h.flow_run_id IN (SELECT id FROM d)),
    q AS (DELETE FROM pgflow.run_queue q WHERE q.flow_run_id IN (SELECT id FROM d))
    SELECT count(*) INTO v_deleted FROM d;
    inserted := (SELECT count(*) FROM pgflow._enqueue_runs(
                     v_s.deployment_id, array_fill(v_s.parameters, ARRAY[cardinality(v_times)]), v_times, NULL,
                     array_fill(NULL::text, ARRAY[cardinality(v_times)]), array_fill(NULL::text, ARRAY[cardinality(v_times)]),
                     NULL, NULL, v_s.id, p_now));
    deleted := v_deleted;
    RETURN NEXT;
END $$;

-- Writes many log lines in one statement; arrays of one length (p_task_run_ids and p_names may be
-- NULL; p_timestamps NULL means p_now). Returns how many.
CREATE FUNCTION pgflow.write_logs(
    p_flow_run_ids uuid[],
    p_levels       integer[],
    p_messages     text[],
    p_names        text[]        DEFAULT NULL,
    p_task_run_ids uuid[]        DEFAULT NULL,
    p_timestamps   timestamptz[] DEFAULT NULL,
    p_now          timestamptz   DEFAULT now()
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := coalesce(cardinality(p_messages), 0);
BEGIN
    IF coalesce(cardinality(p_flow_run_ids), 0) <> v_n OR coalesce(cardinality(p_levels), 0) <> v_n
       OR coalesce(cardinality(p_names), v_n) <> v_n OR coalesce(cardinality(p_task_run_ids), v_n) <> v_n
       OR coalesce(cardinality(p_timestamps), v_n) <> v_n THEN
        RAISE EXCEPTION 'pgflow: the arrays of write_logs must have one length (% messages)', v_n
            USING ERRCODE = '22023', HINT = 'pass one flow run id, level and message (and name, task run id, timestamp, or NULL arrays) per line';
    END IF;
    IF array_position(p_messages, NULL) IS NOT NULL OR array_position(p_levels, NULL) IS NOT NULL
       OR NOT (0 <= ALL (p_levels) AND 100 >= ALL (p_levels)) THEN
        RAISE EXCEPTION 'pgflow: log lines need a message and a level between 0 and 100'
            USING ERRCODE = '22023', HINT = 'levels: 10 debug, 20 info, 30 warning, 40 error, 50 critical';
    END IF;
    INSERT INTO pgflow.logs (flow_run_id, task_run_id, level, name, message, "timestamp")
    SELECT f, t, l, coalesce(n, ''), m, coalesce(ts, p_now)
      FROM unnest(p_flow_run_ids, p_levels, p_messages,
                  coalesce(p_names, array_fill(NULL::text, ARRAY[v_n])),
                  coalesce(p_task_run_ids, array_fill(NULL::uuid, ARRAY[v_n])),
                  coalesce(p_timestamps, array_fill(NULL::timestamptz, ARRAY[v_n]))) AS x(f, l, m, n, t, ts);
    RETURN v_n;
END $$;

CREATE FUNCTION pgflow.write_log(p_flow_run_id uuid, p_level integer, p_message text, p_name text DEFAULT '',
                                 p_task_run_id uuid DEFAULT NULL, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE sql AS $$
    SELECT pgflow.write_logs(ARRAY[p_flow_run_id], ARRAY[p_level], ARRAY[p_message], ARRAY[p_name],
                             ARRAY[p_task_run_id], NULL, p_now)
$$;

-- Deletes up to p_batch flow runs that ended more than p_older_than ago, with their states, task runs,
-- logs and results (call it until it returns less than p_batch). Also drops expired cache entries and
-- agents offline that long. Safe to run concurrently (SKIP LOCKED). Returns how many flow runs.
CREATE FUNCTION pgflow.delete_old_runs(p_older_than interval, p_batch integer DEFAULT 1000,
                                       p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ids   uuid[];
    v_tasks uuid[];
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' OR p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'pgflow: retention needs a non-negative age and a batch of 1 or more (got %, %)',
                        coalesce(p_older_than::text, 'NULL'), coalesce(p_batch::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. SELECT pgflow.delete_old_runs(interval ''30 days'', 1000)';
    END IF;
    v_ids := ARRAY(SELECT id FROM pgflow.flow_runs
                    WHERE end_time IS NOT NULL AND end_time < p_now - p_older_than
                      AND state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                    ORDER BY end_time LIMIT p_batch FOR UPDATE SKIP LOCKED);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    v_tasks := ARRAY(SELECT id FROM pgflow.task_runs WHERE flow_run_id = ANY (v_ids));
    DELETE FROM pgflow.logs WHERE flow_run_id = ANY (v_ids);
    DELETE FROM pgflow.results WHERE run_id = ANY (v_ids) OR run_id = ANY (v_tasks);
    DELETE FROM pgflow.task_run_states WHERE task_run_id = ANY (v_tasks);
    DELETE FROM pgflow.task_runs WHERE id = ANY (v_tasks);
    DELETE FROM pgflow.flow_run_states WHERE flow_run_id = ANY (v_ids);
    DELETE FROM pgflow.flow_runs WHERE id = ANY (v_ids);
    DELETE FROM pgflow.task_run_cache WHERE cache_key IN (
        SELECT cache_key FROM pgflow.task_run_cache WHERE expires_at < p_now LIMIT p_batch);
    DELETE FROM pgflow.agents a WHERE a.status = 'OFFLINE' AND a.last_heartbeat_at < p_now - p_older_than
       AND NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.agent_id = a.id
                        AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING'));
    RETURN cardinality(v_ids);
END $$;

-- ============================================================================================
-- Functions, part 9: deleting deployments, schedules, runs and work queues; resetting a limit.
-- Each locks what it deletes first (claims skip locked runs, state changes wait), and refuses with
-- 55000, writing nothing, while the object is in use.
-- ============================================================================================
-- Internal: deletes flow runs the caller has locked, with their logs, results, task runs (and their
-- states, results, cache entries and slots), queue rows, slots and state history; returns how many.
CREATE FUNCTION pgflow._delete_flow_runs(p_ids uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_tasks uuid[] := ARRAY(SELECT id FROM pgflow.task_runs WHERE flow_run_id = ANY (p_ids));
    v_n     integer;
BEGIN
    DELETE FROM pgflow.logs WHERE flow_run_id = ANY (p_ids);
    DELETE FROM pgflow.results WHERE run_id = ANY (p_ids) OR run_id = ANY (v_tasks);
    DELETE FROM pgflow.task_run_cache WHERE task_run_id = ANY (v_tasks);
    DELETE FROM pgflow.concurrency_slots WHERE lease_id = ANY (p_ids) OR lease_id = ANY (v_tasks);
    DELETE FROM pgflow.task_run_states WHERE task_run_id = ANY (v_tasks);
    DELETE FROM pgflow.task_runs WHERE id = ANY (v_tasks);
    DELETE FROM pgflow.run_queue WHERE flow_run_id = ANY (p_ids);
    DELETE FROM pgflow.flow_run_states WHERE flow_run_id = ANY (p_ids);
    DELETE FROM pgflow.flow_runs WHERE id = ANY (p_ids);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;

-- Deletes a flow run that is not in progress (SCHEDULED or finished) with its state history, task
-- runs (their states, results and cache entries), logs, result and queue row. Subflows it started
-- stay, without a parent. Returns true.
CREATE FUNCTION pgflow.delete_flow_run(p_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_state pgflow.state_type;
BEGIN
    SELECT state_type INTO v_state FROM pgflow.flow_runs WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'check the id; SELECT id, name, state FROM pgflow.flow_run_history lists runs';
    END IF;
    IF v_state IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') THEN
        RAISE EXCEPTION 'pgflow: flow run % is %: a run in progress cannot be deleted', p_id, v_state
            USING ERRCODE = '55000', HINT = format('cancel it first (SELECT pgflow.cancel_flow_run(%L)) and delete it once it has ended', p_id);
    END IF;
    PERFORM pgflow._delete_flow_runs(ARRAY[p_id]);
    RETURN true;
END $$;

-- Deletes a schedule and its future Scheduled runs (runs already due stay and run); returns true.
CREATE FUNCTION pgflow.delete_deployment_schedule(p_id uuid, p_now timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM pgflow.deployment_schedules WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown deployment schedule %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT id, deployment_id, kind FROM pgflow.deployment_schedules lists them';
    END IF;
    PERFORM pgflow.schedule_flow_runs(p_id, '{}', p_now);
    DELETE FROM pgflow.deployment_schedules WHERE id = p_id;
    RETURN true;
END $$;

-- Deletes a deployment with its schedules and its concurrency limit. Its runs that never started
-- (SCHEDULED with run count 0) are deleted; runs waiting to run again (AwaitingRetry, retried) end
-- Cancelled; finished runs stay as history with deployment_id NULL. Refused while a run of it is
-- Pending, Running, Paused or Cancelling. Returns how many runs it deleted.
CREATE FUNCTION pgflow.delete_deployment(p_name text, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_id     uuid := pgflow._deployment_id(p_name);
    v_active integer;
BEGIN
    -- schedules before the deployment, as the scheduler does (it locks a schedule, then the runs it
    -- inserts key-lock the deployment); then every run, so none starts or retries meanwhile
    PERFORM 1 FROM pgflow.deployment_schedules WHERE deployment_id = v_id ORDER BY id FOR UPDATE;
    PERFORM 1 FROM pgflow.deployments WHERE id = v_id FOR UPDATE;
    PERFORM 1 FROM pgflow.flow_runs WHERE deployment_id = v_id ORDER BY id FOR UPDATE;
    SELECT count(*) INTO v_active FROM pgflow.flow_runs
     WHERE deployment_id = v_id AND state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
    IF v_active > 0 THEN
        RAISE EXCEPTION 'pgflow: deployment % has % run(s) in progress', quote_literal(p_name), v_active
            USING ERRCODE = '55000',
                  HINT = 'cancel them first (pgflow.cancel_flow_run) or let them end, then delete it again';
    END IF;
    PERFORM pgflow._transition_flow_runs(ARRAY(
        SELECT ROW(r.id, 'CANCELLING', 'Cancelling', 'its deployment was deleted', NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.flow_runs r
         WHERE r.deployment_id = v_id AND r.state_type = 'SCHEDULED' AND r.run_count > 0 ORDER BY r.id), NULL, p_now, true);
    v_active := pgflow._delete_flow_runs(ARRAY(
        SELECT id FROM pgflow.flow_runs WHERE deployment_id = v_id AND state_type = 'SCHEDULED'));
    UPDATE pgflow.flow_runs SET deployment_id = NULL WHERE deployment_id = v_id;
    DELETE FROM pgflow.concurrency_limits WHERE id = (SELECT concurrency_limit_id FROM pgflow.deployments WHERE id = v_id);
    DELETE FROM pgflow.deployment_schedules WHERE deployment_id = v_id;
    DELETE FROM pgflow.deployments WHERE id = v_id;
    RETURN v_active;
END $$;

-- Deletes a work queue nothing uses (not 'default', no deployment, no online agent polling it, no run
-- waiting in it or in progress from it) with its concurrency limit; finished runs stay as history
-- with work_queue_id NULL. (An offline agent that names it gets P0002 from its claims if it returns.)
CREATE FUNCTION pgflow.delete_work_queue(p_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_id    uuid := pgflow._work_queue_id(p_name);
    v_users text;
    v_runs  integer;
BEGIN
    IF p_name = 'default' THEN
        RAISE EXCEPTION 'pgflow: the default work queue cannot be deleted'
            USING ERRCODE = '55000', HINT = 'runs use it unless told otherwise; pause it instead (pgflow.set_work_queue_paused)';
    END IF;
    PERFORM 1 FROM pgflow.work_queues WHERE id = v_id FOR UPDATE;
    SELECT string_agg(f.name || '/' || d.name, ', ' ORDER BY f.name, d.name) INTO v_users
      FROM pgflow.deployments d JOIN pgflow.flows f ON f.id = d.flow_id WHERE d.work_queue_id = v_id;
    IF v_users IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: work queue % is used by deployment(s) %', quote_literal(p_name), v_users
            USING ERRCODE = '55000', HINT = 'move them to another queue (create_deployment with p_work_queue) or delete them first';
    END IF;
    PERFORM 1 FROM pgflow.flow_runs WHERE work_queue_id = v_id ORDER BY id FOR UPDATE;
    SELECT count(*) INTO v_runs FROM pgflow.flow_runs
     WHERE work_queue_id = v_id AND state_type IN ('SCHEDULED', 'PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
    IF v_runs > 0 THEN
        RAISE EXCEPTION 'pgflow: work queue % has % run(s) waiting or in progress', quote_literal(p_name), v_runs
            USING ERRCODE = '55000', HINT = 'let them end, or cancel them (pgflow.cancel_flow_run), then delete it';
    END IF;
    SELECT string_agg(DISTINCT a.name, ', ') INTO v_users FROM pgflow.agents a
     WHERE a.status = 'ONLINE' AND p_name = ANY (a.work_queues);
    IF v_users IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: work queue % is polled by online agent(s) %', quote_literal(p_name), v_users
            USING ERRCODE = '55000', HINT = 'stop those agents, or restart them without this queue, then delete it';
    END IF;
    UPDATE pgflow.flow_runs SET work_queue_id = NULL WHERE work_queue_id = v_id;
    DELETE FROM pgflow.concurrency_limits WHERE id = (SELECT concurrency_limit_id FROM pgflow.work_queues WHERE id = v_id);
    DELETE FROM pgflow.work_queues WHERE id = v_id;
END $$;

-- Releases the slots of a limit held by explicit leases (pgflow.acquire_concurrency_slots), e.g.
-- after their holders died without releasing them; returns how many slots (expired leases included).
-- Slots held by runs in progress are kept: releasing them would admit more runs than the limit while
-- those still run. They come back when the runs end (the reaper ends the runs of dead agents).
CREATE FUNCTION pgflow.reset_concurrency_limit(p_name text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_n  integer;
BEGIN
    SELECT id INTO v_id FROM pgflow.concurrency_limits WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown concurrency limit %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'SELECT * FROM pgflow.concurrency_status lists them';
    END IF;
    WITH d AS (DELETE FROM pgflow.concurrency_slots WHERE limit_id = v_id AND holder_kind = 'lease' RETURNING slots)
    SELECT coalesce(sum(slots), 0) INTO v_n FROM d;
    RETURN v_n;
END $$;

-- ============================================================================================
-- Triggers
-- ============================================================================================
-- Enqueueing due runs NOTIFYs channel pgflow_runs with the queue name: once per queue per statement
-- (a 10,000-row insert sends one), and PostgreSQL folds repeats within a transaction.
CREATE FUNCTION pgflow._notify_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow.notify('pgflow_runs', q.name)
       FROM pgflow.work_queues q
      WHERE q.id IN (SELECT n.work_queue_id FROM new_rows n WHERE n.scheduled_at <= now());
    RETURN NULL;
END $$;

CREATE TRIGGER run_queue_notify AFTER INSERT ON pgflow.run_queue
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._notify_runs();

-- ============================================================================================
-- Views: run history and status a person reads with SELECT * (e.g. WHERE state = 'FAILED')
-- ============================================================================================
CREATE VIEW pgflow.flow_run_history AS
SELECT r.id, r.name, f.name AS flow, d.name AS deployment, q.name AS work_queue,
       r.state_type AS state, r.state_name, r.state_timestamp AS state_at, r.state_message,
       r.run_count, r.expected_start_time, r.next_scheduled_start, r.start_time, r.end_time, r.total_run_time,
       r.parameters, r.tags, res.value AS result, r.agent_id, r.process_id, r.parent_task_run_id,
       r.idempotency_key, r.created_at
  FROM pgflow.flow_runs r
  JOIN pgflow.flows f ON f.id = r.flow_id
  LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
  LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
  LEFT JOIN pgflow.results res ON res.run_id = r.id;

CREATE VIEW pgflow.task_run_history AS
SELECT t.id, t.flow_run_id, r.name AS flow_run, t.task_key, t.dynamic_key, t.name,
       t.state_type AS state, t.state_name, t.state_timestamp AS state_at, t.state_message,
       t.run_count, t.start_time, t.end_time, t.total_run_time, t.inputs, t.tags, t.cache_key,
       res.value AS result, t.created_at
  FROM pgflow.task_runs t
  JOIN pgflow.flow_runs r ON r.id = t.flow_run_id
  LEFT JOIN pgflow.results res ON res.run_id = t.id;

-- Per work queue: settings, runs waiting (due now, later, late, blocked by a limit) and active runs.
CREATE VIEW pgflow.queue_status AS
SELECT q.name, q.priority, q.paused, l.concurrency_limit,
       coalesce(w.due, 0) AS due, coalesce(w.later, 0) AS scheduled_later,
       coalesce(w.late, 0) AS late, coalesce(w.blocked, 0) AS awaiting_slot,
       coalesce(a.pending, 0) AS pending, coalesce(a.running, 0) AS running,
       coalesce(a.paused, 0) AS paused_runs, coalesce(a.cancelling, 0) AS cancelling,
       w.oldest_due
  FROM pgflow.work_queues q
  LEFT JOIN pgflow.concurrency_limits l ON l.id = q.concurrency_limit_id
  LEFT JOIN (SELECT rq.work_queue_id,
                    count(*) FILTER (WHERE rq.scheduled_at <= now()) AS due,
                    count(*) FILTER (WHERE rq.scheduled_at > now()) AS later,
                    count(*) FILTER (WHERE r.state_name = 'Late') AS late,
                    count(*) FILTER (WHERE r.state_name = 'AwaitingConcurrencySlot') AS blocked,
                    min(rq.scheduled_at) FILTER (WHERE rq.scheduled_at <= now()) AS oldest_due
               FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
              GROUP BY rq.work_queue_id) w ON w.work_queue_id = q.id
  LEFT JOIN (SELECT r.work_queue_id,
                    count(*) FILTER (WHERE r.state_type = 'PENDING') AS pending,
                    count(*) FILTER (WHERE r.state_type = 'RUNNING') AS running,
                    count(*) FILTER (WHERE r.state_type = 'PAUSED') AS paused,
                    count(*) FILTER (WHERE r.state_type = 'CANCELLING') AS cancelling
               FROM pgflow.flow_runs r
              WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
              GROUP BY r.work_queue_id) a ON a.work_queue_id = q.id;

CREATE VIEW pgflow.deployment_list AS
SELECT f.name || '/' || d.name AS deployment, d.entrypoint, q.name AS work_queue, d.paused, d.tags,
       d.parameters, l.concurrency_limit, d.collision_strategy, d.missed_run_policy, d.retries, d.retry_backoff, d.retry_delays,
       d.version, d.description,
       (SELECT count(*) FROM pgflow.deployment_schedules s WHERE s.deployment_id = d.id AND s.active) AS active_schedules,
       d.id
  FROM pgflow.deployments d
  JOIN pgflow.flows f ON f.id = d.flow_id
  JOIN pgflow.work_queues q ON q.id = d.work_queue_id
  LEFT JOIN pgflow.concurrency_limits l ON l.id = d.concurrency_limit_id;

-- Per limit: its size and the slots in use now (expired leases do not count).
CREATE VIEW pgflow.concurrency_status AS
SELECT l.name, l.kind, l.concurrency_limit, l.active,
       coalesce(sum(s.slots) FILTER (WHERE s.expires_at IS NULL OR s.expires_at > now()), 0)::integer AS slots_in_use,
       count(s.lease_id) FILTER (WHERE s.expires_at <= now()) AS expired_leases
  FROM pgflow.concurrency_limits l
  LEFT JOIN pgflow.concurrency_slots s ON s.limit_id = l.id
 GROUP BY l.id;

-- Every run starts in the 'default' work queue unless told otherwise.
INSERT INTO pgflow.work_queues (name, description) VALUES ('default', 'the work queue deployments use by default');

