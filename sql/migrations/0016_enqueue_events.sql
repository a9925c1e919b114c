-- 0016: a cheaper enqueue and slimmer flow-run events (issue 17). Measured with pgbench on
-- run_deployment, scripts/bench-cost.sh and scripts/bench-agent.sh (BENCHMARKS.md, docs/scaling.md).
-- run_deployment returns and writes what it did; every transition still appends its
-- pgflow.flow-run.<State> event in its own transaction, and the readers of events (event_page, the
-- evaluators, the new view pgflow.event_history) see the same resource and payload as before. What
-- changes for a SQL user: the table pgflow.events shows flow-run events slim (query event_history).

-- ============================================================================================
-- The enqueue in plpgsql. _enqueue_runs was a LANGUAGE sql function: PostgreSQL parses and plans the
-- body of a non-inlined SQL function on every call, and its one statement (a CTE writing three tables)
-- took ≈ 0.7 ms of the ≈ 1.66 ms a run_deployment cost (pgbench, pg_stat_statements with track = all).
-- As plpgsql its plan is prepared once per session. random_run_name likewise (called per run).
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow._enqueue_runs(
    p_deployment_id uuid, p_parameters jsonb[], p_times timestamptz[], p_tags text[], p_idempotency_keys text[],
    p_names text[], p_work_queue_id uuid, p_parent_task_run_id uuid, p_schedule_id uuid, p_now timestamptz
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH d AS (SELECT * FROM pgflow.deployments WHERE id = p_deployment_id),
    x AS (SELECT * FROM unnest(p_parameters, p_times, p_idempotency_keys, p_names) WITH ORDINALITY
                        AS x(params, at, key, name, ord)),
    ins AS (
        INSERT INTO pgflow.flow_runs (name, flow_id, deployment_id, work_queue_id, deployment_schedule_id, parameters,
                                      tags, idempotency_key, parent_task_run_id, retries, retry_delays, retry_backoff,
                                      retry_jitter, expected_start_time, next_scheduled_start, state_type, state_name,
                                      state_timestamp, created_at)
        SELECT coalesce(x.name, pgflow.random_run_name()), d.flow_id, d.id, coalesce(p_work_queue_id, d.work_queue_id),
               p_schedule_id,
               pgflow.resolve_parameters(
                   CASE WHEN d.parameters = '{}' OR coalesce(x.params, '{}') = '{}' THEN d.parameters || coalesce(x.params, '{}')
                        ELSE pgflow._check_parameters(d.parameters || x.params, 'parameters merged over the deployment''s') END),
               ARRAY(SELECT DISTINCT t FROM unnest(d.tags || coalesce(p_tags, '{}')) t ORDER BY t),
               x.key, p_parent_task_run_id, d.retries, d.retry_delays, d.retry_backoff, d.retry_jitter,
               coalesce(x.at, p_now), coalesce(x.at, p_now), 'SCHEDULED', 'Scheduled', p_now, p_now
          FROM x CROSS JOIN d ORDER BY x.ord
        ON CONFLICT DO NOTHING
        RETURNING id, work_queue_id, expected_start_time),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", scheduled_time)
        SELECT ins.id, 'SCHEDULED', 'Scheduled', p_now, ins.expected_start_time FROM ins),
    q AS (
        INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at)
        SELECT ins.id, ins.work_queue_id, ins.expected_start_time FROM ins)
    SELECT ins.id FROM ins;
END $$;

CREATE OR REPLACE FUNCTION pgflow.random_run_name() RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (ARRAY['amber','brave','calm','daring','eager','fancy','gentle','happy','icy','jolly','keen',
                  'lively','merry','nimble','olive','proud','quick','rapid','silent','tidy','upbeat',
                  'vivid','witty','young','zesty','bold','cosmic','dusty','golden','misty'])[1 + floor(random() * 30)::int]
        || '-' ||
           (ARRAY['otter','falcon','badger','heron','lynx','panda','tapir','koala','gecko','bison','moose',
                  'okapi','raven','sloth','wombat','yak','zebra','ibis','marmot','newt','orca','puffin',
                  'quail','seal','toucan','urchin','viper','walrus','fox','crane'])[1 + floor(random() * 30)::int];
