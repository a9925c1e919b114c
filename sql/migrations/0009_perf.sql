-- 0009: a cheaper hot path (issue 17), measured with scripts/bench-cost.sh and scripts/bench-peers.sh
-- (figures in BENCHMARKS.md and docs/scaling.md). The rules of the state machine do not change.

-- ============================================================================================
-- Claim and start in one row version. With p_start and no active concurrency limit, a claim moves
-- each run Scheduled -> Pending -> Running with one UPDATE of flow_runs (one new row version instead
-- of two) and records both states with one INSERT, in the order Pending, Running. Without p_start,
-- or while any concurrency limit is active, the claim is the general one of 0002/0003 (renamed
-- _claim_flow_runs_general), which takes slots on the way to Pending. What a claim writes and returns
-- is the same on both paths (Tests/sql/perf.sql compares them).
-- ============================================================================================
ALTER FUNCTION pgflow._claim_flow_runs_unchecked(uuid, text[], integer, boolean, timestamptz)
    RENAME TO _claim_flow_runs_general;

CREATE FUNCTION pgflow._claim_flow_runs_unchecked(
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
          FROM locked l WHERE r.id = l.id
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

-- ============================================================================================
-- Privileges (the rule of docs/security.md): the new functions are internal (SECURITY INVOKER,
-- called by the SECURITY DEFINER API functions), so nobody but the owner executes them.
-- ============================================================================================
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
