-- 0017: less work per statement on the hot path (issue 17: enqueue -> start latency and the drain).
-- Found with perf on a backend running run_deployment and claim_flow_runs: a third of their CPU was
-- spent before and after the rows were written, not in writing them. Same rows, same results, same
-- errors; measured in BENCHMARKS.md ("0017").

-- ============================================================================================
-- state_type_of in plpgsql. The CHECK constraints of flow_runs, flow_run_states, task_runs and
-- task_run_states call it, and PostgreSQL prepares a table's CHECK expressions once per statement that
-- writes the table: a LANGUAGE sql function there is inlined each time, i.e. its body (a CASE of
-- sixteen names) parsed and analysed again — ≈ 15 % of a one-run claim's backend CPU (perf). A
-- plpgsql body is compiled once per session; per row it costs ≈ 0.5 µs more than the inlined CASE
-- (200,000 rows: 0.67 vs 1.15 µs each), against ≈ 0.1 ms saved per statement.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow.state_type_of(p_state_name text) RETURNS pgflow.state_type
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN CASE p_state_name
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
    END;
END $$;

-- resolve_parameters (every deployment run's parameters pass through it): a SECURITY DEFINER SQL
-- function is never inlined, so its body was parsed on every call. Same checks in plpgsql.
CREATE OR REPLACE FUNCTION pgflow.resolve_parameters(p_parameters jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
BEGIN
    IF p_parameters IS NULL OR strpos(p_parameters::text, '{{') = 0 THEN
        RETURN p_parameters;
    END IF;
    RETURN pgflow._check_parameters(pgflow._resolve_templates(p_parameters), 'parameters with their variables resolved');
END $$;

-- ============================================================================================
-- One AFTER trigger per table where there were two or three. Each statement-level trigger costs a
-- plpgsql call and its own queries at the end of every statement that inserts state rows (the
-- enqueue, the claim, every transition) or log lines; one function now does what the three on
-- flow_run_states did (the pgflow.flow-run.<State> events of 0016, the wake-up of followers on
-- pgflow_flow_run_states, the API stream's notification while it has a live lease), and one what
-- the two on logs did.
-- ============================================================================================
CREATE FUNCTION pgflow._flow_run_states_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgflow.events (occurred, event, resource_id)
    SELECT n."timestamp", 'pgflow.flow-run.' || n.state_name, n.flow_run_id::text
      FROM new_rows n
     ORDER BY n.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM pgflow.notify('pgflow_flow_run_states', '');
    IF EXISTS (SELECT 1 FROM pgflow.automations WHERE NOT paused) THEN
        PERFORM pg_notify('pgflow_events', '');
    END IF;
    IF EXISTS (SELECT 1 FROM pgflow.stream_listeners WHERE expires_at > now()) THEN
        PERFORM pg_notify('pgflow_stream_states', string_agg(c.flow_run_id::text || ':' || c.id, ',' ORDER BY c.id))
           FROM (SELECT n.flow_run_id, n.id, (row_number() OVER (ORDER BY n.id) - 1) / 100 AS chunk FROM new_rows n) c
          GROUP BY c.chunk;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER flow_run_states_events ON pgflow.flow_run_states;
DROP TRIGGER flow_run_states_notify ON pgflow.flow_run_states;
DROP TRIGGER flow_run_states_stream_notify ON pgflow.flow_run_states;
DROP FUNCTION pgflow._flow_run_state_events();
DROP FUNCTION pgflow._notify_flow_run_states();
DROP FUNCTION pgflow._notify_stream_states();
CREATE TRIGGER flow_run_states_inserted AFTER INSERT ON pgflow.flow_run_states
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._flow_run_states_inserted();

CREATE FUNCTION pgflow._logs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow.notify('pgflow_logs', '');
    IF EXISTS (SELECT 1 FROM pgflow.stream_listeners WHERE expires_at > now()) THEN
        PERFORM pg_notify('pgflow_stream_logs', string_agg(c.flow_run_id::text || ':' || c.id, ','))
           FROM (SELECT m.flow_run_id, m.id, (row_number() OVER () - 1) / 100 AS chunk
                   FROM (SELECT n.flow_run_id, max(n.id) AS id FROM new_rows n WHERE n.flow_run_id IS NOT NULL
                          GROUP BY n.flow_run_id) m) c
          GROUP BY c.chunk;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER logs_notify ON pgflow.logs;
DROP TRIGGER logs_stream_notify ON pgflow.logs;
DROP FUNCTION pgflow._notify_logs();
DROP FUNCTION pgflow._notify_stream_logs();
CREATE TRIGGER logs_inserted AFTER INSERT ON pgflow.logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgflow._logs_inserted();


-- ============================================================================================
-- The claim in one function and three queries (the agent and its queues; the candidates; the start).
-- claim_flow_runs called _claim_flow_runs_unchecked
-- (a second plpgsql layer whose rows were materialised and joined again for the deployment's
-- timeout) and checked the agent and its queues in three statements. Same checks in the same order,
-- same errors; the general path (p_start false, or a concurrency limit active) is
-- _claim_flow_runs_general as before.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow.claim_flow_runs(
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
    parent_task_run_id  uuid,
    timeout_seconds     double precision
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    v_status  text;
    v_queues  text[];
    v_qids    uuid[];
    v_unknown boolean;
    v_limited boolean;
    v_cand    uuid[];
BEGIN
    IF p_max > 10000 THEN
        RAISE EXCEPTION 'pgflow: claim at most 10000 runs at once, not %', p_max
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 to 10000';
    END IF;
    IF p_max IS NULL OR p_max < 1 THEN
        RAISE EXCEPTION 'pgflow: claim at least one run, not %', coalesce(p_max::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 or more';
    END IF;
    SELECT a.status, x.qs,
           ARRAY(SELECT q.id FROM pgflow.work_queues q WHERE q.name = ANY (x.qs) AND NOT q.paused),
           (SELECT count(*) FROM pgflow.work_queues q WHERE q.name = ANY (x.qs)) < cardinality(ARRAY(SELECT DISTINCT unnest(x.qs))),
           NOT p_start OR EXISTS (SELECT 1 FROM pgflow.concurrency_limits l WHERE l.active)
      INTO v_status, v_queues, v_qids, v_unknown, v_limited
      FROM pgflow.agents a CROSS JOIN LATERAL (SELECT coalesce(nullif(p_queues, '{}'), a.work_queues) AS qs) x
     WHERE a.id = p_agent_id;
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown agent %', coalesce(p_agent_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'register with SELECT pgflow.register_agent(name, queues) and claim with its id';
    END IF;
    IF v_status <> 'ONLINE' THEN
        RAISE EXCEPTION 'pgflow: agent % is offline (its heartbeat lapsed or it deregistered)', p_agent_id
            USING ERRCODE = '55000', HINT = 'call pgflow.heartbeat(agent id) to come back, or register again';
    END IF;
    IF v_unknown THEN
        RAISE EXCEPTION 'pgflow: unknown work queue in %', v_queues
            USING ERRCODE = 'P0002', HINT = 'create it with pgflow.create_work_queue(name)';
    END IF;
    IF v_limited THEN
        RETURN QUERY SELECT c.*, d.timeout_seconds
                       FROM pgflow._claim_flow_runs_general(p_agent_id, p_queues, p_max, p_start, p_now) c
                       LEFT JOIN pgflow.deployments d ON d.id = c.deployment_id;
        RETURN;
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
    WITH locked AS (
        SELECT r.id FROM pgflow.flow_runs r WHERE r.id = ANY (v_cand) AND r.state_type = 'SCHEDULED'
         ORDER BY r.id FOR UPDATE SKIP LOCKED),
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = 'RUNNING', state_name = CASE WHEN r.run_count >= 1 THEN 'Retrying' ELSE 'Running' END,
            state_timestamp = p_now, state_message = NULL, run_count = r.run_count + 1,
            start_time = coalesce(r.start_time, p_now), end_time = NULL,
            next_scheduled_start = NULL, pause_expires_at = NULL, agent_id = p_agent_id
          FROM locked l WHERE r.id = l.id
        RETURNING r.id, r.name, r.flow_id, r.deployment_id, r.work_queue_id, r.parameters, r.tags, r.state_name,
                  r.run_count, r.expected_start_time, r.parent_task_run_id),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
        SELECT u.id, s.state_type, CASE WHEN s.n = 1 THEN 'Pending' ELSE u.state_name END, p_now
          FROM upd u
         CROSS JOIN (VALUES (1, 'PENDING'::pgflow.state_type), (2, 'RUNNING'::pgflow.state_type)) s(n, state_type)
         ORDER BY array_position(v_cand, u.id), s.n),
    deq AS (
        DELETE FROM pgflow.run_queue q USING upd u WHERE q.flow_run_id = u.id)
    SELECT u.id, u.name, f.name, d.id, d.name, d.entrypoint, u.parameters, u.tags, wq.name,
           'RUNNING'::pgflow.state_type, u.state_name, u.run_count, u.expected_start_time, u.parent_task_run_id,
           d.timeout_seconds
      FROM upd u
      JOIN pgflow.flows f ON f.id = u.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = u.deployment_id
      LEFT JOIN pgflow.work_queues wq ON wq.id = u.work_queue_id
     ORDER BY array_position(v_cand, u.id);  -- (as the state rows above: a join to the candidates here was a nested loop, each run against every candidate)
END $$;

-- ============================================================================================
-- No second, array condition on a join key. 0016 added `r.id = ANY (v_cand)` to the claim's UPDATE
-- (joined to the locked runs), and `= ANY (v_ids)` to the fast completion's UPDATE (joined to the
-- proposals) and to its transition-id check, so that a history partitioned by day (branch `retention`)
-- would be pruned once at executor start. On the unpartitioned tables the planner uses the array as a
-- second index condition of the nested loop's inner index scan, and the B-tree code sorts and
-- de-duplicates the array again on every rescan — once per run of the batch: PostgreSQL CPU per drained
-- run 237 -> 204 µs without them (scripts/bench-drain-cpu.sh, 3 interleaved rounds). The claim's lock
-- and the completion's lock still read the runs by the array (one scan each), as they did before 0016.
-- ============================================================================================
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
                                                              AND h.flow_run_id = p.run_id
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

DROP FUNCTION pgflow._claim_flow_runs_unchecked(uuid, text[], integer, boolean, timestamptz);

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