END $$;

-- run_deployment in one function: 0003's checking wrapper called 0002's body (itself plpgsql), which
-- checked the parameters a second time. Same checks, same errors, same result.
CREATE OR REPLACE FUNCTION pgflow.run_deployment(
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_dep_id uuid;
    v_id     uuid;
BEGIN
    PERFORM pgflow._check_parameters(p_parameters);
    PERFORM pgflow._check_time(p_scheduled_time, 'a scheduled time');
    IF p_flow_run_name IS NOT NULL THEN
        PERFORM pgflow._check_name(p_flow_run_name, 'flow run name');
    END IF;
    v_dep_id := pgflow._deployment_id(p_name);
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

-- ============================================================================================
-- Slim flow-run events. The engine's pgflow.flow-run.<State> events (three per drained run) were a
-- third of the drain's statement time: per new state row the trigger looked up the run, its flow and
-- its deployment and built two JSON objects, ≈ 400 bytes a row of heap and WAL — a copy of what the
-- run's history already holds. The row now holds what identifies the event (occurred = the state's
-- time, event = 'pgflow.flow-run.' || the state's name, resource_id = the run's id); its resource and
-- payload stay '{}' and are filled when the event is read (pgflow.fill_event), from the run and
-- the state row, with what the trigger used to copy. Every reader goes through it: event_page, the
-- evaluators (reactive, thresholds, proactive) and the view pgflow.event_history, the one to query
-- with SQL (pgflow.events itself shows such events slim). Once retention has deleted a run, its
-- events' resource is {id, kind} and their payload {state_name, state_type}.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow._flow_run_state_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgflow.events (occurred, event, resource_id)
    SELECT n."timestamp", 'pgflow.flow-run.' || n.state_name, n.flow_run_id::text
      FROM new_rows n
     ORDER BY n.id;
    IF FOUND AND EXISTS (SELECT 1 FROM pgflow.automations WHERE NOT paused) THEN
        PERFORM pg_notify('pgflow_events', '');
    END IF;
    RETURN NULL;
END $$;

-- An event as its readers see it (event_page, the evaluators and pgflow.event_history call it). A slim flow-run event (above) gets the resource and payload
-- its state's trigger wrote before 0016: the run's id, name, flow, deployment and tags; the state's
-- type, name, message and scheduled time, and the run's attempt count as of that state (RUNNING
-- states entered from anything but PAUSED, as the engine counts them). Any other event is returned
-- as it is.
CREATE FUNCTION pgflow.fill_event(e pgflow.events) RETURNS pgflow.events
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp COST 500 AS $$
DECLARE
    v_run      uuid;
    v_name     text;
    v_nth      bigint;
    v_payloads jsonb[];
BEGIN
    IF e.resource <> '{}' OR e.event NOT LIKE 'pgflow.flow-run.%' OR e.resource_id IS NULL THEN
        RETURN e;
    END IF;
    v_run := e.resource_id::uuid;  -- pgflow.flow-run.* events are the engine's: their resource id is the run's
    v_name := substr(e.event, length('pgflow.flow-run.') + 1);
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'id', r.id, 'kind', 'flow-run', 'name', r.name, 'flow', f.name,
               'deployment', f.name || '/' || d.name, 'tags', r.tags))
      INTO e.resource
      FROM pgflow.flow_runs r
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     WHERE r.id = v_run;
    IF NOT FOUND THEN  -- the run was deleted (retention)
        e.resource := jsonb_build_object('id', v_run, 'kind', 'flow-run');
        e.payload := jsonb_build_object('state_type', pgflow.state_type_of(v_name), 'state_name', v_name);
        RETURN e;
    END IF;
    -- the state of this run with this time and name; when one transaction wrote it twice at one time,
    -- the k-th such event is the k-th such state
    v_payloads := ARRAY(
        SELECT jsonb_strip_nulls(jsonb_build_object(
                   'state_type', s.state_type, 'state_name', s.state_name, 'message', s.message,
                   'run_count', s.run_count, 'scheduled_time', s.scheduled_time))
          FROM (SELECT s.*, count(*) FILTER (WHERE s.state_type = 'RUNNING' AND s.prev IS DISTINCT FROM 'PAUSED')
                                OVER (ORDER BY s.id) AS run_count
                  FROM (SELECT h.*, lag(h.state_type) OVER (ORDER BY h.id) AS prev
                          FROM pgflow.flow_run_states h WHERE h.flow_run_id = v_run) s) s
         WHERE s."timestamp" = e.occurred AND s.state_name = v_name
         ORDER BY s.id);
    IF cardinality(v_payloads) > 1 THEN
        SELECT count(*) INTO v_nth FROM pgflow.events o
         WHERE o.occurred = e.occurred AND o.seq < e.seq AND o.resource_id = e.resource_id AND o.event = e.event;
        e.payload := v_payloads[least(v_nth + 1, cardinality(v_payloads))];
    ELSE
        e.payload := v_payloads[1];
    END IF;
    IF e.payload IS NULL THEN
        e.payload := jsonb_build_object('state_type', pgflow.state_type_of(v_name), 'state_name', v_name);
    END IF;
    RETURN e;
