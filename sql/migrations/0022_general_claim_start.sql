-- 0022: the general claim (runs a concurrency limit applies to) starts its runs without a second
-- transition. With p_start it moved the runs it had made Pending on to Running through
-- _transition_flow_runs again: a decision per run and an admission into the limits that found every slot
-- already held, 650 of the 2,360 µs a one-run claim of a limited deployment spent (pg_stat_statements,
-- track = all, 2,000 claims). The runs accepted as Pending are locked by the claim and hold their slots;
-- they are moved on to Running with the writes the fast path uses (same state names, attempt count, start
-- time and owner as _decide gives a Pending run started by its agent). Tests/sql/limits.sql and
-- push_limits.sql cover the general claim; Tests/sql/perf.sql compares it with the fast path.

CREATE OR REPLACE FUNCTION pgflow._claim_flow_runs_general(p_agent_id uuid, p_queues text[] DEFAULT NULL::text[], p_max integer DEFAULT 1, p_start boolean DEFAULT false, p_now timestamp with time zone DEFAULT now())
 RETURNS TABLE(flow_run_id uuid, flow_run_name text, flow_name text, deployment_id uuid, deployment_name text, entrypoint text, parameters jsonb, tags text[], work_queue text, state_type pgflow.state_type, state_name text, run_count integer, expected_start_time timestamp with time zone, parent_task_run_id uuid)
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
    -- p_start: on to Running in the same statement (both states recorded), saving the agent a round trip.
    -- The runs accepted above are PENDING, locked by this claim and hold their slots: the second transition's
    -- decision and admission (a no-op for runs that hold their slots) are not needed, only its writes —
    -- as _decide would: Running (Retrying after a first attempt), a new attempt, the agent's.
    IF p_start THEN
        WITH acc AS (SELECT r.run_id, r.ordinality AS ord FROM unnest(v_results) WITH ORDINALITY r WHERE r.status = 'ACCEPTED'),
        upd AS (
            UPDATE pgflow.flow_runs f SET
                state_type = 'RUNNING', state_name = CASE WHEN f.run_count >= 1 THEN 'Retrying' ELSE 'Running' END,
                state_timestamp = p_now, state_message = NULL, run_count = f.run_count + 1,
                start_time = coalesce(f.start_time, p_now), end_time = NULL,
                next_scheduled_start = NULL, pause_expires_at = NULL, agent_id = coalesce(p_agent_id, f.agent_id)
              FROM acc WHERE f.id = acc.run_id AND f.state_type = 'PENDING'
            RETURNING f.id, f.state_name, f.run_count),
        hist AS (
            INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
            SELECT u.id, 'RUNNING', u.state_name, p_now FROM upd u JOIN acc ON acc.run_id = u.id ORDER BY acc.ord)
        SELECT coalesce(array_agg(ROW(u.id, 'ACCEPTED', NULL, 'RUNNING', u.state_name, p_now, NULL, u.run_count, NULL)::pgflow.transition_result
                                  ORDER BY acc.ord), '{}')
          INTO v_results
          FROM upd u JOIN acc ON acc.run_id = u.id;
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
END $function$;
