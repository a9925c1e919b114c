-- 0008: events, automations and notifications (docs/events.md).
--
-- Events: pgflow.events is append-only and partitioned by day (UTC), so retention drops whole
-- partitions. Every flow-run state transition appends `pgflow.flow-run.<StateName>` in its own
-- transaction (one set-based INSERT per statement, from a transition table); anyone may append their
-- own with pgflow.emit_event.
--
-- Automations: a trigger (reactive: event name patterns + resource match, optional threshold "N
-- within T"; proactive: an expected event did not follow within T) and a list of actions. Evaluators
-- (the pgflow-scheduler's event service; as many as you like) read events by cursor: the events are
-- spread over 8 shards, each with a cursor row; an evaluator locks shards with SKIP LOCKED, reads their
-- events up to the transaction horizon (every event older than the oldest running transaction), fires
-- the actions and moves the cursors, all in one transaction. Each action fires at most once per
-- triggering event: its row in automation_firings has a UNIQUE (automation, trigger key, action) key,
-- and the firing and the action itself commit together, so a crashed evaluator's work is redone by
-- another without firing twice.
--
-- Notifications: named webhook targets; a send-notification action queues a delivery; the scheduler's
-- sender POSTs it (signed with HMAC-SHA256), retries with exponential backoff and dead-letters it after
-- the target's max_attempts failures.

-- ============================================================================================
-- Events
-- ============================================================================================
CREATE SEQUENCE pgflow.events_seq AS bigint;

CREATE TABLE pgflow.events (
    occurred    timestamptz NOT NULL,
    event       text        NOT NULL,              -- 'pgflow.flow-run.Completed', 'acme.file.arrived', …
    resource_id text,                              -- the resource's id (resource->>'id')
    resource    jsonb       NOT NULL DEFAULT '{}', -- {id, kind, name, flow, deployment, tags, labels, …}
    related     jsonb       NOT NULL DEFAULT '[]', -- related resources: [{role, id, …}]
    payload     jsonb       NOT NULL DEFAULT '{}',
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    seq         bigint      NOT NULL DEFAULT nextval('pgflow.events_seq'),
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),   -- the writing transaction (cursor order)
    shard       smallint    NOT NULL DEFAULT floor(random() * 8)::smallint  -- which evaluator cursor reads it
) PARTITION BY RANGE (occurred);

CREATE TABLE pgflow.events_default PARTITION OF pgflow.events DEFAULT;
-- the evaluators' cursor order within a shard
CREATE INDEX events_cursor ON pgflow.events (shard, xid, seq);
-- proactive triggers: what happened to one resource
CREATE INDEX events_resource ON pgflow.events (resource_id, occurred);
-- listings, newest first, and thresholds
CREATE INDEX events_occurred ON pgflow.events (occurred, seq);

-- One cursor per shard: the (xid, seq) of the last event evaluated.
CREATE TABLE pgflow.event_cursors (
    shard        smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 7),
    xid          xid8        NOT NULL DEFAULT '0',
    seq          bigint      NOT NULL DEFAULT 0,
    evaluated_at timestamptz
);
INSERT INTO pgflow.event_cursors (shard) SELECT g FROM generate_series(0, 7) g;

-- The partition of one UTC day (created when missing; rows that waited in the default partition move in).
CREATE FUNCTION pgflow._ensure_event_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_name  text := 'events_' || to_char(p_day, 'YYYYMMDD');
    v_from  timestamptz := (p_day::timestamp AT TIME ZONE 'UTC');
    v_to    timestamptz := ((p_day + 1)::timestamp AT TIME ZONE 'UTC');
BEGIN
    IF to_regclass('pgflow.' || v_name) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF to_regclass('pg_temp._pgflow_moved_events') IS NULL THEN
        CREATE TEMP TABLE _pgflow_moved_events (LIKE pgflow.events) ON COMMIT DROP;
    END IF;
    WITH moved AS (DELETE FROM pgflow.events_default WHERE occurred >= v_from AND occurred < v_to RETURNING *)
    INSERT INTO _pgflow_moved_events SELECT * FROM moved;
    EXECUTE format('CREATE TABLE pgflow.%I PARTITION OF pgflow.events FOR VALUES FROM (%L) TO (%L)', v_name, v_from, v_to);
    EXECUTE format('REVOKE ALL ON pgflow.%I FROM PUBLIC', v_name);
    INSERT INTO pgflow.events SELECT * FROM _pgflow_moved_events;
    TRUNCATE _pgflow_moved_events;
    RETURN true;
END $$;