END $$;

-- Every event, flow-run events with their resource and payload filled: query this one with SQL.
CREATE VIEW pgflow.event_history AS
SELECT f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload, f.id, f.seq, f.xid, f.shard
  FROM pgflow.events e CROSS JOIN LATERAL pgflow.fill_event(e) f;
REVOKE EXECUTE ON FUNCTION pgflow.fill_event(pgflow.events) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.fill_event(pgflow.events) TO pgflow_api, pgflow_admin, pgflow_reader;
GRANT SELECT ON pgflow.event_history TO pgflow_api, pgflow_admin, pgflow_reader;

-- event_page: 0011's, filling the page's rows (and only those) as they are returned.
CREATE OR REPLACE FUNCTION pgflow.event_page(p_pattern text DEFAULT NULL, p_resource_id text DEFAULT NULL,
                                  p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL,
                                  p_limit integer DEFAULT 50, p_before_seq bigint DEFAULT NULL,
                                  p_after_seq bigint DEFAULT NULL)
RETURNS TABLE (seq bigint, id uuid, occurred timestamptz, event text, resource_id text, resource jsonb,
               related jsonb, payload jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
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
    IF p_resource_id IS NOT NULL THEN
        RETURN QUERY
        SELECT f.seq, f.id, f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload
          FROM (SELECT e FROM pgflow._resource_events(p_resource_id, p_since, NULL) e
                 WHERE (v_like IS NULL OR e.event LIKE v_like) AND (p_until IS NULL OR e.occurred < p_until)
                   AND (p_after_seq IS NULL OR e.seq > p_after_seq) AND (p_before_seq IS NULL OR e.seq < p_before_seq)
                 ORDER BY CASE WHEN p_after_seq IS NOT NULL THEN e.seq END,
                          CASE WHEN p_after_seq IS NULL THEN e.occurred END DESC,
                          CASE WHEN p_after_seq IS NULL THEN e.seq END DESC
                 LIMIT p_limit) page
         CROSS JOIN LATERAL pgflow.fill_event(page.e) f
         ORDER BY CASE WHEN p_after_seq IS NOT NULL THEN f.seq END,
                  CASE WHEN p_after_seq IS NULL THEN f.occurred END DESC,
                  CASE WHEN p_after_seq IS NULL THEN f.seq END DESC;
    ELSIF p_after_seq IS NOT NULL THEN
        RETURN QUERY
        SELECT f.seq, f.id, f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload
          FROM (SELECT e FROM pgflow.events e
                 WHERE e.seq > p_after_seq AND (v_like IS NULL OR e.event LIKE v_like)
                   AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                 ORDER BY e.seq LIMIT p_limit) page
         CROSS JOIN LATERAL pgflow.fill_event(page.e) f
         ORDER BY f.seq;
    ELSE
        RETURN QUERY
        SELECT f.seq, f.id, f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload
          FROM (SELECT e FROM pgflow.events e
                 WHERE (p_before_seq IS NULL OR e.seq < p_before_seq) AND (v_like IS NULL OR e.event LIKE v_like)
                   AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                 ORDER BY e.occurred DESC, e.seq DESC LIMIT p_limit) page
         CROSS JOIN LATERAL pgflow.fill_event(page.e) f
         ORDER BY f.occurred DESC, f.seq DESC;
    END IF;
END $$;

-- The evaluators: 0008's evaluate_events and 0011's evaluate_proactive, matching a trigger's resource
-- filter (when it has one) against the filled event, and firing actions with the filled event (the
-- templates' {{ event.resource.name }} and the like). The filling runs only for events whose name
-- matched (a costly function: the planner checks the cheaper conditions first).
CREATE OR REPLACE FUNCTION pgflow.evaluate_events(p_limit integer DEFAULT 1000, p_max_shards integer DEFAULT 8,
                                       p_now timestamptz DEFAULT now(), p_own_transaction boolean DEFAULT false,
                                       OUT events integer, OUT firings integer, OUT more boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
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
           AND (a.resource_match = '{}' OR (pgflow.fill_event(v_batch[i])).resource @> a.resource_match)
         ORDER BY i, a.id
    LOOP
        IF v_m.threshold = 1 THEN
            SELECT * INTO v_a FROM pgflow.automations WHERE id = v_m.automation_id;
        ELSE
            SELECT * INTO v_a FROM pgflow.automations WHERE id = v_m.automation_id FOR UPDATE;
            SELECT count(*) INTO v_count FROM pgflow.events e
             WHERE e.occurred > (v_m.ev).occurred - v_a.within AND e.occurred <= (v_m.ev).occurred
               AND e.occurred >= coalesce(v_a.threshold_since, '-infinity')
               AND e.event LIKE ANY (v_a.patterns)
               AND (v_a.resource_match = '{}' OR (pgflow.fill_event(e)).resource @> v_a.resource_match);
            CONTINUE WHEN v_count < v_a.threshold;
            UPDATE pgflow.automations SET threshold_since = (v_m.ev).occurred + interval '1 microsecond' WHERE id = v_a.id;
        END IF;
        firings := firings + pgflow._fire(v_a, (v_m.ev).id::text, pgflow._event_json(pgflow.fill_event(v_m.ev)), p_now);
    END LOOP;

    -- proactive: a start event opens a wait; an expected event is a sighting
    INSERT INTO pgflow.automation_expectations (automation_id, event_id, event_occurred, resource_id, due_at)
    SELECT a.id, b.id, b.occurred, b.resource_id, b.occurred + a.within
      FROM unnest(v_batch) b JOIN pgflow.automations a
        ON a.kind = 'proactive' AND NOT a.paused AND a.after_patterns IS NOT NULL
       AND b.event LIKE ANY (a.after_patterns)
       AND (a.resource_match = '{}' OR (pgflow.fill_event(b)).resource @> a.resource_match)
    ON CONFLICT DO NOTHING;
    UPDATE pgflow.automations a SET last_seen_at = greatest(a.last_seen_at, s.occurred)
      FROM (SELECT a2.id, max(b.occurred) AS occurred
              FROM unnest(v_batch) b JOIN pgflow.automations a2
                ON a2.kind = 'proactive' AND a2.after_patterns IS NULL AND NOT a2.paused
               AND b.event LIKE ANY (a2.patterns)
               AND (a2.resource_match = '{}' OR (pgflow.fill_event(b)).resource @> a2.resource_match)
             GROUP BY a2.id) s
     WHERE a.id = s.id;
END $$;

CREATE OR REPLACE FUNCTION pgflow.evaluate_proactive(p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
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
        IF v_x.resource_id IS NULL THEN
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM pgflow.events e
                 WHERE e.resource_id IS NULL AND e.occurred >= v_x.event_occurred
                   AND e.occurred <= v_x.due_at AND e.event LIKE ANY (v_a.patterns));
        ELSE
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM pgflow._resource_events(v_x.resource_id, v_x.event_occurred, v_x.due_at) e
                 WHERE e.event LIKE ANY (v_a.patterns));
        END IF;
        SELECT pgflow._event_json(pgflow.fill_event(e)) INTO v_ev FROM pgflow.events e
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
-- Tag listings by a B-tree of (tag, created_at, run): a run's tags, one row each, written when the run
-- is created (tags never change). 0014 found a tag's runs through a GIN index on flow_runs.tags,
-- which has no order: a tag on 0.1 % of 10M runs fetched and sorted 10,000 runs per page (p99 109 ms);
-- this walks the tag's newest entries, a page's worth, whatever the tag's frequency. And the GIN goes:
-- flow_runs' updates are not HOT, so each transition of every run (two per drained run) also wrote a
-- GIN entry, tags or none. No foreign key (an insert's check, and a cascade per deleted run): the
-- rows of deleted runs are deleted by a trigger on flow_runs' DELETE (retention only, never the hot
-- path), and the listing joins flow_runs anyway.
-- ============================================================================================
CREATE TABLE pgflow.flow_run_tags (
    tag         text        NOT NULL,
    created_at  timestamptz NOT NULL,   -- the run's
    flow_run_id uuid        NOT NULL,
    PRIMARY KEY (tag, created_at, flow_run_id)
);
INSERT INTO pgflow.flow_run_tags (tag, created_at, flow_run_id)
SELECT DISTINCT t, r.created_at, r.id FROM pgflow.flow_runs r CROSS JOIN LATERAL unnest(r.tags) t;
DROP INDEX pgflow.flow_runs_tags;

CREATE FUNCTION pgflow._flow_run_tags_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgflow.flow_run_tags (tag, created_at, flow_run_id)
    SELECT DISTINCT t, n.created_at, n.id FROM new_rows n CROSS JOIN LATERAL unnest(n.tags) t
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE FUNCTION pgflow._flow_run_tags_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgflow.flow_run_tags g
     USING (SELECT DISTINCT t, o.created_at, o.id FROM old_rows o CROSS JOIN LATERAL unnest(o.tags) t) d(tag, created_at, id)
     WHERE g.tag = d.tag AND g.created_at = d.created_at AND g.flow_run_id = d.id;
    RETURN NULL;
END $$;
CREATE TRIGGER flow_runs_tags_insert AFTER INSERT ON pgflow.flow_runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._flow_run_tags_insert();
CREATE TRIGGER flow_runs_tags_delete AFTER DELETE ON pgflow.flow_runs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._flow_run_tags_delete();

-- _flow_run_keys (0014's) with the tag route: a tag alone, or with filters no earlier route serves,
-- walks flow_run_tags. The other routes keep checking r.tags on the way.
CREATE OR REPLACE FUNCTION pgflow._flow_run_keys(
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
    -- (the tag route below finds the tag's runs by their rows: a second test of r.tags would only make
    -- the planner expect few matches, and plan a parallel walk that costs more than the page)
    IF p_tag IS NOT NULL AND (coalesce(p_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING', 'SCHEDULED', 'FAILED', 'CRASHED', 'CANCELLED'), false)
                              OR p_dep_id IS NOT NULL OR p_queue_id IS NOT NULL OR p_flow_id IS NOT NULL) THEN
        v_where := v_where || ' AND r.tags @> ARRAY[$5]';
    END IF;
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
    ELSIF p_tag IS NOT NULL THEN
        -- the tag's runs, newest first (flow_run_tags), the keyset and time range on its own columns
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_run_tags g JOIN pgflow.flow_runs r ON r.id = g.flow_run_id '
              || 'WHERE g.tag = $5'
              || CASE WHEN p_since IS NOT NULL THEN ' AND g.created_at >= $7' ELSE '' END
              || CASE WHEN p_until IS NOT NULL THEN ' AND g.created_at < $8' ELSE '' END
              || CASE WHEN p_after_at IS NOT NULL THEN ' AND (g.created_at, g.flow_run_id) < ($9, $10)' ELSE '' END
              || v_where || ' ORDER BY g.created_at DESC, g.flow_run_id DESC LIMIT $11';
    ELSE
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE true' || v_where || v_order;
    END IF;
    RETURN QUERY EXECUTE v_sql USING p_type, p_name, p_flow_id, p_dep_id, p_tag, p_queue_id, p_since, p_until,
                                     p_after_at, p_after_id, p_limit, v_dep_flow, p_now,
                                     CASE WHEN p_name IS NOT NULL THEN ARRAY[p_name]
                                          WHEN p_type = 'FAILED' THEN ARRAY['Failed', 'TimedOut']
                                          ELSE ARRAY[initcap(p_type::text)] END;
END $$;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;

-- ============================================================================================
-- The hot path's joins give PostgreSQL the runs as an array. The claim's UPDATE joined flow_runs to
-- its locked CTE by id, and the completion's to its proposals and its transition-id check to the
-- state rows by transition id alone: once the history is partitioned by day (the retention work,
-- branch `retention`, not merged yet), a join key prunes partitions only at run time, after the
-- executor opened every partition and its indexes, on each call; an array parameter (`= ANY (v_ids)`)
-- prunes once, at executor start. Measured there with 36 day partitions: the drain fell 38 % without
-- these edits and 2.5 % with them. Same rows, same results here: the conditions only repeat what the
-- joins already say (and a replayed transition id is its own run's).
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow._claim_flow_runs_unchecked(
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
    v_status text;
    v_queues text[];
    v_qids   uuid[];
    v_cand   uuid[];
BEGIN
    IF NOT p_start OR EXISTS (SELECT 1 FROM pgflow.concurrency_limits l WHERE l.active) THEN
        RETURN QUERY SELECT * FROM pgflow._claim_flow_runs_general(p_agent_id, p_queues, p_max, p_start, p_now);
        RETURN;
    END IF;
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

    -- candidates, as in the general claim (no limit is active, so none is full)
    v_cand := ARRAY(
        SELECT c.flow_run_id
          FROM pgflow.work_queues q
          CROSS JOIN LATERAL (
              SELECT rq.flow_run_id, rq.scheduled_at FROM pgflow.run_queue rq
               WHERE rq.work_queue_id = q.id AND rq.scheduled_at <= p_now
               ORDER BY rq.scheduled_at
               LIMIT p_max
               FOR UPDATE SKIP LOCKED) c
         WHERE q.id = ANY (v_qids)
         ORDER BY q.priority, c.scheduled_at
         LIMIT p_max);
    IF cardinality(v_cand) = 0 THEN
        RETURN;
    END IF;

    -- lock the runs, skipping any a concurrent transition holds (as the general claim does: waiting
    -- for one would deadlock with a transition that waits for this claim's run_queue row), and start
    -- them: Pending is accepted from SCHEDULED, Running (Retrying after a first attempt) from Pending
    RETURN QUERY
    WITH cand AS (
        SELECT c.id, c.ord FROM unnest(v_cand) WITH ORDINALITY c(id, ord)),
    locked AS (
        SELECT r.id FROM pgflow.flow_runs r WHERE r.id = ANY (v_cand) AND r.state_type = 'SCHEDULED'
         ORDER BY r.id FOR UPDATE SKIP LOCKED),
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = 'RUNNING', state_name = CASE WHEN r.run_count >= 1 THEN 'Retrying' ELSE 'Running' END,
            state_timestamp = p_now, state_message = NULL, run_count = r.run_count + 1,
            start_time = coalesce(r.start_time, p_now), end_time = NULL,
            next_scheduled_start = NULL, pause_expires_at = NULL, agent_id = p_agent_id
          FROM locked l WHERE r.id = l.id AND r.id = ANY (v_cand)
        RETURNING r.id, r.name, r.flow_id, r.deployment_id, r.work_queue_id, r.parameters, r.tags, r.state_name,
                  r.run_count, r.expected_start_time, r.parent_task_run_id),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
        SELECT u.id, s.state_type, CASE WHEN s.n = 1 THEN 'Pending' ELSE u.state_name END, p_now
          FROM upd u JOIN cand c ON c.id = u.id
         CROSS JOIN (VALUES (1, 'PENDING'::pgflow.state_type), (2, 'RUNNING'::pgflow.state_type)) s(n, state_type)
         ORDER BY c.ord, s.n),
    deq AS (
        DELETE FROM pgflow.run_queue q USING upd u WHERE q.flow_run_id = u.id)
    SELECT u.id, u.name, f.name, d.id, d.name, d.entrypoint, u.parameters, u.tags, wq.name,
           'RUNNING'::pgflow.state_type, u.state_name, u.run_count, u.expected_start_time, u.parent_task_run_id
      FROM upd u
      JOIN cand c ON c.id = u.id
      JOIN pgflow.flows f ON f.id = u.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = u.deployment_id
      LEFT JOIN pgflow.work_queues wq ON wq.id = u.work_queue_id
     ORDER BY c.ord;
END $$;

CREATE OR REPLACE FUNCTION pgflow._complete_flow_runs(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamptz)
RETURNS pgflow.transition_result[]
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_ids uuid[] := ARRAY(SELECT p.run_id FROM unnest(p_proposals) p);
    v_ok  integer;
    v_res pgflow.transition_result[];
BEGIN
    -- lock in id order (as the general path does) and check every run after its lock
    SELECT count(*) INTO v_ok
      FROM (SELECT r.state_type, r.agent_id FROM pgflow.flow_runs r WHERE r.id = ANY (v_ids) ORDER BY r.id FOR UPDATE) l
     WHERE l.state_type = 'RUNNING' AND (l.agent_id IS NULL OR l.agent_id = p_agent_id);
    IF v_ok <> cardinality(v_ids)
       OR EXISTS (SELECT 1 FROM unnest(p_proposals) p JOIN pgflow.flow_run_states h ON h.transition_id = p.transition_id
                                                              AND h.flow_run_id = p.run_id AND h.flow_run_id = ANY (v_ids)
                   WHERE p.transition_id IS NOT NULL)
       OR EXISTS (SELECT 1 FROM pgflow.task_runs t WHERE t.flow_run_id = ANY (v_ids) AND NOT pgflow.is_terminal(t.state_type)) THEN
        RETURN NULL;
    END IF;
    WITH p AS (SELECT p.*, p.ordinality AS ord FROM unnest(p_proposals) WITH ORDINALITY p),
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = 'COMPLETED', state_name = 'Completed', state_timestamp = p_now, state_message = p.message,
            end_time = p_now, total_run_time = r.total_run_time + (p_now - r.state_timestamp),
            next_scheduled_start = NULL, pause_expires_at = NULL,
            agent_id = coalesce(p_agent_id, r.agent_id), process_id = coalesce(p.process_id, r.process_id)
          FROM p WHERE r.id = p.run_id AND r.id = ANY (v_ids)
        RETURNING r.id, r.run_count),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, transition_id)
        SELECT p.run_id, 'COMPLETED', 'Completed', p_now, p.message, p.transition_id
          FROM p JOIN upd u ON u.id = p.run_id ORDER BY p.ord)
    SELECT array_agg(ROW(p.run_id, 'ACCEPTED', NULL, 'COMPLETED', 'Completed', p_now, NULL, u.run_count, p.result)::pgflow.transition_result
                     ORDER BY p.ord)
      INTO v_res
      FROM p JOIN upd u ON u.id = p.run_id;
    IF EXISTS (SELECT 1 FROM unnest(p_proposals) p WHERE p.result IS NOT NULL) THEN
        INSERT INTO pgflow.results (run_id, value, created_at)
        SELECT p.run_id, p.result, p_now FROM unnest(p_proposals) p WHERE p.result IS NOT NULL
        ON CONFLICT (run_id) DO UPDATE SET value = excluded.value, created_at = excluded.created_at;
    END IF;
    IF EXISTS (SELECT 1 FROM pgflow.concurrency_slots) THEN
        DELETE FROM pgflow.concurrency_slots s WHERE s.lease_id = ANY (v_ids);
    END IF;
    RETURN v_res;
END $$;
