-- 0018: runs pushed to idle agents (issue 17, enqueue -> start). An agent whose claim came back short
-- leaves an offer; run_deployment of a run due now gives the run to an offering agent directly — the
-- run is inserted Running for that agent (its Scheduled, Pending and Running states in one INSERT, no
-- run_queue row) and the agent's own channel is NOTIFYed with what the claim would have returned. The
-- run is durable as Running before the agent hears of it, so the agent starts it on the notification
-- with no claim of its own: one transaction fewer between an enqueue and the flow's first line.
--
-- When there is no push (any concurrency limit active, the queue paused or holding due runs — FIFO —,
-- a run scheduled later, an idempotency key used before, no offer, or the offering agent gone) the
-- enqueue is what it was: a run_queue row and a pgflow_runs wake-up. The claim is unchanged; agents call
-- claim_and_offer, which hands back the runs pushed to the agent that it has not named as seen (a
-- notification lost to a broken connection, or one the agent did not trust), claims, and offers what
-- is left. A pushed run is acknowledged only when a claim names it as seen; until then reconciliation
-- leaves it alone, so a claim whose reply is lost acknowledges nothing.
--
-- When an offer counts: the agent is ONLINE, heartbeated within the offer's fresh_for, and its LISTEN
-- session is alive — that session holds an advisory lock (agent_listening) which a push tests; a killed
-- agent's session ends with its socket, so its offer stops counting at once. A run pushed to an agent
-- that then dies ends as a claimed run of a dead agent does: Crashed by the reaper, retried per policy.

CREATE TABLE pgflow.agent_offers (
    agent_id       uuid        PRIMARY KEY REFERENCES pgflow.agents ON DELETE CASCADE,
    work_queue_ids uuid[]      NOT NULL,              -- the agent's queues that were not paused
    slots          integer     NOT NULL CHECK (slots >= 0),
    pushed         uuid[]      NOT NULL DEFAULT '{}', -- runs pushed under this offer, not yet acknowledged by a claim
    fresh_for      interval    NOT NULL,              -- the offer counts while the agent heartbeated within this
    offered_at     timestamptz NOT NULL
) WITH (fillfactor = 50);

COMMENT ON TABLE pgflow.agent_offers IS
    'Idle capacity an agent offers (written by claim_and_offer): run_deployment pushes due runs to it.';