-- Keeps the event partitions: one per UTC day from yesterday to p_days_ahead days ahead, and drops the
-- partitions (and default-partition rows) older than p_retention. Returns (created, dropped, deleted).
-- The scheduler's event maintenance calls it; a lock it cannot take within 2 s is left for next time.
CREATE FUNCTION pgflow.maintain_events(p_retention interval DEFAULT interval '7 days', p_days_ahead integer DEFAULT 3,
                                       p_now timestamptz DEFAULT now(),
                                       OUT created integer, OUT dropped integer, OUT deleted integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (p_now AT TIME ZONE 'UTC')::date;
    v_cut   timestamptz := p_now - p_retention;
    v_part  record;
BEGIN
    IF p_retention IS NULL OR p_retention < interval '1 hour' THEN
        RAISE EXCEPTION 'pgflow: event retention must be 1 hour or more, got %', coalesce(p_retention::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 7 days, say';
    END IF;
    IF p_days_ahead IS NULL OR p_days_ahead < 0 OR p_days_ahead > 60 THEN
        RAISE EXCEPTION 'pgflow: days ahead must be 0 to 60, got %', coalesce(p_days_ahead::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 3, say';
    END IF;
    SET LOCAL lock_timeout = '2s';
    created := 0; dropped := 0;
    FOR d IN -1 .. p_days_ahead LOOP
        IF pgflow._ensure_event_partition(v_today + d) THEN created := created + 1; END IF;
    END LOOP;
    FOR v_part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'pgflow.events'::regclass AND c.relname ~ '^events_[0-9]{8}$'
    LOOP
        IF (to_date(substr(v_part.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= v_cut THEN
            EXECUTE format('DROP TABLE pgflow.%I', v_part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM pgflow.events_default WHERE occurred < v_cut;
    GET DIAGNOSTICS deleted = ROW_COUNT;
END $$;

SELECT pgflow.maintain_events();

-- Internal: checks an event's parts (one clear error each).
CREATE FUNCTION pgflow._check_event(p_event text, p_resource jsonb, p_payload jsonb, p_related jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_event IS NULL OR p_event !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$' THEN
        RAISE EXCEPTION 'pgflow: invalid event name %', coalesce(quote_literal(left(p_event, 200)), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 200 letters, digits, ''_'', ''.'', '':'', ''/'' or ''-'', such as acme.file.arrived';
    END IF;
    IF p_resource IS NULL OR jsonb_typeof(p_resource) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: an event''s resource must be a JSON object'
            USING ERRCODE = '22023', HINT = 'pass {"id": "…"} or {}';
    END IF;
    IF p_resource ? 'id' AND jsonb_typeof(p_resource -> 'id') NOT IN ('string', 'number') THEN
        RAISE EXCEPTION 'pgflow: an event''s resource id must be a string'
            USING ERRCODE = '22023', HINT = 'pass {"id": "acme.bucket.raw"}';
    END IF;
    IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: an event''s payload must be a JSON object'
            USING ERRCODE = '22023', HINT = 'pass {} for none';
    END IF;
    IF p_related IS NULL OR jsonb_typeof(p_related) <> 'array' THEN
        RAISE EXCEPTION 'pgflow: an event''s related resources must be a JSON array'
            USING ERRCODE = '22023', HINT = 'pass [] for none';
    END IF;
    IF octet_length(p_resource::text) + octet_length(p_payload::text) + octet_length(p_related::text) > 262144 THEN
        RAISE EXCEPTION 'pgflow: an event may hold at most 256 KiB of JSON'
            USING ERRCODE = '54000', HINT = 'store large data elsewhere (an artifact, a result) and put its id in the payload';
    END IF;
END $$;

-- Internal: appends one event (no checks; the engine's own names allowed).
CREATE FUNCTION pgflow._append_event(p_event text, p_resource jsonb, p_payload jsonb, p_related jsonb, p_occurred timestamptz)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    INSERT INTO pgflow.events (occurred, event, resource_id, resource, related, payload)
    VALUES (p_occurred, p_event, p_resource ->> 'id', p_resource, p_related, p_payload)
    RETURNING id INTO v_id;
    IF EXISTS (SELECT 1 FROM pgflow.automations WHERE NOT paused) THEN
        PERFORM pg_notify('pgflow_events', '');
    END IF;
    RETURN v_id;
END $$;

-- Appends an event and returns its id: anyone's (names starting 'pgflow.' are the engine's own).
-- Evaluators see it once its transaction commits.
CREATE FUNCTION pgflow.emit_event(p_event text, p_resource jsonb DEFAULT '{}', p_payload jsonb DEFAULT '{}',
                                  p_related jsonb DEFAULT '[]', p_occurred timestamptz DEFAULT now())
RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_event(p_event, p_resource, p_payload, p_related);
    IF p_event LIKE 'pgflow.%' THEN
        RAISE EXCEPTION 'pgflow: event names starting with pgflow. are the engine''s own: %', quote_literal(p_event)
            USING ERRCODE = '22023', HINT = 'name your events after your organisation or system, such as acme.file.arrived';
    END IF;
    IF p_occurred IS NULL OR NOT isfinite(p_occurred) THEN
        RAISE EXCEPTION 'pgflow: an event needs a finite time'
            USING ERRCODE = '22023', HINT = 'leave it out for now()';
    END IF;
    RETURN pgflow._append_event(p_event, p_resource, p_payload, p_related, p_occurred);
END $$;

-- Every flow-run state transition appends pgflow.flow-run.<StateName>: one INSERT per statement over
-- the statement's new state rows (the transition table), in the transaction of the transition.
CREATE FUNCTION pgflow._flow_run_state_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgflow.events (occurred, event, resource_id, resource, payload)
    SELECT n."timestamp", 'pgflow.flow-run.' || n.state_name, n.flow_run_id::text,
           jsonb_strip_nulls(jsonb_build_object(
               'id', n.flow_run_id, 'kind', 'flow-run', 'name', r.name, 'flow', f.name,
               'deployment', f.name || '/' || d.name, 'tags', r.tags)),
           jsonb_strip_nulls(jsonb_build_object(
               'state_type', n.state_type, 'state_name', n.state_name, 'message', n.message,
               'run_count', r.run_count, 'scheduled_time', n.scheduled_time))
      FROM new_rows n
      JOIN pgflow.flow_runs r ON r.id = n.flow_run_id
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     ORDER BY n.id;
    IF FOUND AND EXISTS (SELECT 1 FROM pgflow.automations WHERE NOT paused) THEN
        PERFORM pg_notify('pgflow_events', '');
    END IF;
    RETURN NULL;
END $$;

-- ============================================================================================
-- Automations
-- ============================================================================================
CREATE TABLE pgflow.automations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.:/@-]{1,200}$'),
    description     text,
    trigger         jsonb       NOT NULL,             -- as given (docs/events.md)
    actions         jsonb       NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('reactive', 'proactive')),
    patterns        text[]      NOT NULL,             -- LIKE patterns: the matched (reactive) or expected (proactive) events
    resource_match  jsonb       NOT NULL DEFAULT '{}', -- an event matches when its resource contains this
    threshold       integer     NOT NULL DEFAULT 1 CHECK (threshold >= 1),
    within          interval,                         -- the threshold's window, or the proactive wait
    after_patterns  text[],                           -- proactive: the events that start a wait (NULL: absence)
    threshold_since timestamptz,                      -- threshold: events before this no longer count
    last_seen_at    timestamptz,                      -- proactive absence: the last expected event
    armed_at        timestamptz NOT NULL,             -- proactive absence: the wait started here at the latest
    source          text        NOT NULL DEFAULT 'sql', -- 'sql', 'file', 'deployment:<flow>/<deployment>'
    paused          boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- The actions fired: one row per (automation, triggering event, action). The UNIQUE key is what makes
-- an action fire once per triggering event, also when two evaluators see it or one crashes.
CREATE TABLE pgflow.automation_firings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    automation_id  uuid        NOT NULL REFERENCES pgflow.automations ON DELETE CASCADE,
    trigger_key    text        NOT NULL,   -- the triggering event's id, 'missing:<id>', 'absent:<time>'
    action_index   integer     NOT NULL,
    action         jsonb       NOT NULL,   -- the action as rendered
    event_id       uuid,
    event_occurred timestamptz,
    fired_at       timestamptz NOT NULL,   -- clock time when the action started
    status         text        NOT NULL CHECK (status IN ('done', 'failed')),
    outcome        jsonb,                  -- e.g. {"flow_run_id": …}
    error          text,
    UNIQUE (automation_id, trigger_key, action_index)
);
CREATE INDEX automation_firings_fired ON pgflow.automation_firings (fired_at);

-- Proactive "after X expect Y within T": one row per X seen, until T has passed.
CREATE TABLE pgflow.automation_expectations (
    automation_id  uuid        NOT NULL REFERENCES pgflow.automations ON DELETE CASCADE,
    event_id       uuid        NOT NULL,
    event_occurred timestamptz NOT NULL,
    resource_id    text,
    due_at         timestamptz NOT NULL,
    PRIMARY KEY (automation_id, event_id)
);
CREATE INDEX automation_expectations_due ON pgflow.automation_expectations (due_at);

-- Internal: a glob ('pgflow.flow-run.*') as a LIKE pattern.
CREATE FUNCTION pgflow._glob_like(p_glob text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT replace(replace(replace(replace(p_glob, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')
$$;

-- Internal: one or more event-name globs (a string or an array of strings) as LIKE patterns.
CREATE FUNCTION pgflow._event_patterns(p_value jsonb, p_what text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_globs text[];
BEGIN
    IF jsonb_typeof(p_value) = 'string' THEN
        v_globs := ARRAY[p_value #>> '{}'];
    ELSIF jsonb_typeof(p_value) = 'array' AND jsonb_array_length(p_value) BETWEEN 1 AND 50
          AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_value) x WHERE jsonb_typeof(x) <> 'string') THEN
        v_globs := ARRAY(SELECT jsonb_array_elements_text(p_value));
    ELSE
        RAISE EXCEPTION 'pgflow: a trigger''s "%" must be an event name pattern or a list of 1 to 50', p_what
            USING ERRCODE = '22023', HINT = 'such as "pgflow.flow-run.Failed" or ["pgflow.flow-run.*"]';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(v_globs) g WHERE g !~ '^[A-Za-z0-9_*][A-Za-z0-9_.:/*-]{0,199}$') THEN
        RAISE EXCEPTION 'pgflow: invalid event name pattern in "%": %', p_what, p_value::text
            USING ERRCODE = '22023', HINT = 'letters, digits, ''_'', ''.'', '':'', ''/'', ''-'', and ''*'' for any text';
    END IF;
    RETURN ARRAY(SELECT pgflow._glob_like(g) FROM unnest(v_globs) g);
END $$;

-- Internal: a duration as seconds (a number) or an interval text ('1 hour', '10m').
CREATE FUNCTION pgflow._trigger_interval(p_value jsonb, p_what text) RETURNS interval
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v interval;
BEGIN
    BEGIN
        v := CASE jsonb_typeof(p_value)
                 WHEN 'number' THEN make_interval(secs => (p_value #>> '{}')::float8)
                 WHEN 'string' THEN (p_value #>> '{}')::interval END;
    EXCEPTION WHEN OTHERS THEN
        v := NULL;
    END;
    IF v IS NULL OR v <= interval '0' OR v > interval '366 days' THEN
        RAISE EXCEPTION 'pgflow: a trigger''s "%" must be a duration from 1 second to 366 days, got %', p_what, coalesce(p_value::text, 'nothing')
            USING ERRCODE = '22023', HINT = 'seconds (3600) or an interval text ("1 hour", "10 minutes")';
    END IF;
    RETURN v;
END $$;

-- Internal: a trigger as given, checked and reduced to the automation's columns. Shapes:
--   {"type": "reactive", "match": "acme.*", "resource": {…}, "threshold": 3, "within": "10 minutes"}
--   {"type": "proactive", "after": "pgflow.flow-run.Running", "expect": "pgflow.flow-run.Completed", "within": "1 hour"}
--   {"type": "proactive", "expect": "pgflow.flow-run.Completed", "resource": {"deployment": "etl/daily"}, "within": "24 hours"}
--   {"type": "flow-run-state", "states": ["Failed", "Crashed"], "deployment": "etl/daily", "flow": …, "tags": […]}
CREATE FUNCTION pgflow._parse_trigger(p_trigger jsonb,
    OUT kind text, OUT patterns text[], OUT resource_match jsonb, OUT threshold integer, OUT within interval,
    OUT after_patterns text[])
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_type text;
    v_keys text[];
BEGIN
    IF p_trigger IS NULL OR jsonb_typeof(p_trigger) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: a trigger must be a JSON object'
            USING ERRCODE = '22023', HINT = 'such as {"type": "reactive", "match": "pgflow.flow-run.Failed"}';
    END IF;
    v_type := coalesce(p_trigger ->> 'type', 'reactive');
    v_keys := ARRAY(SELECT jsonb_object_keys(p_trigger));
    resource_match := coalesce(p_trigger -> 'resource', '{}');
    IF jsonb_typeof(resource_match) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: a trigger''s "resource" must be a JSON object (the resource must contain it)'
            USING ERRCODE = '22023', HINT = 'such as {"deployment": "etl/daily"} or {"tags": ["nightly"]}';
    END IF;
    threshold := 1;
    CASE v_type
    WHEN 'reactive' THEN
        IF NOT v_keys <@ ARRAY['type', 'match', 'resource', 'threshold', 'within'] THEN
            RAISE EXCEPTION 'pgflow: unknown key in a reactive trigger: %', array_to_string(ARRAY(SELECT unnest(v_keys) EXCEPT SELECT unnest(ARRAY['type', 'match', 'resource', 'threshold', 'within'])), ', ')
                USING ERRCODE = '22023', HINT = 'a reactive trigger has match, resource, threshold and within';
        END IF;
        kind := 'reactive';
        patterns := pgflow._event_patterns(p_trigger -> 'match', 'match');
        IF p_trigger ? 'threshold' THEN
            IF jsonb_typeof(p_trigger -> 'threshold') <> 'number' OR (p_trigger ->> 'threshold')::numeric NOT BETWEEN 1 AND 1000000
               OR (p_trigger ->> 'threshold')::numeric <> trunc((p_trigger ->> 'threshold')::numeric) THEN
                RAISE EXCEPTION 'pgflow: a trigger''s "threshold" must be a whole number from 1 to 1000000'
                    USING ERRCODE = '22023', HINT = 'such as "threshold": 3, "within": "10 minutes"';
            END IF;
            threshold := (p_trigger ->> 'threshold')::integer;
        END IF;
        IF threshold > 1 THEN
            within := pgflow._trigger_interval(p_trigger -> 'within', 'within');
        ELSIF p_trigger ? 'within' THEN
            RAISE EXCEPTION 'pgflow: "within" needs a "threshold" of 2 or more in a reactive trigger'
                USING ERRCODE = '22023', HINT = 'add "threshold": N, or use a proactive trigger';
        END IF;
    WHEN 'proactive' THEN
        IF NOT v_keys <@ ARRAY['type', 'after', 'expect', 'resource', 'within'] THEN
            RAISE EXCEPTION 'pgflow: unknown key in a proactive trigger: %', array_to_string(ARRAY(SELECT unnest(v_keys) EXCEPT SELECT unnest(ARRAY['type', 'after', 'expect', 'resource', 'within'])), ', ')
                USING ERRCODE = '22023', HINT = 'a proactive trigger has after (optional), expect, resource and within';
        END IF;
        kind := 'proactive';
        patterns := pgflow._event_patterns(p_trigger -> 'expect', 'expect');
        within := pgflow._trigger_interval(p_trigger -> 'within', 'within');
        IF p_trigger ? 'after' THEN
            after_patterns := pgflow._event_patterns(p_trigger -> 'after', 'after');
        END IF;
    WHEN 'flow-run-state' THEN
        IF NOT v_keys <@ ARRAY['type', 'states', 'deployment', 'flow', 'tags'] THEN
            RAISE EXCEPTION 'pgflow: unknown key in a flow-run-state trigger: %', array_to_string(ARRAY(SELECT unnest(v_keys) EXCEPT SELECT unnest(ARRAY['type', 'states', 'deployment', 'flow', 'tags'])), ', ')
                USING ERRCODE = '22023', HINT = 'a flow-run-state trigger has states, deployment, flow and tags';
        END IF;
        IF jsonb_typeof(p_trigger -> 'states') <> 'array' OR jsonb_array_length(p_trigger -> 'states') = 0
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_trigger -> 'states') s
                       WHERE jsonb_typeof(s) <> 'string' OR pgflow.state_type_of(s #>> '{}') IS NULL) THEN
            RAISE EXCEPTION 'pgflow: a flow-run-state trigger needs "states", a list of state names'
                USING ERRCODE = '22023', HINT = 'such as ["Failed", "Crashed", "TimedOut", "Late"]';
        END IF;
        kind := 'reactive';
        patterns := ARRAY(SELECT 'pgflow.flow-run.' || s FROM jsonb_array_elements_text(p_trigger -> 'states') s);
        resource_match := jsonb_strip_nulls(jsonb_build_object('deployment', p_trigger -> 'deployment',
                                                               'flow', p_trigger -> 'flow', 'tags', p_trigger -> 'tags'));
    ELSE
        RAISE EXCEPTION 'pgflow: unknown trigger type %', quote_literal(v_type)
            USING ERRCODE = '22023', HINT = 'use reactive, proactive or flow-run-state';
    END CASE;
END $$;

-- Internal: checks a list of actions (1 to 20). Each is an object with a "type":
--   run-deployment {deployment, parameters?, tags?}        cancel-flow-run | suspend-flow-run | resume-flow-run {flow_run?}
--   pause-deployment | resume-deployment {deployment}      pause-work-queue | resume-work-queue {work_queue}
--   pause-automation | resume-automation {automation?}     send-notification {target, message?}
--   emit-event {event, resource?, payload?}
-- String values may hold {{ path }} templates filled from the triggering event (docs/events.md).
CREATE FUNCTION pgflow._check_actions(p_actions jsonb) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_a    jsonb;
    v_type text;
    v_need text;
    v_keys text[];
    v_ok   text[];
BEGIN
    IF p_actions IS NULL OR jsonb_typeof(p_actions) <> 'array' OR jsonb_array_length(p_actions) NOT BETWEEN 1 AND 20 THEN
        RAISE EXCEPTION 'pgflow: actions must be a JSON list of 1 to 20 actions'
            USING ERRCODE = '22023', HINT = 'such as [{"type": "run-deployment", "deployment": "etl/load"}]';
    END IF;
    FOR v_a IN SELECT jsonb_array_elements(p_actions) LOOP
        IF jsonb_typeof(v_a) <> 'object' THEN
            RAISE EXCEPTION 'pgflow: an action must be a JSON object with a "type"'
                USING ERRCODE = '22023', HINT = 'such as {"type": "cancel-flow-run"}';
        END IF;
        v_type := v_a ->> 'type';
        v_need := CASE v_type
            WHEN 'run-deployment' THEN 'deployment' WHEN 'pause-deployment' THEN 'deployment' WHEN 'resume-deployment' THEN 'deployment'
            WHEN 'pause-work-queue' THEN 'work_queue' WHEN 'resume-work-queue' THEN 'work_queue'
            WHEN 'send-notification' THEN 'target' WHEN 'emit-event' THEN 'event'
            WHEN 'cancel-flow-run' THEN '' WHEN 'suspend-flow-run' THEN '' WHEN 'resume-flow-run' THEN ''
            WHEN 'pause-automation' THEN '' WHEN 'resume-automation' THEN '' END;
        IF v_need IS NULL THEN
            RAISE EXCEPTION 'pgflow: unknown action type %', coalesce(quote_literal(v_type), 'NULL')
                USING ERRCODE = '22023',
                      HINT = 'use run-deployment, cancel-flow-run, suspend-flow-run, resume-flow-run, pause-deployment, resume-deployment, pause-work-queue, resume-work-queue, pause-automation, resume-automation, send-notification or emit-event';
        END IF;
        IF v_need <> '' AND jsonb_typeof(v_a -> v_need) IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'pgflow: a % action needs "%"', v_type, v_need
                USING ERRCODE = '22023', HINT = format('such as {"type": "%s", "%s": "…"}', v_type, v_need);
        END IF;
        v_ok := ARRAY['type', v_need] || CASE v_type
            WHEN 'run-deployment' THEN ARRAY['parameters', 'tags']
            WHEN 'send-notification' THEN ARRAY['message']
            WHEN 'emit-event' THEN ARRAY['resource', 'payload']
            WHEN 'cancel-flow-run' THEN ARRAY['flow_run'] WHEN 'suspend-flow-run' THEN ARRAY['flow_run'] WHEN 'resume-flow-run' THEN ARRAY['flow_run']
            WHEN 'pause-automation' THEN ARRAY['automation'] WHEN 'resume-automation' THEN ARRAY['automation']
            ELSE ARRAY[]::text[] END;
        v_keys := ARRAY(SELECT jsonb_object_keys(v_a));
        IF NOT v_keys <@ v_ok THEN
            RAISE EXCEPTION 'pgflow: unknown key in a % action: %', v_type,
                array_to_string(ARRAY(SELECT unnest(v_keys) EXCEPT SELECT unnest(v_ok)), ', ')
                USING ERRCODE = '22023', HINT = format('a %s action takes %s', v_type, array_to_string(v_ok, ', '));
        END IF;
        IF v_type = 'run-deployment' AND v_a ? 'parameters' AND jsonb_typeof(v_a -> 'parameters') <> 'object' THEN
            RAISE EXCEPTION 'pgflow: a run-deployment action''s "parameters" must be a JSON object'
                USING ERRCODE = '22023', HINT = 'such as {"day": "{{ event.payload.day }}"}';
        END IF;
        IF v_type IN ('run-deployment', 'pause-deployment', 'resume-deployment') AND v_a ->> 'deployment' NOT LIKE '%{{%' THEN
            PERFORM pgflow._deployment_id(v_a ->> 'deployment');
        END IF;
        IF v_type = 'send-notification' AND NOT EXISTS (SELECT 1 FROM pgflow.notification_targets t WHERE t.name = v_a ->> 'target') THEN
            RAISE EXCEPTION 'pgflow: unknown notification target %', quote_literal(v_a ->> 'target')
                USING ERRCODE = 'P0002', HINT = 'create it first: pgflow notification target-set NAME --url … (or pgflow.set_notification_target)';
        END IF;
    END LOOP;
END $$;

-- ============================================================================================
-- Notifications
-- ============================================================================================
CREATE TABLE pgflow.notification_targets (
    name            text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:@-]{1,100}$'),
    url             text        NOT NULL CHECK (url ~ '^https?://[^[:space:]]+$'),
    format          text        NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
    signing_key     text,                           -- HMAC-SHA256 key of X-PGFlow-Signature (NULL: unsigned)
    max_attempts    integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    backoff_seconds float8      NOT NULL DEFAULT 10 CHECK (backoff_seconds > 0 AND backoff_seconds <= 3600),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- One delivery per send-notification firing: pending → sending → delivered, or dead after
-- max_attempts failures (a dead letter until pgflow.retry_notification).
CREATE TABLE pgflow.notification_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target          text        NOT NULL REFERENCES pgflow.notification_targets ON DELETE CASCADE,
    firing_id       bigint      UNIQUE REFERENCES pgflow.automation_firings ON DELETE SET NULL,
    body            jsonb       NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE INDEX notification_deliveries_due ON pgflow.notification_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');

-- Creates or replaces a notification target.
CREATE FUNCTION pgflow.set_notification_target(p_name text, p_url text, p_format text DEFAULT 'json',
                                               p_signing_key text DEFAULT NULL, p_max_attempts integer DEFAULT 5,
                                               p_backoff_seconds float8 DEFAULT 10, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.:@-]{1,100}$' THEN
        RAISE EXCEPTION 'pgflow: invalid notification target name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 100 letters, digits, ''_'', ''.'', '':'', ''@'' or ''-''';
    END IF;
    IF p_url IS NULL OR p_url !~ '^https?://[^[:space:]/]+(/[^[:space:]]*)?$' OR length(p_url) > 2000 THEN
        RAISE EXCEPTION 'pgflow: invalid webhook URL %', coalesce(quote_literal(left(p_url, 200)), 'NULL')
            USING ERRCODE = '22023', HINT = 'use http://host[:port]/path or https://…';
    END IF;
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack') THEN
        RAISE EXCEPTION 'pgflow: invalid notification format %', coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = '22023', HINT = 'use json (the event and message) or slack ({"text": message})';
    END IF;
    IF p_max_attempts IS NULL OR p_max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'pgflow: max attempts must be 1 to 100, got %', coalesce(p_max_attempts::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 5, say';
    END IF;
    IF p_backoff_seconds IS NULL OR NOT (p_backoff_seconds > 0 AND p_backoff_seconds <= 3600) THEN
        RAISE EXCEPTION 'pgflow: backoff must be more than 0 and at most 3600 seconds, got %', coalesce(p_backoff_seconds::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 10, say (the delays double: 10, 20, 40 s, …)';
    END IF;
    IF p_signing_key = '' THEN
        RAISE EXCEPTION 'pgflow: an empty signing key signs nothing'
            USING ERRCODE = '22023', HINT = 'pass a long random key, or none for unsigned deliveries';
    END IF;
    INSERT INTO pgflow.notification_targets (name, url, format, signing_key, max_attempts, backoff_seconds, created_at, updated_at)
    VALUES (p_name, p_url, p_format, p_signing_key, p_max_attempts, p_backoff_seconds, p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET url = excluded.url, format = excluded.format, signing_key = excluded.signing_key,
                                     max_attempts = excluded.max_attempts, backoff_seconds = excluded.backoff_seconds,
                                     updated_at = excluded.updated_at;
END $$;

-- Deletes a notification target with its deliveries (P0002 when unknown).
CREATE FUNCTION pgflow.delete_notification_target(p_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgflow.notification_targets WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown notification target %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'pgflow notification targets lists them';
    END IF;
END $$;

-- The sender's claim: up to p_limit due deliveries, each leased for p_lease (a sender that dies
-- mid-delivery loses the lease and another tries again; that try counts as an attempt). Deliveries
-- whose lease ran out on their last attempt become dead letters here.
CREATE FUNCTION pgflow.claim_notifications(p_limit integer DEFAULT 20, p_lease interval DEFAULT interval '60 seconds',
                                           p_now timestamptz DEFAULT now())
RETURNS TABLE (id bigint, target text, url text, format text, signing_key text, body text, attempt integer)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'pgflow: claim 1 to 1000 notifications, got %', coalesce(p_limit::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    UPDATE pgflow.notification_deliveries d
       SET status = 'dead', last_error = coalesce(d.last_error, 'the sender stopped during the last attempt')
      FROM pgflow.notification_targets t
     WHERE t.name = d.target AND d.status = 'sending' AND d.next_attempt_at <= p_now AND d.attempts >= t.max_attempts;
    RETURN QUERY
    WITH due AS (
        SELECT d.id FROM pgflow.notification_deliveries d
         WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= p_now
         ORDER BY d.next_attempt_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED)
    UPDATE pgflow.notification_deliveries d
       SET status = 'sending', attempts = d.attempts + 1, next_attempt_at = p_now + p_lease
      FROM due, pgflow.notification_targets t
     WHERE d.id = due.id AND t.name = d.target
    RETURNING d.id, d.target, t.url, t.format, t.signing_key, d.body::text, d.attempts;
END $$;

-- Records a delivery's attempt: delivered, or failed (p_error) and due again after the target's
-- backoff doubled per attempt (at most 1 hour), or dead after max_attempts.
CREATE FUNCTION pgflow.record_notification_attempt(p_id bigint, p_delivered boolean, p_error text DEFAULT NULL,
                                                   p_now timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE pgflow.notification_deliveries d SET
        status = CASE WHEN p_delivered THEN 'delivered' WHEN d.attempts >= t.max_attempts THEN 'dead' ELSE 'pending' END,
        delivered_at = CASE WHEN p_delivered THEN p_now END,
        last_error = CASE WHEN p_delivered THEN d.last_error ELSE left(coalesce(p_error, 'failed'), 2000) END,
        next_attempt_at = CASE WHEN p_delivered THEN d.next_attempt_at
                               ELSE p_now + make_interval(secs => least(3600, t.backoff_seconds * 2 ^ greatest(d.attempts - 1, 0))) END
      FROM pgflow.notification_targets t
     WHERE d.id = p_id AND t.name = d.target AND d.status = 'sending'
    RETURNING d.status INTO v_status;
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'pgflow: notification delivery % is not being sent', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'claim it first (pgflow.claim_notifications)';
    END IF;
    RETURN v_status;
END $$;

-- Sends a dead letter again (attempts start over); P0002 when it is not dead.
CREATE FUNCTION pgflow.retry_notification(p_id bigint, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgflow.notification_deliveries SET status = 'pending', attempts = 0, next_attempt_at = p_now
     WHERE id = p_id AND status = 'dead';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: no dead notification %', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'pgflow notification dead-letters lists them';
    END IF;
    PERFORM pg_notify('pgflow_notifications', '');
END $$;

CREATE VIEW pgflow.notification_list AS
SELECT d.id, d.target, d.status, d.attempts, t.max_attempts, d.next_attempt_at, d.last_error, d.created_at,
       d.delivered_at, a.name AS automation, f.event_id, d.body
  FROM pgflow.notification_deliveries d
  JOIN pgflow.notification_targets t ON t.name = d.target
  LEFT JOIN pgflow.automation_firings f ON f.id = d.firing_id
  LEFT JOIN pgflow.automations a ON a.id = f.automation_id;

CREATE VIEW pgflow.notification_target_list AS
SELECT name, url, format, signing_key IS NOT NULL AS signed, max_attempts, backoff_seconds, created_at, updated_at
  FROM pgflow.notification_targets;

CREATE VIEW pgflow.notification_dead_letters AS
SELECT * FROM pgflow.notification_list WHERE status = 'dead';

-- ============================================================================================
-- Automations: create, change, list
-- ============================================================================================
-- Creates an automation (or replaces the one of that name with p_replace); returns its id.
CREATE FUNCTION pgflow.create_automation(p_name text, p_trigger jsonb, p_actions jsonb, p_description text DEFAULT NULL,
                                         p_replace boolean DEFAULT false, p_source text DEFAULT 'sql',
                                         p_now timestamptz DEFAULT now())
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_t  record;
    v_id uuid;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.:/@-]{1,200}$' THEN
        RAISE EXCEPTION 'pgflow: invalid automation name %', coalesce(quote_literal(left(p_name, 200)), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 200 letters, digits, ''_'', ''.'', '':'', ''/'', ''@'' or ''-''';
    END IF;
    IF p_source IS NULL OR p_source !~ '^(sql|file|deployment:.+)$' THEN
        RAISE EXCEPTION 'pgflow: invalid automation source %', coalesce(quote_literal(p_source), 'NULL')
            USING ERRCODE = '22023', HINT = 'sql, file or deployment:<flow>/<deployment>';
    END IF;
    v_t := pgflow._parse_trigger(p_trigger);
    PERFORM pgflow._check_actions(p_actions);
    IF NOT p_replace AND EXISTS (SELECT 1 FROM pgflow.automations WHERE name = p_name) THEN
        RAISE EXCEPTION 'pgflow: an automation named % exists', quote_literal(p_name)
            USING ERRCODE = '23505', HINT = 'delete it first (pgflow automation delete NAME) or replace it';
    END IF;
    INSERT INTO pgflow.automations AS a (name, description, trigger, actions, kind, patterns, resource_match, threshold,
                                         within, after_patterns, armed_at, source, created_at, updated_at)
    VALUES (p_name, p_description, p_trigger, p_actions, v_t.kind, v_t.patterns, v_t.resource_match, v_t.threshold,
            v_t.within, v_t.after_patterns, p_now, p_source, p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET
        description = excluded.description, trigger = excluded.trigger, actions = excluded.actions, kind = excluded.kind,
        patterns = excluded.patterns, resource_match = excluded.resource_match, threshold = excluded.threshold,
        within = excluded.within, after_patterns = excluded.after_patterns, source = excluded.source,
        updated_at = excluded.updated_at,
        armed_at = CASE WHEN a.trigger IS DISTINCT FROM excluded.trigger THEN excluded.armed_at ELSE a.armed_at END
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Internal: an automation's id by name (P0002 when unknown).
CREATE FUNCTION pgflow._automation_id(p_name text) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id uuid;
BEGIN
    SELECT id INTO v_id FROM pgflow.automations WHERE name = p_name;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown automation %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'pgflow automation ls lists them';
    END IF;
    RETURN v_id;
END $$;

-- Pauses (true) or resumes (false) an automation. A resumed proactive absence trigger waits anew.
CREATE FUNCTION pgflow.set_automation_paused(p_name text, p_paused boolean, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_paused IS NULL THEN
        RAISE EXCEPTION 'pgflow: paused must be true or false' USING ERRCODE = '22023';
    END IF;
    UPDATE pgflow.automations SET paused = p_paused, updated_at = p_now,
                                  armed_at = CASE WHEN paused AND NOT p_paused THEN p_now ELSE armed_at END
     WHERE id = pgflow._automation_id(p_name);
END $$;

-- Deletes an automation with its firings and waits.
CREATE FUNCTION pgflow.delete_automation(p_name text) RETURNS void
LANGUAGE sql AS $$ DELETE FROM pgflow.automations WHERE id = pgflow._automation_id(p_name) $$;

-- A deployment's triggers (pgflow.yaml `triggers:`): replaces the automations named
-- '<flow>/<deployment>:trigger-<n>' (or ':<name>') with one per trigger, each running the deployment
-- with the trigger's "parameters" (templates allowed). p_triggers is a list of trigger objects with
-- optional "name", "enabled" and "parameters" beside the trigger's own keys. Returns how many.
CREATE FUNCTION pgflow.set_deployment_triggers(p_deployment text, p_triggers jsonb, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_t     jsonb;
    v_n     integer := 0;
    v_names text[] := '{}';
    v_name  text;
BEGIN
    PERFORM pgflow._deployment_id(p_deployment);
    IF p_triggers IS NULL OR jsonb_typeof(p_triggers) <> 'array' OR jsonb_array_length(p_triggers) > 50 THEN
        RAISE EXCEPTION 'pgflow: a deployment''s triggers must be a list of at most 50'
            USING ERRCODE = '22023', HINT = 'triggers: [{type: flow-run-state, deployment: etl/extract, states: [Completed]}]';
    END IF;
    FOR v_t IN SELECT jsonb_array_elements(p_triggers) LOOP
        v_n := v_n + 1;
        IF jsonb_typeof(v_t) <> 'object' THEN
            RAISE EXCEPTION 'pgflow: trigger % of % must be an object', v_n, p_deployment USING ERRCODE = '22023';
        END IF;
        v_name := p_deployment || ':' || coalesce(v_t ->> 'name', 'trigger-' || v_n);
        v_names := v_names || v_name;
        PERFORM pgflow.create_automation(
            v_name, v_t - 'name' - 'enabled' - 'parameters',
            jsonb_build_array(jsonb_build_object('type', 'run-deployment', 'deployment', p_deployment,
                                                 'parameters', coalesce(v_t -> 'parameters', '{}'))),
            format('trigger %s of deployment %s', v_n, p_deployment), true, 'deployment:' || p_deployment, p_now);
        UPDATE pgflow.automations SET paused = NOT coalesce((v_t ->> 'enabled')::boolean, true) WHERE name = v_name;
    END LOOP;
    DELETE FROM pgflow.automations WHERE source = 'deployment:' || p_deployment AND name <> ALL (v_names);
    RETURN v_n;
END $$;

CREATE VIEW pgflow.automation_list AS
SELECT a.id, a.name, a.description, a.kind, a.paused, a.source, a.trigger, a.actions, a.created_at, a.updated_at,
       (SELECT max(f.fired_at) FROM pgflow.automation_firings f WHERE f.automation_id = a.id) AS last_fired_at,
       (SELECT count(*) FROM pgflow.automation_firings f WHERE f.automation_id = a.id) AS firings
  FROM pgflow.automations a;

-- ============================================================================================
-- Firing actions
-- ============================================================================================
-- Internal: renders {{ path }} templates in a JSON value. A string that is exactly one template
-- becomes the value at that path (any JSON type, null when missing); other strings get each
-- template's text. Paths start at the context's keys: event, flow_run, automation.
CREATE FUNCTION pgflow._render(p_template jsonb, p_context jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_text  text;
    v_match text[];
    v_out   text;
BEGIN
    CASE jsonb_typeof(p_template)
    WHEN 'object' THEN
        RETURN coalesce((SELECT jsonb_object_agg(k, pgflow._render(v, p_context)) FROM jsonb_each(p_template) x(k, v)), '{}');
    WHEN 'array' THEN
        RETURN coalesce((SELECT jsonb_agg(pgflow._render(v, p_context) ORDER BY n) FROM jsonb_array_elements(p_template) WITH ORDINALITY x(v, n)), '[]');
    WHEN 'string' THEN
        v_text := p_template #>> '{}';
        IF strpos(v_text, '{{') = 0 THEN
            RETURN p_template;
        END IF;
        v_match := regexp_match(v_text, '^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$');
        IF v_match IS NOT NULL THEN
            RETURN coalesce(p_context #> string_to_array(v_match[1], '.'), 'null');
        END IF;
        v_out := v_text;
        FOR v_match IN SELECT regexp_matches(v_text, '(\{\{\s*([A-Za-z0-9_.-]+)\s*\}\})', 'g') LOOP
            v_out := replace(v_out, v_match[1], coalesce(p_context #>> string_to_array(v_match[2], '.'), ''));
        END LOOP;
        RETURN to_jsonb(v_out);
    ELSE
        RETURN p_template;
    END CASE;
END $$;

-- Internal: what templates see for an event: the event itself, the automation, and for a flow-run
-- resource the run (its result, parameters, state).
CREATE FUNCTION pgflow._firing_context(p_automation pgflow.automations, p_event jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_run jsonb;
BEGIN
    IF p_event #>> '{resource,kind}' = 'flow-run' AND p_event #>> '{resource,id}' ~ '^[0-9a-f-]{36}$' THEN
        SELECT jsonb_build_object('id', r.id, 'name', r.name, 'state_type', r.state_type, 'state_name', r.state_name,
                                  'state_message', r.state_message, 'parameters', r.parameters,
                                  'result', (SELECT x.value FROM pgflow.results x WHERE x.run_id = r.id))
          INTO v_run
          FROM pgflow.flow_runs r WHERE r.id = (p_event #>> '{resource,id}')::uuid;
    END IF;
    RETURN jsonb_build_object('event', p_event, 'automation', jsonb_build_object('id', p_automation.id, 'name', p_automation.name),
                              'flow_run', v_run);
END $$;

-- Internal: performs one rendered action; returns its outcome.
CREATE FUNCTION pgflow._perform_action(p_automation pgflow.automations, p_action jsonb, p_context jsonb,
                                       p_firing_id bigint, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_type text := p_action ->> 'type';
    v_run  uuid;
    v_res  pgflow.transition_result;
    v_body jsonb;
    v_msg  text;
BEGIN
    IF v_type IN ('cancel-flow-run', 'suspend-flow-run', 'resume-flow-run') THEN
        v_run := coalesce(p_action ->> 'flow_run', p_context #>> '{flow_run,id}')::uuid;
        IF v_run IS NULL THEN
            RAISE EXCEPTION 'pgflow: no flow run to act on: the event is not about a flow run and the action names none'
                USING ERRCODE = '22023';
        END IF;
        v_res := CASE v_type
            WHEN 'cancel-flow-run' THEN pgflow.cancel_flow_run(v_run, 'cancelled by automation ' || p_automation.name, p_now)
            WHEN 'suspend-flow-run' THEN pgflow.set_flow_run_state(v_run, 'PAUSED', 'Suspended', 'suspended by automation ' || p_automation.name, p_now => p_now)
            ELSE pgflow.resume_flow_run(v_run, p_now) END;
        RETURN jsonb_build_object('flow_run_id', v_run, 'status', v_res.status, 'state_name', v_res.state_name);
    END IF;
    CASE v_type
    WHEN 'run-deployment' THEN
        v_run := pgflow.run_deployment(p_action ->> 'deployment', coalesce(p_action -> 'parameters', '{}'),
                                       p_tags => ARRAY(SELECT jsonb_array_elements_text(coalesce(p_action -> 'tags', '[]'))),
                                       p_idempotency_key => 'automation-firing:' || p_firing_id, p_now => p_now);
        RETURN jsonb_build_object('flow_run_id', v_run);
    WHEN 'pause-deployment', 'resume-deployment' THEN
        PERFORM pgflow.set_deployment_paused(p_action ->> 'deployment', v_type = 'pause-deployment', p_now);
    WHEN 'pause-work-queue', 'resume-work-queue' THEN
        PERFORM pgflow.set_work_queue_paused(p_action ->> 'work_queue', v_type = 'pause-work-queue', p_now);
    WHEN 'pause-automation', 'resume-automation' THEN
        PERFORM pgflow.set_automation_paused(coalesce(p_action ->> 'automation', p_automation.name), v_type = 'pause-automation', p_now);
    WHEN 'emit-event' THEN
        PERFORM pgflow._check_event(p_action ->> 'event', coalesce(p_action -> 'resource', '{}'),
                                    coalesce(p_action -> 'payload', '{}'), '[]');
        IF p_action ->> 'event' LIKE 'pgflow.%' THEN
            RAISE EXCEPTION 'pgflow: event names starting with pgflow. are the engine''s own' USING ERRCODE = '22023';
        END IF;
        RETURN jsonb_build_object('event_id', pgflow._append_event(p_action ->> 'event', coalesce(p_action -> 'resource', '{}'),
                                  coalesce(p_action -> 'payload', '{}'),
                                  jsonb_build_array(jsonb_build_object('role', 'automation', 'id', p_automation.id, 'name', p_automation.name)), p_now));
    WHEN 'send-notification' THEN
        v_msg := coalesce(p_action ->> 'message',
                          format('pgflow automation %s: %s on %s', p_automation.name, p_context #>> '{event,event}',
                                 coalesce(p_context #>> '{event,resource,name}', p_context #>> '{event,resource,id}', 'no resource')));
        SELECT CASE t.format WHEN 'slack' THEN jsonb_build_object('text', v_msg)
                             ELSE jsonb_build_object('automation', p_automation.name, 'message', v_msg, 'event', p_context -> 'event',
                                                     'flow_run', p_context -> 'flow_run') END
          INTO v_body FROM pgflow.notification_targets t WHERE t.name = p_action ->> 'target';
        IF v_body IS NULL THEN
            RAISE EXCEPTION 'pgflow: unknown notification target %', quote_literal(p_action ->> 'target') USING ERRCODE = 'P0002';
        END IF;
        INSERT INTO pgflow.notification_deliveries (target, firing_id, body, status, next_attempt_at, created_at)
        VALUES (p_action ->> 'target', p_firing_id, v_body, 'pending', p_now, p_now);
        PERFORM pg_notify('pgflow_notifications', '');
    END CASE;
    RETURN '{}';
END $$;

-- Internal: fires an automation's actions for one trigger key, once: each action's firing row is
-- inserted ON CONFLICT DO NOTHING, and only an inserted row's action runs (in a subtransaction, so a
-- failing action is recorded as failed and the others still run). Returns how many actions fired.
CREATE FUNCTION pgflow._fire(p_automation pgflow.automations, p_key text, p_event jsonb, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_context jsonb;
    v_action  jsonb;
    v_index   integer;
    v_id      bigint;
    v_outcome jsonb;
    v_fired   integer := 0;
    v_err     text;
BEGIN
    v_context := pgflow._firing_context(p_automation, p_event);
    FOR v_action, v_index IN SELECT x, n - 1 FROM jsonb_array_elements(p_automation.actions) WITH ORDINALITY a(x, n) LOOP
        v_action := pgflow._render(v_action, v_context);
        INSERT INTO pgflow.automation_firings (automation_id, trigger_key, action_index, action, event_id, event_occurred,
                                               fired_at, status)
        VALUES (p_automation.id, p_key, v_index, v_action, (p_event ->> 'id')::uuid, (p_event ->> 'occurred')::timestamptz,
                clock_timestamp(), 'done')
        ON CONFLICT (automation_id, trigger_key, action_index) DO NOTHING
        RETURNING id INTO v_id;
        CONTINUE WHEN v_id IS NULL;
        v_fired := v_fired + 1;
        BEGIN
            v_outcome := pgflow._perform_action(p_automation, v_action, v_context, v_id, p_now);
            UPDATE pgflow.automation_firings SET outcome = v_outcome WHERE id = v_id;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            UPDATE pgflow.automation_firings SET status = 'failed', error = v_err WHERE id = v_id;
        END;
    END LOOP;
    RETURN v_fired;
END $$;

-- Internal: an event row as the JSON templates see.
CREATE FUNCTION pgflow._event_json(e pgflow.events) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'occurred', e.occurred, 'event', e.event, 'resource', e.resource,
                              'related', e.related, 'payload', e.payload)
$$;

-- ============================================================================================
-- The evaluators
-- ============================================================================================
-- One evaluation pass: locks up to p_max_shards shards that have events waiting (SKIP LOCKED: other
-- evaluators take the others), reads up to p_limit of their events in cursor order up to the
-- transaction horizon, fires the reactive automations they trigger, records proactive waits and
-- sightings, and moves the cursors; all in the caller's transaction. `more` says whether events were
-- left (call again). p_own_transaction also reads this transaction's own events (for tests and psql
-- sessions that emit and evaluate in one transaction; never use it beside concurrent writers).
CREATE FUNCTION pgflow.evaluate_events(p_limit integer DEFAULT 1000, p_max_shards integer DEFAULT 8,
                                       p_now timestamptz DEFAULT now(), p_own_transaction boolean DEFAULT false,
                                       OUT events integer, OUT firings integer, OUT more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    v_own     xid8 := CASE WHEN p_own_transaction THEN pg_current_xact_id() END;
    v_shards  smallint[];
    v_batch   pgflow.events[];
    v_m       record;
    v_a       pgflow.automations;
    v_count   bigint;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'pgflow: evaluate 1 to 100000 events at a time, got %', coalesce(p_limit::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF p_max_shards IS NULL OR p_max_shards NOT BETWEEN 1 AND 8 THEN
        RAISE EXCEPTION 'pgflow: max shards must be 1 to 8, got %', coalesce(p_max_shards::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    events := 0; firings := 0; more := false;
    v_shards := ARRAY(
        SELECT c.shard FROM pgflow.event_cursors c
         WHERE EXISTS (SELECT 1 FROM pgflow.events e
                        WHERE e.shard = c.shard AND (e.xid, e.seq) > (c.xid, c.seq) AND (e.xid < v_horizon OR e.xid = v_own))
         ORDER BY c.evaluated_at NULLS FIRST
         LIMIT p_max_shards
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_shards) = 0 THEN
        RETURN;
    END IF;
    v_batch := ARRAY(
        SELECT e FROM pgflow.event_cursors c
          JOIN pgflow.events e ON e.shard = c.shard AND (e.xid, e.seq) > (c.xid, c.seq)
         WHERE c.shard = ANY (v_shards) AND (e.xid < v_horizon OR e.xid = v_own)
         ORDER BY e.xid, e.seq
         LIMIT p_limit + 1);
    more := cardinality(v_batch) > p_limit;
    IF more THEN
        v_batch := v_batch[1:p_limit];
    END IF;
    events := cardinality(v_batch);
    UPDATE pgflow.event_cursors c SET xid = coalesce(m.xid, c.xid), seq = coalesce(m.seq, c.seq), evaluated_at = p_now
      FROM (SELECT s AS shard FROM unnest(v_shards) s) l
      LEFT JOIN (SELECT DISTINCT ON (b.shard) b.shard, b.xid, b.seq FROM unnest(v_batch) b
                  ORDER BY b.shard, b.xid DESC, b.seq DESC) m ON m.shard = l.shard
     WHERE c.shard = l.shard;

    -- reactive automations (threshold ones serialised by a lock on the automation row)
    FOR v_m IN
        SELECT a.id AS automation_id, a.threshold, v_batch[i] AS ev
          FROM generate_subscripts(v_batch, 1) i JOIN pgflow.automations a
            ON a.kind = 'reactive' AND NOT a.paused AND (v_batch[i]).event LIKE ANY (a.patterns)
           AND (v_batch[i]).resource @> a.resource_match
         ORDER BY i, a.id
    LOOP
        IF v_m.threshold = 1 THEN
            SELECT * INTO v_a FROM pgflow.automations WHERE id = v_m.automation_id;
        ELSE
            SELECT * INTO v_a FROM pgflow.automations WHERE id = v_m.automation_id FOR UPDATE;
            SELECT count(*) INTO v_count FROM pgflow.events e
             WHERE e.occurred > (v_m.ev).occurred - v_a.within AND e.occurred <= (v_m.ev).occurred
               AND e.occurred >= coalesce(v_a.threshold_since, '-infinity')
               AND e.event LIKE ANY (v_a.patterns) AND e.resource @> v_a.resource_match;
            CONTINUE WHEN v_count < v_a.threshold;
            UPDATE pgflow.automations SET threshold_since = (v_m.ev).occurred + interval '1 microsecond' WHERE id = v_a.id;
        END IF;
        firings := firings + pgflow._fire(v_a, (v_m.ev).id::text, pgflow._event_json(v_m.ev), p_now);
    END LOOP;

    -- proactive: a start event opens a wait; an expected event is a sighting
    INSERT INTO pgflow.automation_expectations (automation_id, event_id, event_occurred, resource_id, due_at)
    SELECT a.id, b.id, b.occurred, b.resource_id, b.occurred + a.within
      FROM unnest(v_batch) b JOIN pgflow.automations a
        ON a.kind = 'proactive' AND NOT a.paused AND a.after_patterns IS NOT NULL
       AND b.event LIKE ANY (a.after_patterns) AND b.resource @> a.resource_match
    ON CONFLICT DO NOTHING;
    UPDATE pgflow.automations a SET last_seen_at = greatest(a.last_seen_at, s.occurred)
      FROM (SELECT a2.id, max(b.occurred) AS occurred
              FROM unnest(v_batch) b JOIN pgflow.automations a2
                ON a2.kind = 'proactive' AND a2.after_patterns IS NULL AND NOT a2.paused
               AND b.event LIKE ANY (a2.patterns) AND b.resource @> a2.resource_match
             GROUP BY a2.id) s
     WHERE a.id = s.id;
END $$;

-- The proactive pass (the scheduler calls it every second or so, with p_now for tests): fires the
-- waits that ran out without their expected event on the same resource, and the absence triggers
-- whose expected event has not been seen for their window (again every window while it lasts).
-- Returns the actions fired.
CREATE FUNCTION pgflow.evaluate_proactive(p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_x     record;
    v_a     pgflow.automations;
    v_ev    jsonb;
    v_fired integer := 0;
BEGIN
    FOR v_x IN
        SELECT x.* FROM pgflow.automation_expectations x
         WHERE x.due_at <= p_now
         ORDER BY x.due_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    LOOP
        DELETE FROM pgflow.automation_expectations WHERE automation_id = v_x.automation_id AND event_id = v_x.event_id;
        SELECT * INTO v_a FROM pgflow.automations WHERE id = v_x.automation_id;
        CONTINUE WHEN v_a.paused;
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pgflow.events e
             WHERE e.resource_id IS NOT DISTINCT FROM v_x.resource_id AND e.occurred >= v_x.event_occurred
               AND e.occurred <= v_x.due_at AND e.event LIKE ANY (v_a.patterns));
        SELECT pgflow._event_json(e) INTO v_ev FROM pgflow.events e
         WHERE e.id = v_x.event_id AND e.occurred = v_x.event_occurred;
        v_fired := v_fired + pgflow._fire(v_a, 'missing:' || v_x.event_id, v_ev, p_now);
    END LOOP;

    FOR v_a IN
        SELECT a.* FROM pgflow.automations a
         WHERE a.kind = 'proactive' AND a.after_patterns IS NULL AND NOT a.paused
           AND greatest(a.last_seen_at, a.armed_at) + a.within <= p_now
           FOR UPDATE SKIP LOCKED
    LOOP
        UPDATE pgflow.automations SET armed_at = p_now WHERE id = v_a.id;
        v_ev := jsonb_build_object('id', NULL, 'occurred', p_now, 'event', 'pgflow.automation.expected-event-missing',
                                   'resource', jsonb_build_object('id', v_a.id, 'kind', 'automation', 'name', v_a.name),
                                   'related', '[]'::jsonb,
                                   'payload', jsonb_build_object('expected', v_a.trigger -> 'expect', 'within', v_a.within::text,
                                                                 'last_seen_at', v_a.last_seen_at));
        v_fired := v_fired + pgflow._fire(v_a, 'absent:' || to_char(p_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), v_ev, p_now);
    END LOOP;
    RETURN v_fired;
END $$;

-- ============================================================================================
-- Reading events
-- ============================================================================================
-- Events, newest first (or, with p_after_seq, oldest first after that seq: `pgflow event ls --follow`).
-- Filters: a name pattern ('pgflow.flow-run.*'), a resource id, a time range.
CREATE FUNCTION pgflow.event_page(p_pattern text DEFAULT NULL, p_resource_id text DEFAULT NULL,
                                  p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL,
                                  p_limit integer DEFAULT 50, p_before_seq bigint DEFAULT NULL,
                                  p_after_seq bigint DEFAULT NULL)
RETURNS TABLE (seq bigint, id uuid, occurred timestamptz, event text, resource_id text, resource jsonb,
               related jsonb, payload jsonb)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_like text;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'pgflow: page size must be 1 to 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 50, say';
    END IF;
    IF p_pattern IS NOT NULL THEN
        v_like := (pgflow._event_patterns(to_jsonb(p_pattern), 'pattern'))[1];
    END IF;
    IF p_after_seq IS NOT NULL THEN
        RETURN QUERY
        SELECT e.seq, e.id, e.occurred, e.event, e.resource_id, e.resource, e.related, e.payload FROM pgflow.events e
         WHERE e.seq > p_after_seq AND (v_like IS NULL OR e.event LIKE v_like)
           AND (p_resource_id IS NULL OR e.resource_id = p_resource_id)
           AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
         ORDER BY e.seq LIMIT p_limit;
    ELSE
        RETURN QUERY
        SELECT e.seq, e.id, e.occurred, e.event, e.resource_id, e.resource, e.related, e.payload FROM pgflow.events e
         WHERE (p_before_seq IS NULL OR e.seq < p_before_seq) AND (v_like IS NULL OR e.event LIKE v_like)
           AND (p_resource_id IS NULL OR e.resource_id = p_resource_id)
           AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
         ORDER BY e.occurred DESC, e.seq DESC LIMIT p_limit;
    END IF;
END $$;

-- ============================================================================================
-- Inbound webhooks: POST /api/hooks/{slug} turns a JSON body into an event through a template
-- ({"event": "github.push", "resource": {"id": "{{ body.repository.full_name }}"}, "payload": "{{ body }}"}).
-- ============================================================================================
CREATE TABLE pgflow.webhooks (
    slug       text PRIMARY KEY CHECK (slug ~ '^[A-Za-z0-9_-]{1,100}$'),
    template   jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);

-- Creates or replaces an inbound webhook.
CREATE FUNCTION pgflow.set_webhook(p_slug text, p_template jsonb, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_slug IS NULL OR p_slug !~ '^[A-Za-z0-9_-]{1,100}$' THEN
        RAISE EXCEPTION 'pgflow: invalid webhook slug %', coalesce(quote_literal(left(p_slug, 100)), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 100 letters, digits, ''_'' or ''-''';
    END IF;
    IF p_template IS NULL OR jsonb_typeof(p_template) <> 'object' OR jsonb_typeof(p_template -> 'event') <> 'string'
       OR NOT ARRAY(SELECT jsonb_object_keys(p_template)) <@ ARRAY['event', 'resource', 'payload', 'related'] THEN
        RAISE EXCEPTION 'pgflow: a webhook template is an object with "event" and optional "resource", "payload", "related"'
            USING ERRCODE = '22023', HINT = 'such as {"event": "github.push", "payload": "{{ body }}"}';
    END IF;
    INSERT INTO pgflow.webhooks (slug, template, created_at) VALUES (p_slug, p_template, p_now)
    ON CONFLICT (slug) DO UPDATE SET template = excluded.template;
END $$;

-- Deletes an inbound webhook (P0002 when unknown).
CREATE FUNCTION pgflow.delete_webhook(p_slug text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgflow.webhooks WHERE slug = p_slug;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown webhook %', coalesce(quote_literal(p_slug), 'NULL') USING ERRCODE = 'P0002';
    END IF;
END $$;

-- Turns a webhook's body into an event (P0002 for an unknown slug, 22023 when the rendered event is invalid).
CREATE FUNCTION pgflow.receive_webhook(p_slug text, p_body jsonb, p_now timestamptz DEFAULT now()) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_t jsonb;
    v_e jsonb;
BEGIN
    SELECT template INTO v_t FROM pgflow.webhooks WHERE slug = p_slug;
    IF v_t IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown webhook %', coalesce(quote_literal(left(p_slug, 100)), 'NULL')
            USING ERRCODE = 'P0002', HINT = 'create it with pgflow.set_webhook';
    END IF;
    v_e := pgflow._render(v_t, jsonb_build_object('body', p_body, 'webhook', p_slug));
    RETURN pgflow.emit_event(v_e ->> 'event', coalesce(v_e -> 'resource', '{}'),
                             CASE WHEN jsonb_typeof(v_e -> 'payload') = 'object' THEN v_e -> 'payload'
                                  WHEN v_e ? 'payload' THEN jsonb_build_object('value', v_e -> 'payload') ELSE '{}' END,
                             coalesce(v_e -> 'related', '[]'), p_now);
END $$;

-- ============================================================================================
-- The trigger that emits (last, once everything it reads exists)
-- ============================================================================================
CREATE TRIGGER flow_run_states_events AFTER INSERT ON pgflow.flow_run_states
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._flow_run_state_events();

-- Agents going offline (deregistered, or found dead by the reaper) and online (registered, or
-- heartbeating again): pgflow.agent.offline / pgflow.agent.online. Row triggers with a WHEN clause, so
-- the heartbeat's UPDATE of an online agent calls no function at all.
CREATE FUNCTION pgflow._agent_status_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._append_event(CASE NEW.status WHEN 'OFFLINE' THEN 'pgflow.agent.offline' ELSE 'pgflow.agent.online' END,
                                 jsonb_build_object('id', NEW.id, 'kind', 'agent', 'name', NEW.name, 'work_queues', NEW.work_queues),
                                 jsonb_build_object('last_heartbeat_at', NEW.last_heartbeat_at), '[]', now());
    RETURN NULL;
END $$;

CREATE TRIGGER agents_status_events AFTER UPDATE OF status ON pgflow.agents
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION pgflow._agent_status_event();
CREATE TRIGGER agents_registered_events AFTER INSERT ON pgflow.agents
    FOR EACH ROW EXECUTE FUNCTION pgflow._agent_status_event();

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
           AND p.proname IN ('maintain_events', 'emit_event', 'set_notification_target', 'delete_notification_target',
                             'claim_notifications', 'record_notification_attempt', 'retry_notification',
                             'create_automation', 'set_automation_paused', 'delete_automation', 'set_deployment_triggers',
                             'evaluate_events', 'evaluate_proactive', 'event_page', 'set_webhook', 'delete_webhook',
                             'receive_webhook')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp', v_fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgflow_admin', v_fn);
    END LOOP;
END $$;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON SEQUENCE pgflow.events_seq FROM PUBLIC;
-- anyone with a duty may emit (agents: flows and commands; the API: POST /api/events and webhooks)
GRANT EXECUTE ON FUNCTION pgflow.emit_event(text, jsonb, jsonb, jsonb, timestamptz) TO pgflow_agent, pgflow_scheduler, pgflow_api;
-- the scheduler's evaluator, notification sender and event maintenance
GRANT EXECUTE ON FUNCTION pgflow.evaluate_events(integer, integer, timestamptz, boolean),
                          pgflow.evaluate_proactive(timestamptz, integer),
                          pgflow.claim_notifications(integer, interval, timestamptz),
                          pgflow.record_notification_attempt(bigint, boolean, text, timestamptz),
                          pgflow.maintain_events(interval, integer, timestamptz)
    TO pgflow_scheduler;
-- the CLI and the HTTP API
GRANT EXECUTE ON FUNCTION pgflow.set_notification_target(text, text, text, text, integer, float8, timestamptz),
                          pgflow.delete_notification_target(text),
                          pgflow.retry_notification(bigint, timestamptz),
                          pgflow.create_automation(text, jsonb, jsonb, text, boolean, text, timestamptz),
                          pgflow.set_automation_paused(text, boolean, timestamptz),
                          pgflow.delete_automation(text),
                          pgflow.set_deployment_triggers(text, jsonb, timestamptz),
                          pgflow.event_page(text, text, timestamptz, timestamptz, integer, bigint, bigint),
                          pgflow.set_webhook(text, jsonb, timestamptz),
                          pgflow.delete_webhook(text),
                          pgflow.receive_webhook(text, jsonb, timestamptz)
    TO pgflow_api;
GRANT EXECUTE ON FUNCTION pgflow.event_page(text, text, timestamptz, timestamptz, integer, bigint, bigint) TO pgflow_reader;
GRANT SELECT ON pgflow.automation_list TO pgflow_reader, pgflow_api, pgflow_admin;
GRANT SELECT ON pgflow.events, pgflow.automations, pgflow.automation_firings, pgflow.automation_expectations,
                pgflow.notification_list, pgflow.notification_dead_letters, pgflow.notification_target_list,
                pgflow.webhooks, pgflow.event_cursors
    TO pgflow_api, pgflow_admin;
