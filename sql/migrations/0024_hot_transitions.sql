-- 0024: HOT transitions of flow_runs (issue 17's drain ratio). A claim and a completion rewrite state_type,
-- state_name, end_time and agent_id of every run of a batch; four indexes of flow_runs named those columns
-- (flow_runs_active, flow_runs_active_created, flow_runs_ended, flow_runs_failed), so no transition could
-- be a HOT update and each wrote ≈ 6 B-tree entries into indexes as large as the history. They go, and
-- flow_runs' partitions get fillfactor 40 (a batch rewrites every row of a page at once: the page needs
-- room for all its rows' new versions; new weeks copy it from the default partition, _ensure_history_week).
-- What the indexes served comes from small structures instead, written by the statements that change a run
-- (the claim's and the completion's own CTEs, not triggers: a trigger's transition table cost half the gain,
-- BENCHMARKS.md, "HOT transitions"):
--   * pgflow.active_runs: one row per run in PENDING, RUNNING, PAUSED or CANCELLING, with its agent and
--     state: the agents' reads (heartbeat, agent_unchanged_runs, the reaper, agent_list), the listings of
--     active states, queue_status, the metrics' and dashboard's in-progress counts. The fast claim and the
--     push insert, the completion deletes; every other writer (rare: _transition_flow_runs, the general
--     claim, retry, ad-hoc creation) re-derives the rows of the runs it changed with _sync_run_sides; a
--     deleted run's rows go with it (_flow_runs_deleted), a dropped week's with the week.
--   * pgflow.failed_runs: one row per run whose state is FAILED, CRASHED or CANCELLED (its state name and
--     creation time, the listing's order): what flow_runs_failed served. Only rare writers reach these
--     states, so only _sync_run_sides writes it.
--   * flow_run_states_ended, a partial index of the terminal state rows by time: what flow_runs_ended served
--     (runs ended in a range: the dashboard's activity, run_state_counts, failing deployments, the metrics,
--     retention's residue). A state row counts an ending, a run counts once: an ending a run was later
--     forced out of (a retry of a finished run, a terminal state replaced) is recorded by its state row's
--     id in pgflow.reopened_endings, which the readers subtract (an anti-join with a table that stays tiny).
-- The readers subtract reopened endings with NOT IN (a hashed subplan; NOT EXISTS planned a nested loop per row).
-- Tests/sql/hot_transitions.sql: the side tables equal what flow_runs says after every kind of transition;
-- a claim and a completion are HOT updates.
-- The function bodies below are main's (0022) with edits, each marked "0024": the writers claim_flow_runs,
-- _claim_flow_runs_general, _complete_flow_runs, _push_run, _create_flow_run_unchecked, _transition_flow_runs,
-- _retry_flow_run_unchecked, _flow_runs_deleted, _drop_history_weeks; the readers heartbeat,
-- agent_unchanged_runs, _end_agent_runs, reap_crashed_runs, expire_paused_runs, _delete_old_runs_unchecked,
-- run_activity, run_state_counts, failing_deployments, _flow_run_keys; the views queue_status, agent_list,
-- agent_status, metrics_flow_runs.

DROP INDEX pgflow.flow_runs_active, pgflow.flow_runs_active_created, pgflow.flow_runs_ended, pgflow.flow_runs_failed;

-- every leaf partition (the weeks, the default one, a legacy one): new weeks copy the default partition's
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT relid FROM pg_partition_tree('pgflow.flow_runs') WHERE isleaf LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 40)', p);
    END LOOP;
END $$;

CREATE TABLE pgflow.active_runs (
    flow_run_id uuid PRIMARY KEY,
    agent_id    uuid,
    state_type  pgflow.state_type NOT NULL CHECK (state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')),
    created_at  timestamptz NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
        autovacuum_vacuum_cost_delay = 0);
-- (a drain inserts and deletes a row per run, as in run_queue: vacuumed as often, so that its reads stay small)
CREATE INDEX active_runs_agent ON pgflow.active_runs (agent_id);
COMMENT ON TABLE pgflow.active_runs IS
    'one row per flow run in PENDING, RUNNING, PAUSED or CANCELLING (its agent, state and creation time), written by the statements that change flow_runs (0024)';

CREATE TABLE pgflow.failed_runs (
    flow_run_id uuid PRIMARY KEY,
    state_name  text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX failed_runs_listing ON pgflow.failed_runs (state_name, created_at, flow_run_id);
COMMENT ON TABLE pgflow.failed_runs IS
    'one row per flow run whose state is FAILED, CRASHED or CANCELLED (its state name and creation time: the listing''s order), 0024';

CREATE TABLE pgflow.reopened_endings (
    state_id    bigint PRIMARY KEY,  -- flow_run_states.id of the ending
    flow_run_id uuid NOT NULL
);
CREATE INDEX reopened_endings_run ON pgflow.reopened_endings (flow_run_id);
COMMENT ON TABLE pgflow.reopened_endings IS
    'terminal state rows that no longer end their run (it was retried or moved on): readers of flow_run_states_ended subtract them (0024)';

REVOKE ALL ON pgflow.active_runs, pgflow.failed_runs, pgflow.reopened_endings FROM PUBLIC;

-- Every side row derived again from flow_runs and flow_run_states: the migration's fill, and what a
-- loader that writes flow_runs itself (scripts/gen-history.sh, test fixtures) calls after it.
CREATE FUNCTION pgflow._fill_run_sides() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM pgflow.active_runs;
    DELETE FROM pgflow.failed_runs;
    DELETE FROM pgflow.reopened_endings;
    INSERT INTO pgflow.active_runs (flow_run_id, agent_id, state_type, created_at)
    SELECT r.id, r.agent_id, r.state_type, r.created_at FROM pgflow.flow_runs r
     WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
    INSERT INTO pgflow.failed_runs (flow_run_id, state_name, created_at)
    SELECT r.id, r.state_name, r.created_at FROM pgflow.flow_runs r
     WHERE r.state_type IN ('FAILED', 'CRASHED', 'CANCELLED');
    -- the endings recorded that no longer end their run: all but a run's last, and that one too when the
    -- run is no longer in a terminal state
    INSERT INTO pgflow.reopened_endings (state_id, flow_run_id)
    SELECT t.id, t.flow_run_id
      FROM (SELECT s.id, s.flow_run_id, max(s.id) OVER (PARTITION BY s.flow_run_id) AS last
              FROM pgflow.flow_run_states s WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')) t
      JOIN pgflow.flow_runs r ON r.id = t.flow_run_id
     WHERE t.id <> t.last OR r.state_type NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED');
$$;
REVOKE ALL ON FUNCTION pgflow._fill_run_sides() FROM PUBLIC;
SELECT pgflow._fill_run_sides();

CREATE INDEX flow_run_states_ended ON pgflow.flow_run_states ("timestamp") INCLUDE (state_type, state_name, flow_run_id, id)
    WHERE state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED');

-- The side rows of the given runs, derived again from flow_runs (what the rare writers call after
-- changing runs; the fast claim, the push and the completion write theirs in their own statements).
CREATE FUNCTION pgflow._sync_run_sides(p_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM pgflow.active_runs a
     WHERE a.flow_run_id = ANY (p_ids)
       AND NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = a.flow_run_id
                          AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING'));
    INSERT INTO pgflow.active_runs AS a (flow_run_id, agent_id, state_type, created_at)
    SELECT r.id, r.agent_id, r.state_type, r.created_at FROM pgflow.flow_runs r
     WHERE r.id = ANY (p_ids) AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
    ON CONFLICT (flow_run_id) DO UPDATE SET agent_id = excluded.agent_id, state_type = excluded.state_type
     WHERE (a.agent_id, a.state_type) IS DISTINCT FROM (excluded.agent_id, excluded.state_type);
    DELETE FROM pgflow.failed_runs x
     WHERE x.flow_run_id = ANY (p_ids)
       AND NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = x.flow_run_id
                          AND r.state_type IN ('FAILED', 'CRASHED', 'CANCELLED'));
    INSERT INTO pgflow.failed_runs AS x (flow_run_id, state_name, created_at)
    SELECT r.id, r.state_name, r.created_at FROM pgflow.flow_runs r
     WHERE r.id = ANY (p_ids) AND r.state_type IN ('FAILED', 'CRASHED', 'CANCELLED')
    ON CONFLICT (flow_run_id) DO UPDATE SET state_name = excluded.state_name WHERE x.state_name <> excluded.state_name;
$$;
REVOKE ALL ON FUNCTION pgflow._sync_run_sides(uuid[]) FROM PUBLIC;

-- the writers: every statement that moves a run into, between or out of the active states, ends or reopens one, or deletes runs

CREATE OR REPLACE FUNCTION pgflow.claim_flow_runs(p_agent_id uuid, p_queues text[] DEFAULT NULL::text[], p_max integer DEFAULT 1, p_start boolean DEFAULT false, p_now timestamp with time zone DEFAULT now())
 RETURNS TABLE(flow_run_id uuid, flow_run_name text, flow_name text, deployment_id uuid, deployment_name text, entrypoint text, parameters jsonb, tags text[], work_queue text, state_type pgflow.state_type, state_name text, run_count integer, expected_start_time timestamp with time zone, parent_task_run_id uuid, timeout_seconds double precision)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
DECLARE
    v_status  text;
    v_queues  text[];
    v_qids    uuid[];
    v_unknown boolean;
    v_limited boolean;
    v_general boolean;
    v_cand    uuid[];
    v_lo      uuid;  -- the candidates' smallest and largest ids: they prune flow_runs' partitions
    v_hi      uuid;
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
           EXISTS (SELECT 1 FROM pgflow.concurrency_limits l WHERE l.active)
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
    -- the general claim: without a start, or when a limit of one of the queues is active (it applies to
    -- every run of the queue)
    v_general := NOT p_start
                 OR v_limited AND EXISTS (SELECT 1 FROM pgflow.work_queues q JOIN pgflow.concurrency_limits l ON l.id = q.concurrency_limit_id
                                           WHERE q.id = ANY (v_qids) AND l.active);
    IF NOT v_general THEN
        -- candidates, as in the general claim (without a limit that applies to them, none waits for a slot)
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
        SELECT (array_agg(c ORDER BY c))[1], (array_agg(c ORDER BY c DESC))[1] INTO v_lo, v_hi FROM unnest(v_cand) c;
        -- a limit active somewhere: the general claim (slots, runs waiting for one) when one applies to a
        -- candidate; else none of them needs a slot
        v_general := v_limited AND EXISTS (
            SELECT 1 FROM pgflow.flow_runs r
             WHERE r.id = ANY (v_cand) AND r.id >= v_lo AND r.id <= v_hi
               AND pgflow._limit_applies(r.work_queue_id, r.deployment_id, r.tags));
    END IF;
    IF v_general THEN
        RETURN QUERY SELECT c.*, d.timeout_seconds
                       FROM pgflow._claim_flow_runs_general(p_agent_id, p_queues, p_max, p_start, p_now) c
                       LEFT JOIN pgflow.deployments d ON d.id = c.deployment_id;
        RETURN;
    END IF;

    -- lock the runs, skipping any a concurrent transition holds (as the general claim does: waiting
    -- for one would deadlock with a transition that waits for this claim's run_queue row), and start
    -- them: Pending is accepted from SCHEDULED, Running (Retrying after a first attempt) from Pending
    RETURN QUERY
    WITH locked AS (
        SELECT r.id FROM pgflow.flow_runs r WHERE r.id = ANY (v_cand) AND r.id >= v_lo AND r.id <= v_hi AND r.state_type = 'SCHEDULED'
         ORDER BY r.id LIMIT p_max FOR UPDATE SKIP LOCKED),  -- (LIMIT: never cuts, see above)
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = 'RUNNING', state_name = CASE WHEN r.run_count >= 1 THEN 'Retrying' ELSE 'Running' END,
            state_timestamp = p_now, state_message = NULL, run_count = r.run_count + 1,
            start_time = coalesce(r.start_time, p_now), end_time = NULL,
            next_scheduled_start = NULL, pause_expires_at = NULL, agent_id = p_agent_id
          FROM locked l WHERE r.id = l.id AND r.id >= v_lo AND r.id <= v_hi
        RETURNING r.id, r.name, r.flow_id, r.deployment_id, r.work_queue_id, r.parameters, r.tags, r.state_name,
                  r.run_count, r.expected_start_time, r.parent_task_run_id, r.created_at),
    act AS (  -- the runs in progress (0024: what flow_runs_active indexed)
        INSERT INTO pgflow.active_runs (flow_run_id, agent_id, state_type, created_at)
        SELECT u.id, p_agent_id, 'RUNNING', u.created_at FROM upd u),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
        SELECT u.id, s.state_type, CASE WHEN s.n = 1 THEN 'Pending' ELSE u.state_name END, p_now
          FROM upd u
         CROSS JOIN (VALUES (1, 'PENDING'::pgflow.state_type), (2, 'RUNNING'::pgflow.state_type)) s(n, state_type)
         ORDER BY array_position(v_cand, u.id), s.n),
    deq AS (
        DELETE FROM pgflow.run_queue q WHERE q.flow_run_id = ANY (ARRAY(SELECT u.id FROM upd u)))
    SELECT u.id, u.name, f.name, d.id, d.name, d.entrypoint, u.parameters, u.tags, wq.name,
           'RUNNING'::pgflow.state_type, u.state_name, u.run_count, u.expected_start_time, u.parent_task_run_id,
           d.timeout_seconds
      FROM upd u
      JOIN pgflow.flows f ON f.id = u.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = u.deployment_id
      LEFT JOIN pgflow.work_queues wq ON wq.id = u.work_queue_id
     ORDER BY array_position(v_cand, u.id);  -- (as the state rows above: a join to the candidates here was a nested loop, each run against every candidate)
END $function$;

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
        PERFORM pgflow._sync_run_sides(ARRAY(SELECT t.run_id FROM unnest(v_results) t));  -- 0024
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
        RETURNING r.id, r.run_count),
    act AS (  -- 0024: no longer in progress
        DELETE FROM pgflow.active_runs a USING upd u WHERE a.flow_run_id = u.id),
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
END $function$;

CREATE OR REPLACE FUNCTION pgflow._push_run(p_agent_id uuid, p_deployment_id uuid, p_parameters jsonb, p_tags text[], p_idempotency_key text, p_name text, p_work_queue_id uuid, p_parent_task_run_id uuid, p_now timestamp with time zone)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_id      uuid;
    v_name    text;
    v_params  jsonb;
    v_tags    text[];
    v_payload text;
BEGIN
    INSERT INTO pgflow.flow_runs (name, flow_id, deployment_id, work_queue_id, parameters, tags, idempotency_key,
                                  parent_task_run_id, retries, retry_delays, retry_backoff, retry_jitter,
                                  expected_start_time, next_scheduled_start, state_type, state_name, state_timestamp,
                                  run_count, start_time, agent_id, created_at)
    SELECT coalesce(p_name, pgflow.random_run_name()), d.flow_id, d.id, p_work_queue_id,
           pgflow.resolve_parameters(
               CASE WHEN d.parameters = '{}' OR coalesce(p_parameters, '{}') = '{}' THEN d.parameters || coalesce(p_parameters, '{}')
                    ELSE pgflow._check_parameters(d.parameters || p_parameters, 'parameters merged over the deployment''s') END),
           ARRAY(SELECT DISTINCT t FROM unnest(d.tags || coalesce(p_tags, '{}')) t ORDER BY t),
           p_idempotency_key, p_parent_task_run_id, d.retries, d.retry_delays, d.retry_backoff, d.retry_jitter,
           p_now, NULL, 'RUNNING', 'Running', p_now, 1, p_now, p_agent_id, p_now
      FROM pgflow.deployments d WHERE d.id = p_deployment_id
    ON CONFLICT DO NOTHING
    RETURNING id, name, parameters, tags INTO v_id, v_name, v_params, v_tags;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO pgflow.active_runs (flow_run_id, agent_id, state_type, created_at) VALUES (v_id, p_agent_id, 'RUNNING', p_now);  -- 0024
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", scheduled_time, message)
    VALUES (v_id, 'SCHEDULED', 'Scheduled', p_now, p_now, NULL),
           (v_id, 'PENDING', 'Pending', p_now, NULL, 'pushed to an idle agent that offered to take runs of its queue'),
           (v_id, 'RUNNING', 'Running', p_now, NULL, NULL);
    UPDATE pgflow.agent_offers SET slots = slots - 1, pushed = pushed || v_id WHERE agent_id = p_agent_id;
    SELECT json_build_object(
               'flow_run_id', v_id, 'flow_run_name', v_name, 'flow_name', f.name, 'deployment_id', d.id,
               'deployment_name', d.name, 'entrypoint', d.entrypoint, 'parameters', v_params::text, 'tags', v_tags,
               'work_queue', wq.name, 'state_type', 'RUNNING', 'state_name', 'Running', 'run_count', 1,
               'expected_start_time', p_now, 'parent_task_run_id', p_parent_task_run_id,
               'timeout_seconds', d.timeout_seconds, 'pushed', true,
               'pushed_at', extract(epoch FROM clock_timestamp()))::text
      INTO v_payload
      FROM pgflow.deployments d JOIN pgflow.flows f ON f.id = d.flow_id
      LEFT JOIN pgflow.work_queues wq ON wq.id = p_work_queue_id
     WHERE d.id = p_deployment_id;
    PERFORM pgflow.notify('pgflow_agent_' || p_agent_id::text,
                          CASE WHEN octet_length(v_payload) < 7000 THEN v_payload ELSE '' END);
    RETURN v_id;
END $function$;

CREATE OR REPLACE FUNCTION pgflow._create_flow_run_unchecked(p_flow_name text, p_parameters jsonb DEFAULT '{}'::jsonb, p_name text DEFAULT NULL::text, p_tags text[] DEFAULT '{}'::text[], p_parent_task_run_id uuid DEFAULT NULL::uuid, p_state_type text DEFAULT 'PENDING'::text, p_idempotency_key text DEFAULT NULL::text, p_retries integer DEFAULT 0, p_retry_delays double precision[] DEFAULT '{0}'::double precision[], p_retry_backoff text DEFAULT 'fixed'::text, p_retry_jitter double precision DEFAULT 0, p_agent_id uuid DEFAULT NULL::uuid, p_now timestamp with time zone DEFAULT now())
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
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
    INSERT INTO pgflow.active_runs (flow_run_id, agent_id, state_type, created_at) VALUES (v_id, p_agent_id, 'PENDING', p_now);  -- 0024
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
    VALUES (v_id, 'PENDING', 'Pending', p_now);
    IF upper(p_state_type) = 'RUNNING' THEN
        PERFORM pgflow._transition_flow_runs(ARRAY[ROW(v_id, 'RUNNING', 'Running', NULL, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal],
                                             p_agent_id, p_now);
    END IF;
    RETURN v_id;
END $function$;

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
        RETURNING r.id)
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, scheduled_time, transition_id)
    SELECT d.run_id, d.new_type, d.new_name, p_now, d.message, d.next_start, d.transition_id
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

CREATE OR REPLACE FUNCTION pgflow._retry_flow_run_unchecked(p_flow_run_id uuid, p_scheduled_time timestamp with time zone DEFAULT NULL::timestamp with time zone, p_now timestamp with time zone DEFAULT now())
 RETURNS pgflow.transition_result
 LANGUAGE plpgsql
AS $function$
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
    -- 0024: its ending (its last terminal state row) no longer ends it
    INSERT INTO pgflow.reopened_endings (state_id, flow_run_id)
    SELECT s.id, s.flow_run_id FROM pgflow.flow_run_states s
     WHERE s.flow_run_id = p_flow_run_id AND s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
     ORDER BY s.id DESC LIMIT 1
    ON CONFLICT DO NOTHING;
    UPDATE pgflow.flow_runs
       SET state_type = 'SCHEDULED', state_name = 'Scheduled', state_timestamp = p_now,
           state_message = 'retried by request', next_scheduled_start = coalesce(p_scheduled_time, p_now),
           end_time = NULL, agent_id = NULL, process_id = NULL, pause_expires_at = NULL
     WHERE id = p_flow_run_id;
    INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, scheduled_time)
    VALUES (p_flow_run_id, 'SCHEDULED', 'Scheduled', p_now, 'retried by request', coalesce(p_scheduled_time, p_now));
    INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at)
    VALUES (p_flow_run_id, v_run.work_queue_id, coalesce(p_scheduled_time, p_now));
    -- 0024: its ending no longer counts (above), it is no longer failed
    PERFORM pgflow._sync_run_sides(ARRAY[p_flow_run_id]);
    RETURN ROW(v_run.id, 'ACCEPTED', NULL, 'SCHEDULED', 'Scheduled', p_now, coalesce(p_scheduled_time, p_now),
               v_run.run_count, NULL)::pgflow.transition_result;
