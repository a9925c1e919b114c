-- 0020: pushes with concurrency limits elsewhere. 0018 pushed a run only while no concurrency limit was
-- active anywhere, so one limit on any deployment (scripts/run.sh's examples have one) turned pushes off
-- for every run. A pushed run takes no slot, so what matters is whether a limit applies to *this* run:
-- its work queue's, its deployment's, or 'tag:<tag>' for one of its tags (the limits _flow_run_limits
-- names, as the general claim admits them). A run no active limit applies to is pushed; one that a limit
-- applies to is enqueued and claimed, as before.
--
-- FIFO: a due run of the queue holds a push back (a pushed run must not overtake it), unless that run is
-- waiting for a slot of a full limit (run_queue.blocked_on): the general claim skips it too, so it does
-- not hold back a run no limit applies to.
--
-- The claim's fast path follows the same rule (below).
--
-- Also: the runs pushed to an agent and not yet seen are found by one function (claim_and_offer and
-- withdraw_offer each wrote that query), with the pushed ids' bounds given so that only the weeks of
-- flow_runs they fall in are searched (0019 partitioned it; an id array alone probed every week).

-- Whether an active concurrency limit applies to a run of this work queue, deployment and tags: the
-- queue's, the deployment's, or 'tag:<tag>' for one of the tags. Such a run needs a slot, which only the
-- general claim gives: it is neither pushed (_take_offer) nor claimed on the fast path (claim_flow_runs).
-- (plpgsql: its plan is kept for the session; an SQL function with a sub-SELECT is not inlined and would be
-- planned again in every claim and enqueue that calls it)
CREATE FUNCTION pgflow._limit_applies(p_work_queue_id uuid, p_deployment_id uuid, p_tags text[]) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pgflow.concurrency_limits l
                    WHERE l.active
                      AND (l.id = (SELECT q.concurrency_limit_id FROM pgflow.work_queues q WHERE q.id = p_work_queue_id)
                           OR l.id = (SELECT d.concurrency_limit_id FROM pgflow.deployments d WHERE d.id = p_deployment_id)
                           OR l.name IN (SELECT 'tag:' || t FROM unnest(p_tags) t)));
END $$;

-- The runs of p_pushed (in that order) that p_seen does not name and that are still p_agent_id's and Running.
CREATE FUNCTION pgflow._unseen_pushed_runs(p_agent_id uuid, p_pushed uuid[], p_seen uuid[]) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(r.id ORDER BY array_position(p_pushed, r.id)), '{}')
      FROM pgflow.flow_runs r
     WHERE r.id = ANY (p_pushed)
       AND r.id >= (SELECT i FROM unnest(p_pushed) i ORDER BY i LIMIT 1)
       AND r.id <= (SELECT i FROM unnest(p_pushed) i ORDER BY i DESC LIMIT 1)
       AND NOT (r.id = ANY (coalesce(p_seen, '{}')))
       AND r.agent_id = p_agent_id AND r.state_type = 'RUNNING'
$$;

