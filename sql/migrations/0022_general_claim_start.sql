-- 0022: the general claim (runs a concurrency limit applies to) starts its runs without the two
-- transitions. With p_start it moved its runs to Pending through _transition_flow_runs (a decision per
-- run, the admission into the limits, the writes) and then to Running through it again (a decision and
-- an admission that found every slot already held): 1,630 of the 2,360 µs a one-run claim of a limited
-- deployment spent (pg_stat_statements, track = all, 2,000 claims). Now it admits the locked runs into
-- their limits itself (_flow_run_limits, _take_slots: what the transition does, in the same order) and
-- starts the granted ones with the fast path's writes (the state names, attempt count, start time and
-- owner _decide gives a run claimed and started by its agent; Pending and Running recorded; dequeued).
-- Only the runs a full limit denied go through the transition, which makes them wait for a slot or
-- cancels them (CANCEL_NEW) as before. Without p_start the claim is unchanged. Tests/sql/limits.sql,
-- push_limits.sql and perf.sql (which compares it with the fast path) cover it.

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
    v_order   uuid[];
    v_denied  uuid[] := '{}';
    v_results pgflow.transition_result[] := '{}';
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
    v_order := ARRAY(SELECT c.id FROM unnest(v_cand) WITH ORDINALITY c(id, ord) WHERE c.id = ANY (v_locked) ORDER BY c.ord);
    IF p_start THEN
        -- admit them into their limits here, in the candidates' order (as the transition would); the
        -- granted ones start below with the fast path's writes
        v_denied := ARRAY(SELECT t.lease_id FROM pgflow._take_slots(ARRAY(
                        SELECT ROW(l.run_id, 'flow_run', l.run_id, l.limit_ids, 1, NULL)::pgflow._slot_request
                          FROM pgflow._flow_run_limits(v_order) l ORDER BY l.ord), p_now) t
                     WHERE NOT t.granted);
    END IF;
    IF NOT p_start OR cardinality(v_denied) > 0 THEN
        -- the transition to Pending: without a start, every run; with one, the runs a full limit denied,
        -- which it makes wait for a slot (AwaitingConcurrencySlot) or cancels (CANCEL_NEW) — or admits,
        -- if a slot was freed meanwhile: those it makes Pending, and they start below
        v_results := ARRAY(
            SELECT t FROM pgflow._transition_flow_runs(ARRAY(
                       SELECT ROW(c.id, 'PENDING'::pgflow.state_type, 'Pending', NULL, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
                         FROM unnest(v_order) WITH ORDINALITY c(id, ord)
                        WHERE NOT p_start OR c.id = ANY (v_denied)
                        ORDER BY c.ord), p_agent_id, p_now, true) t);
    END IF;
    IF p_start THEN
        -- The granted runs: SCHEDULED, locked by this claim, holding their slots. Pending and Running in one
        -- statement with the fast path's writes (the state names, attempt count, start time and owner that
        -- _decide gives a run claimed and started by its agent; both states recorded). The runs the
        -- transition above made Pending move on to Running the same way.
        WITH go AS (SELECT c.id, c.ord, coalesce(r.status = 'ACCEPTED', false) AS pending
                      FROM unnest(v_order) WITH ORDINALITY c(id, ord)
                      LEFT JOIN unnest(v_results) r ON r.run_id = c.id
                     WHERE c.id <> ALL (v_denied) OR r.status = 'ACCEPTED'),
        upd AS (
            UPDATE pgflow.flow_runs f SET
                state_type = 'RUNNING', state_name = CASE WHEN f.run_count >= 1 THEN 'Retrying' ELSE 'Running' END,
                state_timestamp = p_now, state_message = NULL, run_count = f.run_count + 1,
                start_time = coalesce(f.start_time, p_now), end_time = NULL,
                next_scheduled_start = NULL, pause_expires_at = NULL, agent_id = coalesce(p_agent_id, f.agent_id)
              FROM go WHERE f.id = go.id AND f.state_type = CASE WHEN go.pending THEN 'PENDING' ELSE 'SCHEDULED' END::pgflow.state_type
            RETURNING f.id, f.state_name, f.run_count),
        hist AS (
            INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
            SELECT u.id, s.state_type, CASE WHEN s.n = 1 THEN 'Pending' ELSE u.state_name END, p_now
              FROM upd u JOIN go ON go.id = u.id
             CROSS JOIN (VALUES (1, 'PENDING'::pgflow.state_type), (2, 'RUNNING'::pgflow.state_type)) s(n, state_type)
             WHERE s.n = 2 OR NOT go.pending
             ORDER BY go.ord, s.n),
        deq AS (
            DELETE FROM pgflow.run_queue q WHERE q.flow_run_id = ANY (ARRAY(SELECT u.id FROM upd u)))
        SELECT coalesce(array_agg(ROW(u.id, 'ACCEPTED', NULL, 'RUNNING', u.state_name, p_now, NULL, u.run_count, NULL)::pgflow.transition_result
                                  ORDER BY go.ord), '{}')
          INTO v_results
          FROM upd u JOIN go ON go.id = u.id;
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
