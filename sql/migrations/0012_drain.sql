-- 0012: a cheaper drain (issue 17): the state events of 0008 without a scan of the history per
-- statement and without a random-key index entry per flow-run event. Measured with
-- scripts/bench-cost.sh and scripts/bench-peers.sh (BENCHMARKS.md, docs/scaling.md). Every transition
-- still appends its pgflow.flow-run.<State> event to pgflow.events in its own transaction.

-- ============================================================================================
-- The state-event trigger looks each run up by primary key. 0008's join of the transition table
-- with flow_runs was planned as a hash join over a sequential scan of the whole of flow_runs (the
-- transition table has no statistics), once per transition statement: a cost that grew with the
-- history. The lateral lookup (OFFSET 0 keeps it from being flattened into a join) is an index probe
-- per new state row whatever the history's size.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow._flow_run_state_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgflow.events (occurred, event, resource_id, resource, payload)
    SELECT n."timestamp", 'pgflow.flow-run.' || n.state_name, n.flow_run_id::text,
           jsonb_strip_nulls(jsonb_build_object(
               'id', n.flow_run_id, 'kind', 'flow-run', 'name', r.name, 'flow', r.flow_name,
               'deployment', r.flow_name || '/' || r.deployment_name, 'tags', r.tags)),
           jsonb_strip_nulls(jsonb_build_object(
               'state_type', n.state_type, 'state_name', n.state_name, 'message', n.message,
               'run_count', r.run_count, 'scheduled_time', n.scheduled_time))
      FROM new_rows n
     CROSS JOIN LATERAL (
         SELECT r.name, r.tags, r.run_count, f.name AS flow_name, d.name AS deployment_name
           FROM pgflow.flow_runs r
           JOIN pgflow.flows f ON f.id = r.flow_id
           LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
          WHERE r.id = n.flow_run_id
         OFFSET 0) r
     ORDER BY n.id;
    IF FOUND AND EXISTS (SELECT 1 FROM pgflow.automations WHERE NOT paused) THEN
        PERFORM pg_notify('pgflow_events', '');
    END IF;
    RETURN NULL;
END $$;

-- ============================================================================================
-- events_resource without the engine's flow-run events. Their resource id is the run's id (random
-- keys: the most expensive of the events' three index entries, ≈ a third of an event's insert), and
-- the run's own history already finds them: flow_run_states (primary key flow_run_id, id) gives the
-- times of the run's states, and each state's event has that time as `occurred` (events_occurred).
-- event_page and evaluate_proactive read a resource's events through both.
-- ============================================================================================
DROP INDEX pgflow.events_resource;
CREATE INDEX events_resource ON pgflow.events (resource_id, occurred) WHERE event NOT LIKE 'pgflow.flow-run.%';

-- Internal: the flow run a resource id names, if it is one (flow-run events carry the run id as text).
CREATE FUNCTION pgflow._resource_flow_run(p_resource_id text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_resource_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN p_resource_id::uuid END
$$;

-- Internal: the events of one resource (every column of pgflow.events): the partial index for any
-- event but the engine's flow-run events, the run's state times for those.
CREATE FUNCTION pgflow._resource_events(p_resource_id text, p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL)
RETURNS SETOF pgflow.events
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM pgflow.events e
     WHERE e.resource_id = p_resource_id AND e.event NOT LIKE 'pgflow.flow-run.%'
       AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred <= p_until)
    UNION ALL
    SELECT e.* FROM pgflow.events e
     WHERE e.occurred IN (SELECT s."timestamp" FROM pgflow.flow_run_states s
                           WHERE s.flow_run_id = pgflow._resource_flow_run(p_resource_id)
                             AND (p_since IS NULL OR s."timestamp" >= p_since) AND (p_until IS NULL OR s."timestamp" <= p_until))
       AND e.resource_id = p_resource_id AND e.event LIKE 'pgflow.flow-run.%'
$$;

-- Events, newest first (or, with p_after_seq, oldest first after that seq): 0008's, with a resource
-- filter read through _resource_events.
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
        SELECT e.seq, e.id, e.occurred, e.event, e.resource_id, e.resource, e.related, e.payload
          FROM pgflow._resource_events(p_resource_id, p_since, NULL) e
         WHERE (v_like IS NULL OR e.event LIKE v_like) AND (p_until IS NULL OR e.occurred < p_until)
           AND (p_after_seq IS NULL OR e.seq > p_after_seq) AND (p_before_seq IS NULL OR e.seq < p_before_seq)
         ORDER BY CASE WHEN p_after_seq IS NOT NULL THEN e.seq END,
                  CASE WHEN p_after_seq IS NULL THEN e.occurred END DESC,
                  CASE WHEN p_after_seq IS NULL THEN e.seq END DESC
         LIMIT p_limit;
    ELSIF p_after_seq IS NOT NULL THEN
        RETURN QUERY
        SELECT e.seq, e.id, e.occurred, e.event, e.resource_id, e.resource, e.related, e.payload FROM pgflow.events e
         WHERE e.seq > p_after_seq AND (v_like IS NULL OR e.event LIKE v_like)
           AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
         ORDER BY e.seq LIMIT p_limit;
    ELSE
        RETURN QUERY
        SELECT e.seq, e.id, e.occurred, e.event, e.resource_id, e.resource, e.related, e.payload FROM pgflow.events e
         WHERE (p_before_seq IS NULL OR e.seq < p_before_seq) AND (v_like IS NULL OR e.event LIKE v_like)
           AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
         ORDER BY e.occurred DESC, e.seq DESC LIMIT p_limit;
    END IF;
END $$;

-- The proactive pass: 0008's, with the "did the expected event happen to that resource" check read
-- through _resource_events (0008's `resource_id IS NOT DISTINCT FROM` could use no index at all).
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
-- Privileges (the rule of docs/security.md): the new functions are internal (called by the
-- SECURITY DEFINER functions above), so nobody but the owner executes them.
-- ============================================================================================
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