-- 0018's claim_and_offer (same checks, errors and result), the unseen runs found by _unseen_pushed_runs.
CREATE OR REPLACE FUNCTION pgflow.claim_and_offer(
    p_agent_id  uuid,
    p_queues    text[],
    p_max       integer,
    p_seen      uuid[],
    p_offer_for interval,
    p_now       timestamptz DEFAULT now()
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
    timeout_seconds     double precision,
    pushed              boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_had    boolean;
    v_pushed uuid[];
    v_unseen uuid[] := '{}';
    v_max    integer;
    v_got    integer := 0;
    v_slots  integer := 0;
BEGIN
    IF p_max IS NULL OR p_max < 1 OR p_max > 10000 THEN
        RAISE EXCEPTION 'pgflow: claim 1 to 10000 runs at once, not %', coalesce(p_max::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 to 10000';
    END IF;
    IF cardinality(p_seen) > 10000 THEN
        RAISE EXCEPTION 'pgflow: p_seen names % runs; at most 10000', cardinality(p_seen)
            USING ERRCODE = '22023', HINT = 'pass the pushed runs started since the last claim';
    END IF;
    IF p_offer_for IS NOT NULL AND (p_offer_for < interval '1 second' OR p_offer_for > interval '1 hour') THEN
        RAISE EXCEPTION 'pgflow: an offer counts for 1 second to 1 hour after a heartbeat, not %', p_offer_for
            USING ERRCODE = '22023', HINT = 'pass about twice the agent''s heartbeat interval, or NULL to offer nothing';
    END IF;
    SELECT o.pushed INTO v_pushed FROM pgflow.agent_offers o WHERE o.agent_id = p_agent_id FOR UPDATE;
    v_had := FOUND;
    IF cardinality(v_pushed) > 0 THEN
        v_unseen := pgflow._unseen_pushed_runs(p_agent_id, v_pushed, p_seen);
        RETURN QUERY
        SELECT r.id, r.name, f.name, d.id, d.name, d.entrypoint, r.parameters, r.tags, wq.name,
               r.state_type, r.state_name, r.run_count, r.expected_start_time, r.parent_task_run_id, d.timeout_seconds, true
          FROM pgflow.flow_runs r
          JOIN pgflow.flows f ON f.id = r.flow_id
          LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
          LEFT JOIN pgflow.work_queues wq ON wq.id = r.work_queue_id
         WHERE r.id = ANY (v_unseen)
           AND r.id >= (SELECT i FROM unnest(v_unseen) i ORDER BY i LIMIT 1)
           AND r.id <= (SELECT i FROM unnest(v_unseen) i ORDER BY i DESC LIMIT 1)
         ORDER BY array_position(v_unseen, r.id);
    END IF;
    v_max := p_max - cardinality(v_unseen);
    IF v_max >= 1 THEN
        RETURN QUERY SELECT c.*, false FROM pgflow.claim_flow_runs(p_agent_id, p_queues, v_max, true, p_now) c;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        IF p_offer_for IS NOT NULL THEN
            v_slots := v_max - v_got;
        END IF;
    END IF;
    IF v_slots > 0 OR cardinality(v_unseen) > 0 THEN
        INSERT INTO pgflow.agent_offers AS o (agent_id, work_queue_ids, slots, pushed, fresh_for, offered_at)
        SELECT a.id, ARRAY(SELECT q.id FROM pgflow.work_queues q
                            WHERE q.name = ANY (coalesce(nullif(p_queues, '{}'), a.work_queues)) AND NOT q.paused),
               v_slots, v_unseen, coalesce(p_offer_for, interval '1 second'), p_now
          FROM pgflow.agents a WHERE a.id = p_agent_id
        ON CONFLICT (agent_id) DO UPDATE
           SET work_queue_ids = excluded.work_queue_ids, slots = excluded.slots, pushed = excluded.pushed,
               fresh_for = excluded.fresh_for, offered_at = excluded.offered_at;
    ELSIF v_had THEN
        DELETE FROM pgflow.agent_offers o WHERE o.agent_id = p_agent_id;
    END IF;
END $$;

-- 0018's withdraw_offer (same result), through _unseen_pushed_runs.
CREATE OR REPLACE FUNCTION pgflow.withdraw_offer(p_agent_id uuid, p_seen uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_pushed uuid[];
BEGIN
    DELETE FROM pgflow.agent_offers o WHERE o.agent_id = p_agent_id RETURNING o.pushed INTO v_pushed;
    IF cardinality(v_pushed) > 0 THEN
        RETURN QUERY SELECT unnest(pgflow._unseen_pushed_runs(p_agent_id, v_pushed, p_seen));
    END IF;
END $$;

-- An offering agent to push a run of this queue, deployment and tags to, its offer row locked (NULL:
-- none). Only when no active concurrency limit applies to the run (its queue's, its deployment's, a tag
-- limit of one of its tags), the queue is not paused and holds no due run that is not waiting for a
-- slot (a pushed run must not overtake one waiting), and the agent is ONLINE, heartbeated within its
-- offer's fresh_for and still listening. The offer idle the longest goes first.
CREATE FUNCTION pgflow._take_offer(p_work_queue_id uuid, p_deployment_id uuid, p_tags text[], p_now timestamptz)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_agent uuid;
BEGIN
    IF pgflow._limit_applies(p_work_queue_id, p_deployment_id, p_tags)
       OR EXISTS (SELECT 1 FROM pgflow.work_queues q WHERE q.id = p_work_queue_id AND q.paused)
       OR EXISTS (SELECT 1 FROM pgflow.run_queue rq
                   WHERE rq.work_queue_id = p_work_queue_id AND rq.scheduled_at <= p_now AND rq.blocked_on IS NULL) THEN
        RETURN NULL;
    END IF;
    FOR v_agent IN
        SELECT o.agent_id FROM pgflow.agent_offers o JOIN pgflow.agents a ON a.id = o.agent_id
         WHERE p_work_queue_id = ANY (o.work_queue_ids) AND o.slots > 0
           AND a.status = 'ONLINE' AND a.last_heartbeat_at >= p_now - o.fresh_for
         ORDER BY o.offered_at
           FOR UPDATE OF o SKIP LOCKED
    LOOP
        IF pgflow._agent_listener_held(v_agent) THEN
            RETURN v_agent;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

DROP FUNCTION pgflow._take_offer(uuid, timestamptz);

-- run_deployment (0018's, same checks, same errors, same result), asking _take_offer with the run's
-- deployment and tags.
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
    v_qid    uuid;
    v_push_q uuid;
    v_tags   text[];
    v_agent  uuid;
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
    IF p_work_queue IS NOT NULL THEN
        v_qid := pgflow._work_queue_id(p_work_queue);
    END IF;
    IF (p_scheduled_time IS NULL OR p_scheduled_time <= p_now) AND EXISTS (SELECT 1 FROM pgflow.agent_offers) THEN
        SELECT coalesce(v_qid, d.work_queue_id), d.tags || coalesce(p_tags, '{}') INTO v_push_q, v_tags
          FROM pgflow.deployments d WHERE d.id = v_dep_id;
        IF v_push_q IS NOT NULL THEN
            v_agent := pgflow._take_offer(v_push_q, v_dep_id, v_tags, p_now);
        END IF;
        IF v_agent IS NOT NULL THEN
            v_id := pgflow._push_run(v_agent, v_dep_id, p_parameters, p_tags, p_idempotency_key, p_flow_run_name,
                                     v_push_q, p_parent_task_run_id, p_now);
        END IF;
    END IF;
    IF v_id IS NULL AND v_agent IS NULL THEN
        SELECT e INTO v_id FROM pgflow._enqueue_runs(v_dep_id, ARRAY[p_parameters], ARRAY[p_scheduled_time], p_tags,
                                                     ARRAY[p_idempotency_key], ARRAY[p_flow_run_name], v_qid,
                                                     p_parent_task_run_id, NULL, p_now) e;
    END IF;
    IF v_id IS NULL THEN  -- the idempotency key was used before
        SELECT r.id INTO v_id FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.flow_id = r.flow_id
         WHERE d.id = v_dep_id AND r.idempotency_key = p_idempotency_key;
    END IF;
    RETURN v_id;
END $$;

-- claim_flow_runs (0019's, same checks, errors and result): its one-version fast path is taken also while
-- limits are active elsewhere, when none applies to the runs it claims (none of the queues', none of the
-- candidates' deployments' or tags'); else the general claim, as before. 0019 took the general claim —
-- ≈ 5 times the backend CPU of a one-run claim — whenever any limit was active anywhere.
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
                  r.run_count, r.expected_start_time, r.parent_task_run_id),
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
END $$;

-- Privileges: only internal functions are new (called inside the SECURITY DEFINER functions above).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
