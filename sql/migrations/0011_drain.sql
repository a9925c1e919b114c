-- 0011: a cheaper drain (issue 17): the state events of 0008 without a scan of the history per
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
-- Completion in one pass. An agent's batch of completions (every proposal COMPLETED/Completed by an
-- agent, every run RUNNING and that agent's or nobody's, no transition id seen before, no unfinished
-- task run) is what the general path (_transition_flow_runs: per-run _decide in plpgsql, a decision
-- array, a write per kind) always accepts; _complete_flow_runs writes it set-based: the runs' rows,
-- their Completed states (the events trigger appends the events), results and slots. Anything else,
-- or any error on the way, goes to the general path, as before. What is written and returned is the
-- general path's (Tests/sql/perf.sql completes twin runs through both and compares).
-- ============================================================================================
CREATE FUNCTION pgflow._complete_flow_runs(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamptz)
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
          FROM p WHERE r.id = p.run_id
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

-- 0003's set_flow_run_states, trying _complete_flow_runs first (in a subtransaction: an error there
-- leaves nothing behind and the general path decides run by run, as before).
CREATE OR REPLACE FUNCTION pgflow.set_flow_run_states(
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_proposals pgflow._proposal[];
    v_res       pgflow.transition_result[];
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_run_ids), 'set_flow_run_states');
    v_proposals := pgflow._proposals('flow_runs', p_run_ids, p_state_types, p_state_names, p_messages, p_results, p_transition_ids);
    PERFORM pgflow._check_agent(p_agent_id);
    IF p_agent_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM unnest(v_proposals) p WHERE p.state_type <> 'COMPLETED' OR p.state_name <> 'Completed') THEN
        BEGIN
            v_res := pgflow._complete_flow_runs(v_proposals, p_agent_id, p_now);
        EXCEPTION WHEN OTHERS THEN
            v_res := NULL;
        END;
        IF v_res IS NOT NULL THEN
            RETURN QUERY SELECT * FROM unnest(v_res);
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM pgflow._transition_flow_runs_isolated(v_proposals, p_agent_id, p_now, false, p_allow_retry);
END $$;

-- ============================================================================================
-- Privileges (the rule of docs/security.md): the new functions are internal (called by the
-- SECURITY DEFINER functions above), so nobody but the owner executes them.
-- ============================================================================================
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
