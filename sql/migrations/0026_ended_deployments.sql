-- 0026: an ending's state row knows its run's deployment (issue 17; the dashboard's home page after 0024).
--
-- 0024 moved the runs-ended-in-a-window reads from flow_runs_ended (which INCLUDEd deployment_id) to the
-- terminal state rows (flow_run_states_ended). failing_deployments, which the dashboard's home page calls
-- for the last 24 hours (and 7 days), then looked up each ended run's deployment in flow_runs: ≈ 4 µs per
-- ending, 130 ms for 28,800 endings, and the home page's p99 went from 72 to 241 ms
-- (scripts/bench-dashboard.sh on 1,000,000 runs; BENCHMARKS.md, "0026").
-- Now the state row of an ending carries the run's deployment (flow_run_states.deployment_id, written by the
-- two statements that write endings: the completion's and _transition_flow_runs'), flow_run_states_ended
-- INCLUDEs it, and failing_deployments reads it there (index only). Rows written before 0026 have NULL and
-- are looked up in flow_runs as before. Other state rows leave it NULL (nothing reads it there).
ALTER TABLE pgflow.flow_run_states ADD COLUMN deployment_id uuid;
COMMENT ON COLUMN pgflow.flow_run_states.deployment_id IS
    'the run''s deployment, on terminal state rows written since 0026 (the ended-run reads by deployment read it from flow_run_states_ended)';

DROP INDEX pgflow.flow_run_states_ended;
CREATE INDEX flow_run_states_ended ON pgflow.flow_run_states ("timestamp")
    INCLUDE (state_type, state_name, flow_run_id, id, deployment_id)
    WHERE state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED');

-- 0024's completion (the drain's), writing the deployment on the Completed state rows
CREATE OR REPLACE FUNCTION pgflow._complete_flow_runs(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamp with time zone)
 RETURNS pgflow.transition_result[]
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    v_ids uuid[] := ARRAY(SELECT p.run_id FROM unnest(p_proposals) p);
    v_ok  integer;
    v_res pgflow.transition_result[];
    v_lo  uuid;  -- the runs' smallest and largest ids: they prune the partitions of flow_runs and flow_run_states
    v_hi  uuid;
BEGIN
    SELECT (array_agg(i ORDER BY i))[1], (array_agg(i ORDER BY i DESC))[1] INTO v_lo, v_hi FROM unnest(v_ids) i;
    -- lock in id order (as the general path does) and check every run after its lock
    SELECT count(*) INTO v_ok
      FROM (SELECT r.state_type, r.agent_id FROM pgflow.flow_runs r WHERE r.id = ANY (v_ids) AND r.id >= v_lo AND r.id <= v_hi
             ORDER BY r.id FOR UPDATE) l
     WHERE l.state_type = 'RUNNING' AND (l.agent_id IS NULL OR l.agent_id = p_agent_id);
    IF v_ok <> cardinality(v_ids)
       OR EXISTS (SELECT 1 FROM unnest(p_proposals) p JOIN pgflow.flow_run_states h ON h.transition_id = p.transition_id
                                                              AND h.flow_run_id = p.run_id
                                                              AND h.flow_run_id >= v_lo AND h.flow_run_id <= v_hi
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
          FROM p WHERE r.id = p.run_id AND r.id >= v_lo AND r.id <= v_hi
        RETURNING r.id, r.run_count, r.deployment_id),  -- 0026: the deployment, for the ending's state row
    act AS (  -- 0024: no longer in progress
        DELETE FROM pgflow.active_runs a USING upd u WHERE a.flow_run_id = u.id),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, transition_id, deployment_id)
        SELECT p.run_id, 'COMPLETED', 'Completed', p_now, p.message, p.transition_id, u.deployment_id
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
END $function$;

-- 0024's _transition_flow_runs, writing the deployment on the state rows of endings
CREATE OR REPLACE FUNCTION pgflow._transition_flow_runs(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamp with time zone, p_locked boolean DEFAULT false, p_allow_retry boolean DEFAULT true)
 RETURNS SETOF pgflow.transition_result
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
    -- 0024: a run that leaves a terminal state: its ending (its last terminal state row) no longer ends it
    IF EXISTS (SELECT 1 FROM unnest(v_dec) d WHERE d.write AND pgflow.is_terminal(d.old_type)) THEN
        INSERT INTO pgflow.reopened_endings (state_id, flow_run_id)
        SELECT e.id, d.run_id FROM unnest(v_dec) d
         CROSS JOIN LATERAL (SELECT s.id FROM pgflow.flow_run_states s
                              WHERE s.flow_run_id = d.run_id AND s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                              ORDER BY s.id DESC LIMIT 1) e
         WHERE d.write AND pgflow.is_terminal(d.old_type)
        ON CONFLICT DO NOTHING;
    END IF;
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
        RETURNING r.id, r.deployment_id)  -- 0026: the deployment, for an ending's state row
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, scheduled_time, transition_id,
                                        deployment_id)
    SELECT d.run_id, d.new_type, d.new_name, p_now, d.message, d.next_start, d.transition_id,
           CASE WHEN pgflow.is_terminal(d.new_type) THEN upd.deployment_id END
      FROM d JOIN upd ON upd.id = d.run_id;
    -- 0024: the side rows of the runs written
    PERFORM pgflow._sync_run_sides(ARRAY(SELECT d.run_id FROM unnest(v_dec) d WHERE d.write));
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
END $function$;

-- 0024's failing_deployments, the deployment from the ending's state row (a lookup only for rows before 0026)
CREATE OR REPLACE FUNCTION pgflow.failing_deployments(p_since timestamp with time zone, p_limit integer DEFAULT 10)
 RETURNS TABLE(deployment text, failed bigint, finished bigint, last_failure timestamp with time zone)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
BEGIN
    PERFORM pgflow._check_page(p_limit, NULL);
    RETURN QUERY
    SELECT f.name || '/' || d.name, x.failed, x.finished, x.last_failure
      FROM (SELECT e.deployment_id,
                   count(*) FILTER (WHERE e.state_type IN ('FAILED', 'CRASHED')) AS failed, count(*) AS finished,
                   max(e."timestamp") FILTER (WHERE e.state_type IN ('FAILED', 'CRASHED')) AS last_failure
              FROM (SELECT s."timestamp", s.state_type,
                           coalesce(s.deployment_id, (SELECT r.deployment_id FROM pgflow.flow_runs r WHERE r.id = s.flow_run_id)) AS deployment_id
                      FROM pgflow.flow_run_states s
                     WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND s."timestamp" >= p_since
                       AND s.id NOT IN (SELECT o.state_id FROM pgflow.reopened_endings o)) e
             WHERE e.deployment_id IS NOT NULL
             GROUP BY e.deployment_id) x
      JOIN pgflow.deployments d ON d.id = x.deployment_id
      JOIN pgflow.flows f ON f.id = d.flow_id
     WHERE x.failed > 0
     ORDER BY x.failed DESC, 1
     LIMIT p_limit;
END $function$;

-- No JIT for the home page's window reads: the planner prices their per-ending subplan (the lookup of rows
-- from before 0026, the reopened endings) above jit_above_cost, and compiling cost 230 ms of a 20 ms query
-- (EXPLAIN ANALYZE on 1,000,000 runs, 33,331 endings in 24 h).
ALTER FUNCTION pgflow.failing_deployments(timestamptz, integer) SET jit = off;
ALTER FUNCTION pgflow.run_state_counts(timestamptz) SET jit = off;
ALTER FUNCTION pgflow.run_activity(timestamptz, timestamptz, interval) SET jit = off;