-- The advisory lock an agent's LISTEN session holds while it listens (two int4 keys, as the artifacts'
-- lock: a namespace and the agent).
CREATE FUNCTION pgflow._agent_listener_held(p_agent_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    -- true when another session holds it exclusively (the agent's listener is alive); a shared lock
    -- taken here instead is released at the end of the transaction
    RETURN NOT pg_try_advisory_xact_lock_shared(hashtext('pgflow.agent-listener'), hashtext(p_agent_id::text));
END $$;

-- Called by the agent's LISTEN session once its LISTENs are in place: the session holds the agent's
-- listener lock until it ends (a push tests it). False when another session holds it (a previous
-- listener the server has not seen die yet; pushes reach both, as both LISTEN).
CREATE FUNCTION pgflow.agent_listening(p_agent_id uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.agents WHERE id = p_agent_id) THEN
        RAISE EXCEPTION 'pgflow: unknown agent %', coalesce(p_agent_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'register with SELECT pgflow.register_agent(name, queues) and listen with its id';
    END IF;
    -- a push testing the lock holds it shared for the rest of its transaction: try for a second
    FOR i IN 1..100 LOOP
        IF pg_try_advisory_lock(hashtext('pgflow.agent-listener'), hashtext(p_agent_id::text)) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;

-- The claim of an agent that takes pushed runs. Returns, first, the runs pushed to the agent that are
-- still its own and Running and that p_seen does not name (their notification was lost, or not trusted:
-- see the agent), with pushed = true; then claims up to p_max less those (claim_flow_runs with p_start);
-- then, when p_offer_for is not NULL and the claim came back short, offers the rest of p_max for the
-- agent's queues that are not paused (valid while the agent heartbeated within p_offer_for).
-- A pushed run is acknowledged only by a later claim naming it in p_seen (the agent passes the pushed
-- runs it started): until then it stays on the offer row's list, which reconciliation leaves alone —
-- so a claim whose reply is lost acknowledges nothing, and the next claim returns the same runs.
CREATE FUNCTION pgflow.claim_and_offer(
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
        v_unseen := ARRAY(SELECT r.id FROM pgflow.flow_runs r
                           WHERE r.id = ANY (v_pushed) AND NOT (r.id = ANY (coalesce(p_seen, '{}')))
                             AND r.agent_id = p_agent_id AND r.state_type = 'RUNNING'
                           ORDER BY array_position(v_pushed, r.id));
        RETURN QUERY
        SELECT r.id, r.name, f.name, d.id, d.name, d.entrypoint, r.parameters, r.tags, wq.name,
               r.state_type, r.state_name, r.run_count, r.expected_start_time, r.parent_task_run_id, d.timeout_seconds, true
          FROM pgflow.flow_runs r
          JOIN pgflow.flows f ON f.id = r.flow_id
          LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
          LEFT JOIN pgflow.work_queues wq ON wq.id = r.work_queue_id
         WHERE r.id = ANY (v_unseen)
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

-- An agent shutting down revokes its offer; returns the runs pushed under it that p_seen does not name
-- and that are still the agent's and Running (the agent gives back those it did not start).
CREATE FUNCTION pgflow.withdraw_offer(p_agent_id uuid, p_seen uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_pushed uuid[];
BEGIN
    DELETE FROM pgflow.agent_offers o WHERE o.agent_id = p_agent_id RETURNING o.pushed INTO v_pushed;
    RETURN QUERY SELECT r.id FROM pgflow.flow_runs r
                  WHERE r.id = ANY (coalesce(v_pushed, '{}')) AND NOT (r.id = ANY (coalesce(p_seen, '{}')))
                    AND r.agent_id = p_agent_id AND r.state_type = 'RUNNING'
                  ORDER BY array_position(v_pushed, r.id);
END $$;

-- An offering agent to push a run of this queue to, its offer row locked (NULL: none). Only when no
-- concurrency limit is active, the queue is not paused and holds no due run (a pushed run must not
-- overtake one waiting), and the agent is ONLINE, heartbeated within its offer's fresh_for and still
-- listening. The offer idle the longest goes first.
CREATE FUNCTION pgflow._take_offer(p_work_queue_id uuid, p_now timestamptz) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_agent uuid;
BEGIN
    IF EXISTS (SELECT 1 FROM pgflow.concurrency_limits l WHERE l.active)
       OR EXISTS (SELECT 1 FROM pgflow.work_queues q WHERE q.id = p_work_queue_id AND q.paused)
       OR EXISTS (SELECT 1 FROM pgflow.run_queue rq WHERE rq.work_queue_id = p_work_queue_id AND rq.scheduled_at <= p_now) THEN
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

-- Inserts one run of a deployment Running for p_agent_id (what _enqueue_runs and the claim together
-- would write: the same columns, its Scheduled, Pending and Running states), takes a slot of the
-- agent's offer and NOTIFYs the agent's channel (pgflow_agent_<id>) with the run as claim_and_offer
-- returns it, as JSON (empty when that would not fit a notification: the agent then claims, which
-- returns it). NULL when the idempotency key was used before (nothing written).
CREATE FUNCTION pgflow._push_run(
    p_agent_id uuid, p_deployment_id uuid, p_parameters jsonb, p_tags text[], p_idempotency_key text, p_name text,
    p_work_queue_id uuid, p_parent_task_run_id uuid, p_now timestamptz
) RETURNS uuid
LANGUAGE plpgsql AS $$
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
END $$;

-- run_deployment (0016's, same checks, same errors, same result) pushing a run due now to an idle
-- agent when one offers (above); else it enqueues as before.
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
        v_push_q := coalesce(v_qid, (SELECT d.work_queue_id FROM pgflow.deployments d WHERE d.id = v_dep_id));
        IF v_push_q IS NOT NULL THEN
            v_agent := pgflow._take_offer(v_push_q, p_now);
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

-- Reconciliation leaves alone the runs pushed to the agent that no claim has acknowledged yet (named in
-- its p_seen): their notification may still be on its way, and the agent's next claim returns them.
CREATE OR REPLACE FUNCTION pgflow.agent_unchanged_runs(p_agent_id uuid, p_unchanged_for interval, p_now timestamptz DEFAULT now())
RETURNS TABLE (id uuid, state_type text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
    SELECT r.id, r.state_type::text FROM pgflow.flow_runs r
     WHERE r.agent_id = p_agent_id AND r.state_type IN ('PENDING', 'RUNNING')
       AND r.state_timestamp < p_now - p_unchanged_for
       AND NOT EXISTS (SELECT 1 FROM pgflow.agent_offers o WHERE o.agent_id = p_agent_id AND r.id = ANY (o.pushed))
$$;

-- An agent that deregisters or is reaped offers nothing any more.
CREATE OR REPLACE FUNCTION pgflow._end_agent_runs(p_agent_ids uuid[], p_why text, p_give_back boolean, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgflow.agent_offers WHERE agent_id = ANY (p_agent_ids);
    RETURN pgflow._end_runs(ARRAY(SELECT r.id FROM pgflow.flow_runs r
                                   WHERE r.agent_id = ANY (p_agent_ids)
                                     AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')),
                            p_why, p_give_back, p_now);
END $$;

-- The reaper (0003's, same errors and result) also removes the offers of agents it takes offline.
CREATE OR REPLACE FUNCTION pgflow.reap_crashed_runs(p_heartbeat_timeout interval, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
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
               SELECT DISTINCT a.id FROM pgflow.flow_runs r JOIN pgflow.agents a ON a.id = r.agent_id
                WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
                  AND (a.status = 'OFFLINE' OR a.last_heartbeat_at < p_now - p_heartbeat_timeout)),
               format('its agent stopped heartbeating (timeout %s)', p_heartbeat_timeout), false, p_now)
         + pgflow._end_runs(ARRAY(
               SELECT r.id FROM pgflow.flow_runs r
                WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') AND r.agent_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM pgflow.agents a WHERE a.id = r.agent_id)),
               'its agent no longer exists', false, p_now);
END $$;

-- Privileges (docs/security.md): the agent claims and listens; pgflow_reader and the API may read offers.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.claim_and_offer(uuid, text[], integer, uuid[], interval, timestamptz),
                          pgflow.agent_listening(uuid), pgflow.withdraw_offer(uuid, uuid[])
    TO pgflow_agent, pgflow_admin;
GRANT SELECT ON pgflow.agent_offers TO pgflow_reader, pgflow_api, pgflow_admin;