END $function$;

CREATE OR REPLACE FUNCTION pgflow._flow_runs_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    DELETE FROM pgflow.task_runs WHERE flow_run_id IN (SELECT id FROM old_rows);
    DELETE FROM pgflow.flow_run_inputs WHERE flow_run_id IN (SELECT id FROM old_rows);
    DELETE FROM pgflow.flow_run_keys WHERE flow_run_id IN (SELECT id FROM old_rows);
    UPDATE pgflow.artifacts SET flow_run_id = NULL WHERE flow_run_id IN (SELECT id FROM old_rows);
    -- 0024: the side rows
    DELETE FROM pgflow.active_runs WHERE flow_run_id IN (SELECT id FROM old_rows);
    DELETE FROM pgflow.failed_runs WHERE flow_run_id IN (SELECT id FROM old_rows);
    DELETE FROM pgflow.reopened_endings WHERE flow_run_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION pgflow._drop_history_weeks(p_older_than interval, p_now timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SET lock_timeout TO '500ms'
AS $function$
DECLARE
    v_cut    timestamptz := p_now - p_older_than;
    v_weeks  date[];
    v_week   date;
    v_lo     uuid;
    v_hi     uuid;
    v_runs   integer := 0;
    v_n      integer;
BEGIN
    v_weeks := ARRAY(SELECT w FROM pgflow._history_weeks() w
                      WHERE (w + 7)::timestamp AT TIME ZONE 'UTC' <= v_cut AND pgflow._history_week_done(w, v_cut));
    IF cardinality(v_weeks) = 0 THEN
        RETURN 0;
    END IF;
    BEGIN
        LOCK TABLE pgflow.flow_runs, pgflow.flow_run_states, pgflow.task_run_states, pgflow.results, pgflow.logs,
                   pgflow.flow_run_tags IN ACCESS EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    FOREACH v_week IN ARRAY v_weeks LOOP
        CONTINUE WHEN NOT pgflow._history_week_done(v_week, v_cut);  -- again, now that nothing can change
        v_lo := pgflow._history_week_lo(v_week);
        v_hi := pgflow._history_week_hi(v_week);
        EXECUTE format('SELECT count(*) FROM pgflow.%I', 'flow_runs_w' || to_char(v_week, 'YYYYMMDD')) INTO v_n;
        -- the residue, by row: what the week has of each (index range scans)
        DELETE FROM pgflow.task_runs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.flow_run_inputs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.flow_run_keys WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        UPDATE pgflow.artifacts SET flow_run_id = NULL WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        -- 0024: the side rows (no trigger sees a dropped partition's rows)
        DELETE FROM pgflow.active_runs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.failed_runs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.reopened_endings WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        -- the week itself
        EXECUTE (SELECT 'DROP TABLE ' || string_agg(format('pgflow.%I', name || '_w' || to_char(v_week, 'YYYYMMDD')), ', ')
                   FROM pgflow._history_tables());
        v_runs := v_runs + v_n;
    END LOOP;
    RETURN v_runs;
END $function$;

-- the readers of the dropped indexes

CREATE OR REPLACE FUNCTION pgflow.heartbeat(p_agent_id uuid, p_now timestamp with time zone DEFAULT now())
 RETURNS SETOF uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
BEGIN
    UPDATE pgflow.agents SET last_heartbeat_at = greatest(last_heartbeat_at, p_now), status = 'ONLINE'
     WHERE id = p_agent_id;
    IF NOT FOUND THEN
        PERFORM pgflow._unknown_agent(p_agent_id);
    END IF;
    RETURN QUERY SELECT a.flow_run_id FROM pgflow.active_runs a WHERE a.agent_id = p_agent_id AND a.state_type = 'CANCELLING';
END $function$;

CREATE OR REPLACE FUNCTION pgflow.agent_unchanged_runs(p_agent_id uuid, p_unchanged_for interval, p_now timestamp with time zone DEFAULT now())
 RETURNS TABLE(id uuid, state_type text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
    SELECT r.id, r.state_type::text FROM pgflow.active_runs a JOIN pgflow.flow_runs r ON r.id = a.flow_run_id
     WHERE a.agent_id = p_agent_id AND a.state_type IN ('PENDING', 'RUNNING')
       AND r.agent_id = p_agent_id AND r.state_type IN ('PENDING', 'RUNNING')
       AND r.state_timestamp < p_now - p_unchanged_for
       AND NOT EXISTS (SELECT 1 FROM pgflow.agent_offers o WHERE o.agent_id = p_agent_id AND r.id = ANY (o.pushed))
$function$;

CREATE OR REPLACE FUNCTION pgflow._end_agent_runs(p_agent_ids uuid[], p_why text, p_give_back boolean, p_now timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
BEGIN
    DELETE FROM pgflow.agent_offers WHERE agent_id = ANY (p_agent_ids);
    RETURN pgflow._end_runs(ARRAY(SELECT a.flow_run_id FROM pgflow.active_runs a WHERE a.agent_id = ANY (p_agent_ids)),
                            p_why, p_give_back, p_now);
END $function$;

CREATE OR REPLACE FUNCTION pgflow.reap_crashed_runs(p_heartbeat_timeout interval, p_now timestamp with time zone DEFAULT now())
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
BEGIN
    IF p_heartbeat_timeout IS NULL OR p_heartbeat_timeout <= interval '0' THEN
        RAISE EXCEPTION 'pgflow: heartbeat timeout must be positive, got %', coalesce(p_heartbeat_timeout::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass a few heartbeat periods, e.g. interval ''90 seconds''';
    END IF;
    PERFORM pgflow._check_interval(p_heartbeat_timeout, 'heartbeat timeout', 0, 604800, true);
    UPDATE pgflow.agents SET status = 'OFFLINE'
     WHERE status = 'ONLINE' AND last_heartbeat_at < p_now - p_heartbeat_timeout;
    DELETE FROM pgflow.agent_offers o USING pgflow.agents a WHERE a.id = o.agent_id AND a.status = 'OFFLINE';
    RETURN pgflow._end_agent_runs(ARRAY(
               SELECT DISTINCT a.id FROM pgflow.active_runs r JOIN pgflow.agents a ON a.id = r.agent_id
                WHERE (a.status = 'OFFLINE' OR a.last_heartbeat_at < p_now - p_heartbeat_timeout)),
               format('its agent stopped heartbeating (timeout %s)', p_heartbeat_timeout), false, p_now)
         + pgflow._end_runs(ARRAY(
               SELECT r.flow_run_id FROM pgflow.active_runs r
                WHERE r.agent_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM pgflow.agents a WHERE a.id = r.agent_id)),
               'its agent no longer exists', false, p_now);
END $function$;

CREATE OR REPLACE FUNCTION pgflow.expire_paused_runs(p_now timestamp with time zone DEFAULT now())
 RETURNS integer
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
    SELECT count(*)::integer FROM pgflow._transition_flow_runs_isolated(ARRAY(
        SELECT ROW(r.id, 'FAILED', 'TimedOut', format('paused past its timeout (%s)', r.pause_expires_at),
                   NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.active_runs a JOIN pgflow.flow_runs r ON r.id = a.flow_run_id
         WHERE a.state_type = 'PAUSED' AND r.state_type = 'PAUSED' AND r.pause_expires_at <= p_now
         ORDER BY r.id
           FOR UPDATE OF r SKIP LOCKED), NULL, p_now, true) t
     WHERE t.status IN ('ACCEPTED', 'REDIRECTED')
$function$;

CREATE OR REPLACE FUNCTION pgflow._delete_old_runs_unchecked(p_older_than interval, p_batch integer DEFAULT 1000, p_now timestamp with time zone DEFAULT now())
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_ids     uuid[];
    v_tasks   uuid[];
    v_dropped integer;
    v_bound   timestamptz;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' OR p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'pgflow: retention needs a non-negative age and a batch of 1 or more (got %, %)',
                        coalesce(p_older_than::text, 'NULL'), coalesce(p_batch::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. SELECT pgflow.delete_old_runs(interval ''30 days'', 1000)';
    END IF;
    PERFORM pgflow._ensure_history_weeks(2, p_now);
    v_dropped := pgflow._drop_history_weeks(p_older_than, p_now);
    IF v_dropped IS NULL THEN  -- the tables were busy: drop first, on the next pass, then delete the rest
        RETURN 0;
    END IF;
    -- the first Monday 00:00 UTC of the age: the runs of weeks that are wholly older were created and ended before it
    v_bound := pgflow._history_week(p_now - p_older_than)::timestamp AT TIME ZONE 'UTC';
    -- the runs ended before the bound, by their ending's state row (flow_run_states_ended, 0024)
    v_ids := ARRAY(SELECT r.id FROM pgflow.flow_run_states s JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
                    WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND s."timestamp" < v_bound
                      AND r.end_time = s."timestamp" AND r.created_at < v_bound
                      AND r.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                    ORDER BY s."timestamp" LIMIT p_batch FOR UPDATE OF r SKIP LOCKED);
    IF cardinality(v_ids) = 0 THEN
        RETURN v_dropped;
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
       AND NOT EXISTS (SELECT 1 FROM pgflow.active_runs r WHERE r.agent_id = a.id);
    RETURN v_dropped + cardinality(v_ids);
END $function$;

CREATE OR REPLACE FUNCTION pgflow.run_activity(p_since timestamp with time zone, p_until timestamp with time zone, p_bucket interval)
 RETURNS TABLE(bucket timestamp with time zone, state_type text, state_name text, runs bigint)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
BEGIN
    PERFORM pgflow._check_window(p_since, p_until);
    IF p_bucket IS NULL OR p_bucket < interval '1 second'
       OR extract(epoch FROM p_until - p_since) / extract(epoch FROM p_bucket) > 1000 THEN
        RAISE EXCEPTION 'pgflow: invalid activity bucket %', coalesce(p_bucket::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass at least one second and at most 1000 buckets per window';
    END IF;
    RETURN QUERY
    SELECT x.bucket, x.state_type::text, x.state_type::text, x.runs
      FROM (SELECT date_bin(p_bucket, e."timestamp", p_since) AS bucket, e.state_type, count(*) AS runs
              FROM (SELECT s."timestamp", s.flow_run_id, s.state_type, s.state_name FROM pgflow.flow_run_states s
                     WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND s."timestamp" >= p_since AND s."timestamp" < p_until
                       AND s.id NOT IN (SELECT o.state_id FROM pgflow.reopened_endings o)) e
             GROUP BY 1, 2) x
    UNION ALL
    SELECT date_bin(p_bucket, greatest(coalesce(r.start_time, r.state_timestamp), p_since), p_since),
           r.state_type::text, r.state_type::text, count(*)
      FROM pgflow.active_runs a JOIN pgflow.flow_runs r ON r.id = a.flow_run_id
     WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
       AND coalesce(r.start_time, r.state_timestamp) < p_until
     GROUP BY 1, 2
    UNION ALL
    SELECT date_bin(p_bucket, rq.scheduled_at, p_since), 'SCHEDULED', r.state_name, count(*)
      FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
     WHERE rq.scheduled_at >= p_since AND rq.scheduled_at < p_until
     GROUP BY 1, 3;
END $function$;

CREATE OR REPLACE FUNCTION pgflow.run_state_counts(p_since timestamp with time zone)
 RETURNS TABLE(state_type text, state_name text, runs bigint)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pgflow', 'pg_temp'
AS $function$
BEGIN
    IF p_since IS NULL THEN
        RAISE EXCEPTION 'pgflow: run_state_counts needs a start time' USING ERRCODE = '22023', HINT = 'pass now() - interval ''24 hours'', say';
    END IF;
    RETURN QUERY
    SELECT x.state_type::text, x.state_name, x.runs
      FROM (SELECT e.state_type, e.state_name, count(*) AS runs
              FROM (SELECT s."timestamp", s.flow_run_id, s.state_type, s.state_name FROM pgflow.flow_run_states s
                     WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND s."timestamp" >= p_since
                       AND s.id NOT IN (SELECT o.state_id FROM pgflow.reopened_endings o)) e GROUP BY 1, 2) x
    UNION ALL
    SELECT r.state_type::text, r.state_name, count(*) FROM pgflow.active_runs a JOIN pgflow.flow_runs r ON r.id = a.flow_run_id
     WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') GROUP BY 1, 2
    UNION ALL
    SELECT r.state_type::text, r.state_name, count(*)
      FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
     WHERE rq.scheduled_at >= p_since GROUP BY 1, 2;
END $function$;

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
      FROM (SELECT r.deployment_id,
                   count(*) FILTER (WHERE e.state_type IN ('FAILED', 'CRASHED')) AS failed, count(*) AS finished,
                   max(e."timestamp") FILTER (WHERE e.state_type IN ('FAILED', 'CRASHED')) AS last_failure
              FROM (SELECT s."timestamp", s.flow_run_id, s.state_type, s.state_name FROM pgflow.flow_run_states s
                     WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND s."timestamp" >= p_since
                       AND s.id NOT IN (SELECT o.state_id FROM pgflow.reopened_endings o)) e
              JOIN pgflow.flow_runs r ON r.id = e.flow_run_id
             WHERE r.deployment_id IS NOT NULL
             GROUP BY r.deployment_id) x
      JOIN pgflow.deployments d ON d.id = x.deployment_id
      JOIN pgflow.flows f ON f.id = d.flow_id
     WHERE x.failed > 0
     ORDER BY x.failed DESC, 1
     LIMIT p_limit;
END $function$;

CREATE OR REPLACE FUNCTION pgflow._flow_run_keys(p_type pgflow.state_type, p_name text, p_flow_id uuid, p_dep_id uuid, p_tag text, p_queue_id uuid, p_since timestamp with time zone, p_until timestamp with time zone, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer, p_past_only boolean DEFAULT false, p_now timestamp with time zone DEFAULT now())
 RETURNS TABLE(id uuid, created_at timestamp with time zone)
 LANGUAGE plpgsql
 STABLE ROWS 50
AS $function$  -- ROWS: a page, so callers join it by primary key, never by a scan
DECLARE
    v_dep_flow uuid;
    v_where    text := '';
    v_order    text := ' ORDER BY r.created_at DESC, r.id DESC LIMIT $11';
    v_sql      text;
    v_side     text := '';  -- the time range and keyset on a side table's own columns (x: active_runs, failed_runs)
    v_state    text := '';  -- the state filters (0024: a side table's rows are of the state already)
    v_rest     text;        -- the filters but the state's
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
    IF p_type IS NOT NULL THEN v_state := v_state || ' AND r.state_type = $1'; END IF;
    IF p_name IS NOT NULL THEN v_state := v_state || ' AND r.state_name = $2'; END IF;
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
    IF p_since IS NOT NULL THEN v_side := v_side || ' AND x.created_at >= $7'; END IF;
    IF p_until IS NOT NULL THEN v_side := v_side || ' AND x.created_at < $8'; END IF;
    IF p_after_at IS NOT NULL THEN v_side := v_side || ' AND (x.created_at, x.flow_run_id) < ($9, $10)'; END IF;
    IF p_past_only AND p_type IS NULL THEN
        v_where := v_where || ' AND (r.start_time IS NOT NULL OR r.expected_start_time <= $13)';
    END IF;
    -- (0024: a second test of the state on flow_runs made the planner expect a few matches among many
    -- side rows, cost the plan as a walk of them all, and compile it: 20 ms of JIT for a page)
    v_rest := v_where;
    v_where := v_state || v_where;

    IF p_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') THEN
        -- the runs in progress of that state, newest first: active_runs (a small table: its rows of the
        -- state sorted, then each joined to its run (the other filters) until the page is full)
        v_sql := 'SELECT r.id, r.created_at FROM (SELECT x.flow_run_id, x.created_at FROM pgflow.active_runs x'
              || ' WHERE x.state_type = $1' || v_side || ' ORDER BY x.created_at DESC, x.flow_run_id DESC) x'
              || ' CROSS JOIN LATERAL (SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE r.id = x.flow_run_id'
              || CASE WHEN p_name IS NOT NULL THEN ' AND r.state_name = $2' ELSE '' END || v_rest || ') r'
              || ' ORDER BY x.created_at DESC, x.flow_run_id DESC LIMIT $11';
    ELSIF p_type = 'SCHEDULED' THEN
        -- the waiting runs: a run is SCHEDULED exactly while it has a run_queue row
        v_sql := 'SELECT r.id, r.created_at FROM (SELECT w.flow_run_id FROM pgflow.run_queue w OFFSET 0) w '
              || 'JOIN pgflow.flow_runs r ON r.id = w.flow_run_id WHERE true' || v_where || v_order;
    ELSIF p_dep_id IS NOT NULL THEN
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE true' || v_where || v_order;
    ELSIF p_queue_id IS NOT NULL THEN
        v_sql := 'SELECT r.id, r.created_at FROM pgflow.flow_runs r WHERE true' || v_where || v_order;
    ELSIF p_type IN ('FAILED', 'CRASHED', 'CANCELLED') THEN
        -- one stream per state name of the type (FAILED: Failed and TimedOut), newest first from
        -- failed_runs (failed_runs_listing), joined to flow_runs for the other filters, merged
        v_sql := 'SELECT s.id, s.created_at FROM unnest($14::text[]) n(name) CROSS JOIN LATERAL ('
              || '  SELECT r.id, r.created_at FROM pgflow.failed_runs x JOIN pgflow.flow_runs r ON r.id = x.flow_run_id'
              || '   WHERE x.state_name = n.name' || v_side
              || v_rest
              || '   ORDER BY x.created_at DESC, x.flow_run_id DESC LIMIT $11'
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
END $function$;
CREATE OR REPLACE VIEW pgflow.queue_status AS  SELECT q.name,
    q.priority,
    q.paused,
    l.concurrency_limit,
    COALESCE(w.due, 0::bigint) AS due,
    COALESCE(w.later, 0::bigint) AS scheduled_later,
    COALESCE(w.late, 0::bigint) AS late,
    COALESCE(w.blocked, 0::bigint) AS awaiting_slot,
    COALESCE(a.pending, 0::bigint) AS pending,
    COALESCE(a.running, 0::bigint) AS running,
    COALESCE(a.paused, 0::bigint) AS paused_runs,
    COALESCE(a.cancelling, 0::bigint) AS cancelling,
    w.oldest_due
   FROM pgflow.work_queues q
     LEFT JOIN pgflow.concurrency_limits l ON l.id = q.concurrency_limit_id
     LEFT JOIN ( SELECT rq.work_queue_id,
            count(*) FILTER (WHERE rq.scheduled_at <= now()) AS due,
            count(*) FILTER (WHERE rq.scheduled_at > now()) AS later,
            count(*) FILTER (WHERE r.state_name = 'Late'::text) AS late,
            count(*) FILTER (WHERE r.state_name = 'AwaitingConcurrencySlot'::text) AS blocked,
            min(rq.scheduled_at) FILTER (WHERE rq.scheduled_at <= now()) AS oldest_due
           FROM pgflow.run_queue rq
             JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
          GROUP BY rq.work_queue_id) w ON w.work_queue_id = q.id
     LEFT JOIN ( SELECT r.work_queue_id,
            count(*) FILTER (WHERE r.state_type = 'PENDING'::pgflow.state_type) AS pending,
            count(*) FILTER (WHERE r.state_type = 'RUNNING'::pgflow.state_type) AS running,
            count(*) FILTER (WHERE r.state_type = 'PAUSED'::pgflow.state_type) AS paused,
            count(*) FILTER (WHERE r.state_type = 'CANCELLING'::pgflow.state_type) AS cancelling
           FROM pgflow.active_runs x
             JOIN pgflow.flow_runs r ON r.id = x.flow_run_id
          WHERE r.state_type = ANY (ARRAY['PENDING'::pgflow.state_type, 'RUNNING'::pgflow.state_type, 'PAUSED'::pgflow.state_type, 'CANCELLING'::pgflow.state_type])
          GROUP BY r.work_queue_id) a ON a.work_queue_id = q.id;

CREATE OR REPLACE VIEW pgflow.agent_list AS  SELECT a.name,
    a.work_queues,
    a.status,
    a.last_heartbeat_at,
    a.registered_at,
    ( SELECT count(*) AS count
           FROM pgflow.active_runs r
          WHERE r.agent_id = a.id) AS runs_held,
    a.id
   FROM pgflow.agents a;

CREATE OR REPLACE VIEW pgflow.agent_status AS  SELECT a.id,
    a.name,
    a.work_queues,
    a.status,
    a.registered_at,
    a.last_heartbeat_at,
    ( SELECT count(*) AS count
           FROM pgflow.active_runs r
          WHERE r.agent_id = a.id) AS active_runs
   FROM pgflow.agents a;

CREATE OR REPLACE VIEW pgflow.metrics_flow_runs AS  SELECT COALESCE((f.name || '/'::text) || d.name, f.name) AS deployment,
    COALESCE(q.name, ''::text) AS work_queue,
    r.state_type::text AS state_type,
    r.state_name,
    false AS ended_last_hour,
    count(*) AS runs
   FROM pgflow.run_queue rq
     JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id
     JOIN pgflow.flows f ON f.id = r.flow_id
     LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
  GROUP BY (COALESCE((f.name || '/'::text) || d.name, f.name)), (COALESCE(q.name, ''::text)), (r.state_type::text), r.state_name
UNION ALL
 SELECT COALESCE((f.name || '/'::text) || d.name, f.name) AS deployment,
    COALESCE(q.name, ''::text) AS work_queue,
    r.state_type::text AS state_type,
    r.state_name,
    false AS ended_last_hour,
    count(*) AS runs
   FROM pgflow.active_runs x
     JOIN pgflow.flow_runs r ON r.id = x.flow_run_id
     JOIN pgflow.flows f ON f.id = r.flow_id
     LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
  WHERE r.state_type = ANY (ARRAY['PENDING'::pgflow.state_type, 'RUNNING'::pgflow.state_type, 'PAUSED'::pgflow.state_type, 'CANCELLING'::pgflow.state_type])
  GROUP BY (COALESCE((f.name || '/'::text) || d.name, f.name)), (COALESCE(q.name, ''::text)), (r.state_type::text), r.state_name
UNION ALL
 SELECT COALESCE((f.name || '/'::text) || d.name, f.name) AS deployment,
    COALESCE(q.name, ''::text) AS work_queue,
    s.state_type::text AS state_type,
    s.state_name,
    true AS ended_last_hour,
    count(*) AS runs
   FROM pgflow.flow_run_states s
     JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
     JOIN pgflow.flows f ON f.id = r.flow_id
     LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     LEFT JOIN pgflow.work_queues q ON q.id = r.work_queue_id
  WHERE (s.state_type = ANY (ARRAY['COMPLETED'::pgflow.state_type, 'FAILED'::pgflow.state_type, 'CANCELLED'::pgflow.state_type, 'CRASHED'::pgflow.state_type]))
    AND s."timestamp" > (now() - '01:00:00'::interval)
    AND NOT (s.id IN ( SELECT o.state_id FROM pgflow.reopened_endings o))
  GROUP BY (COALESCE((f.name || '/'::text) || d.name, f.name)), (COALESCE(q.name, ''::text)), (s.state_type::text), s.state_name;

-- the agent's runs in progress, for its reconciliation (it read them from flow_run_history by agent and
-- state, which flow_runs_active served)
CREATE FUNCTION pgflow.agent_held_runs(p_agent_id uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE AS $$
    SELECT a.flow_run_id FROM pgflow.active_runs a WHERE a.agent_id = p_agent_id
$$;
ALTER FUNCTION pgflow.agent_held_runs(uuid) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.agent_held_runs(uuid) TO pgflow_agent, pgflow_admin;
GRANT SELECT ON pgflow.active_runs, pgflow.failed_runs, pgflow.reopened_endings TO pgflow_api, pgflow_admin;
