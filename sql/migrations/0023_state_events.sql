-- 0023: flow-run state events are read from pgflow.flow_run_states, no longer copied into pgflow.events
-- (issue 17). Since 0016 the trigger on flow_run_states copied each new state into pgflow.events as a
-- slim row (occurred = the state's time, event = 'pgflow.flow-run.' || state_name, resource_id = the run's
-- id): three per drained run, each a heap row routed into a day partition, two B-tree entries and a
-- uuid, a sequence value and a random shard: 31 of the 156 µs of PostgreSQL CPU a drained run cost
-- (BENCHMARKS.md, "The drain's remaining cost, by part"). The state row already holds all of it.
--
--   * flow_run_states gets `xid xid8` (the writing transaction, for the evaluators' horizon), NULL on the
--     rows from before this migration: their events were copied into pgflow.events and stay there. A
--     state row with an xid IS an event ("a state event"): occurred = "timestamp", event =
--     'pgflow.flow-run.' || state_name, resource_id = flow_run_id, seq = the row's id, shard = id % 8,
--     id = pgflow._state_event_id(flow_run_id, id) (an md5 of both: stable, so automations dedupe their
--     firings by it as before), resource and payload filled by pgflow.fill_event as before.
--   * One seq space: pgflow.events.seq now takes its values from the state rows' id sequence (set above
--     both old sequences first), so event_page's seq pagination and the evaluators' (xid, seq) cursor
--     order both kinds of event together; within a transaction seq is append order across both.
--   * Readers read pgflow._all_events() (pgflow.events UNION ALL the state events; an inlinable SQL
--     function, so the planner pushes their conditions into both arms and uses each arm's indexes):
--     event_history, event_page, _resource_events, evaluate_events, evaluate_proactive. fill_event picks
--     a state event's own state row (seq = id) where one transaction wrote two equal states.
--   * Two indexes on flow_run_states, as cheap to keep as could be (every entry is paid in the drain):
--     the evaluators' B-tree (xid, id) WHERE xid IS NOT NULL (one insertion point, at its right end; a
--     shard-first (id % 8, xid, id) and a ("timestamp", id) B-tree saved less, BENCHMARKS.md "0023"),
--     and a BRIN on "timestamp" for the time-bounded readers. The newest-first feed finds its lower
--     time bound through the (xid, id) index first (event_page).
--   * Retention: a state event lives as long as its run's history (pgflow.delete_old_runs, the run
--     retention), not --event-retention-days; when the run is deleted its state events go with it.
--   * The trigger keeps its notifications and inserts no rows.
-- The claim, completion, transition and listing functions are unchanged: the xid column has a default.

ALTER TABLE pgflow.flow_run_states ADD COLUMN xid xid8;
ALTER TABLE pgflow.flow_run_states ALTER COLUMN xid SET DEFAULT pg_current_xact_id();  -- not in ADD: no rewrite

-- one seq space, above every seq and state id given so far
DO $$
BEGIN
    PERFORM setval('pgflow.flow_run_states_id_seq',
                   greatest((SELECT last_value FROM pgflow.flow_run_states_id_seq), (SELECT last_value FROM pgflow.events_seq)) + 1);
END $$;
ALTER TABLE pgflow.events ALTER COLUMN seq SET DEFAULT nextval('pgflow.flow_run_states_id_seq');
DROP SEQUENCE pgflow.events_seq;

CREATE INDEX flow_run_states_event_xid ON pgflow.flow_run_states (xid, id) WHERE xid IS NOT NULL;
CREATE INDEX flow_run_states_event_time ON pgflow.flow_run_states USING brin ("timestamp");

-- The planner's estimate of a name pattern on the state events ('pgflow.flow-run.' || state_name LIKE …,
-- event_page's filter): without statistics on that expression it guesses a handful of rows and reads the
-- whole history instead of walking the (xid, id) index backwards until it has a page. As 0021 did for
-- flow_runs: on the parent and every partition, and each week made later copies them
-- (_ensure_history_week: LIKE … INCLUDING STATISTICS); ANALYZE fills them.
CREATE STATISTICS pgflow.flow_run_states_event ON (('pgflow.flow-run.' || state_name)) FROM pgflow.flow_run_states;
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT t.relid FROM pg_partition_tree('pgflow.flow_run_states') t WHERE t.isleaf LOOP
        EXECUTE format('CREATE STATISTICS pgflow.%I ON ((''pgflow.flow-run.'' || state_name)) FROM %s',
                       (SELECT c.relname FROM pg_class c WHERE c.oid = p) || '_event', p);
    END LOOP;
END $$;

-- The id of the event a state row is, from the run's id and the state's id: the same in every reader
-- (automations dedupe their firings by event id). event_history writes it out (its readers may not
-- execute internal functions).
CREATE FUNCTION pgflow._state_event_id(p_flow_run_id uuid, p_state_id bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT md5(p_flow_run_id::text || ':' || p_state_id)::uuid
$$;

-- The state events, as rows of pgflow.events. Inlined by the planner (plain LANGUAGE sql, STABLE, no
-- SET): a condition or an ORDER BY on its columns reaches flow_run_states' partitions and their indexes.
CREATE FUNCTION pgflow._state_events() RETURNS SETOF pgflow.events
LANGUAGE sql STABLE AS $$
    SELECT s."timestamp", 'pgflow.flow-run.' || s.state_name, s.flow_run_id::text, '{}'::jsonb, '[]'::jsonb, '{}'::jsonb,
           pgflow._state_event_id(s.flow_run_id, s.id), s.id, s.xid, (s.id % 8)::smallint
      FROM pgflow.flow_run_states s
     WHERE s.xid IS NOT NULL
$$;

-- Every event: pgflow.events (custom events, agents' events, the flow-run events copied before 0023)
-- and the state events. Inlined too: constant conditions (and a LATERAL or correlated subquery's
-- parameters) reach both arms' indexes. Not an ordered scan across both (PostgreSQL 15 does not merge a
-- partitioned table's partitions in order inside a UNION ALL): a newest-first page takes the top of
-- each arm itself (event_page). Callers need SELECT on both tables: the SECURITY DEFINER functions below.
CREATE FUNCTION pgflow._all_events() RETURNS SETOF pgflow.events
LANGUAGE sql STABLE AS $$
    SELECT e.occurred, e.event, e.resource_id, e.resource, e.related, e.payload, e.id, e.seq, e.xid, e.shard
      FROM pgflow.events e
    UNION ALL
    SELECT * FROM pgflow._state_events()
$$;

CREATE OR REPLACE FUNCTION pgflow._flow_run_states_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
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

-- 0016's fill_event; a state event's payload is its own state row's (seq = id) when the run has two
-- states of that name at that time; an event copied before 0023 is still the k-th such state.
CREATE OR REPLACE FUNCTION pgflow.fill_event(e pgflow.events) RETURNS pgflow.events
LANGUAGE plpgsql STABLE SECURITY DEFINER COST 500 SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_run      uuid;
    v_name     text;
    v_nth      bigint;
    v_own      integer;
    v_payloads jsonb[];
BEGIN
    IF e.resource <> '{}' OR e.event NOT LIKE 'pgflow.flow-run.%' OR e.resource_id IS NULL THEN
        RETURN e;
    END IF;
    v_run := e.resource_id::uuid;  -- pgflow.flow-run.* events are the engine's: their resource id is the run's
    v_name := substr(e.event, length('pgflow.flow-run.') + 1);
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'id', r.id, 'kind', 'flow-run', 'name', r.name, 'flow', f.name,
               'deployment', f.name || '/' || d.name, 'tags', r.tags))
      INTO e.resource
      FROM pgflow.flow_runs r
      JOIN pgflow.flows f ON f.id = r.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
     WHERE r.id = v_run;
    IF NOT FOUND THEN  -- the run was deleted (retention)
        e.resource := jsonb_build_object('id', v_run, 'kind', 'flow-run');
        e.payload := jsonb_build_object('state_type', pgflow.state_type_of(v_name), 'state_name', v_name);
        RETURN e;
    END IF;
    -- the state of this run with this time and name
    SELECT array_agg(s.payload ORDER BY s.id), array_position(array_agg(s.own ORDER BY s.id), true)
      INTO v_payloads, v_own
      FROM (SELECT s.id, s.xid IS NOT NULL AND s.id = e.seq AS own,
                   jsonb_strip_nulls(jsonb_build_object(
                       'state_type', s.state_type, 'state_name', s.state_name, 'message', s.message,
                       'run_count', s.run_count, 'scheduled_time', s.scheduled_time)) AS payload
              FROM (SELECT s.*, count(*) FILTER (WHERE s.state_type = 'RUNNING' AND s.prev IS DISTINCT FROM 'PAUSED')
                                    OVER (ORDER BY s.id) AS run_count
                      FROM (SELECT h.*, lag(h.state_type) OVER (ORDER BY h.id) AS prev
                              FROM pgflow.flow_run_states h WHERE h.flow_run_id = v_run) s) s
             WHERE s."timestamp" = e.occurred AND s.state_name = v_name) s;
    IF v_own IS NOT NULL THEN  -- a state event: its own row
        e.payload := v_payloads[v_own];
    ELSIF cardinality(v_payloads) > 1 THEN
        -- copied before 0023: when one transaction wrote it twice at one time, the k-th such event is the
        -- k-th such state
        SELECT count(*) INTO v_nth FROM pgflow.events o
         WHERE o.occurred = e.occurred AND o.seq < e.seq AND o.resource_id = e.resource_id AND o.event = e.event;
        e.payload := v_payloads[least(v_nth + 1, cardinality(v_payloads))];
    ELSE
        e.payload := v_payloads[1];
    END IF;
    IF e.payload IS NULL THEN
        e.payload := jsonb_build_object('state_type', pgflow.state_type_of(v_name), 'state_name', v_name);
    END IF;
    RETURN e;
END $$;

-- The view reads both tables itself (as its owner: pgflow_reader may not read either table), and
-- spells out _state_event_id and _state_events (a view's functions are checked against its reader).
CREATE OR REPLACE VIEW pgflow.event_history AS
SELECT f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload, f.id, f.seq, f.xid, f.shard
  FROM (SELECT e FROM pgflow.events e
        UNION ALL
        SELECT ROW(s."timestamp", 'pgflow.flow-run.' || s.state_name, s.flow_run_id::text, '{}'::jsonb, '[]'::jsonb, '{}'::jsonb,
                   md5(s.flow_run_id::text || ':' || s.id)::uuid, s.id, s.xid, (s.id % 8)::smallint)::pgflow.events
          FROM pgflow.flow_run_states s
         WHERE s.xid IS NOT NULL) u
 CROSS JOIN LATERAL pgflow.fill_event(u.e) f;

-- A resource's events: its own (pgflow.events' index on resource_id leaves out flow-run events), a run's
-- events copied before 0023 (found through its history's times: the legacy states, xid NULL), and a
-- run's state events (its history: the primary key (flow_run_id, id)).
CREATE OR REPLACE FUNCTION pgflow._resource_events(p_resource_id text, p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL)
RETURNS SETOF pgflow.events LANGUAGE sql STABLE AS $$
    SELECT e.* FROM pgflow.events e
     WHERE e.resource_id = p_resource_id AND e.event NOT LIKE 'pgflow.flow-run.%'
       AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred <= p_until)
    UNION ALL
    SELECT e.* FROM pgflow.events e
     WHERE e.occurred IN (SELECT s."timestamp" FROM pgflow.flow_run_states s
                           WHERE s.flow_run_id = pgflow._resource_flow_run(p_resource_id) AND s.xid IS NULL
                             AND (p_since IS NULL OR s."timestamp" >= p_since) AND (p_until IS NULL OR s."timestamp" <= p_until))
       AND e.resource_id = p_resource_id AND e.event LIKE 'pgflow.flow-run.%'
    UNION ALL
    SELECT s."timestamp", 'pgflow.flow-run.' || s.state_name, s.flow_run_id::text, '{}'::jsonb, '[]'::jsonb, '{}'::jsonb,
           pgflow._state_event_id(s.flow_run_id, s.id), s.id, s.xid, (s.id % 8)::smallint
      FROM pgflow.flow_run_states s
     WHERE s.flow_run_id = pgflow._resource_flow_run(p_resource_id) AND s.xid IS NOT NULL
       AND (p_since IS NULL OR s."timestamp" >= p_since) AND (p_until IS NULL OR s."timestamp" <= p_until)
$$;

-- event_page, evaluate_events and evaluate_proactive: 0016's, reading pgflow._all_events() where they read
-- pgflow.events (evaluate_proactive's wait for an event without a resource still reads pgflow.events:
-- a state event always has one).
CREATE OR REPLACE FUNCTION pgflow.event_page(p_pattern text DEFAULT NULL, p_resource_id text DEFAULT NULL,
                                  p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL,
                                  p_limit integer DEFAULT 50, p_before_seq bigint DEFAULT NULL,
                                  p_after_seq bigint DEFAULT NULL)
RETURNS TABLE (seq bigint, id uuid, occurred timestamptz, event text, resource_id text, resource jsonb,
               related jsonb, payload jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_like text;
    v_from timestamptz;
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
        SELECT f.seq, f.id, f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload
          FROM (SELECT e FROM pgflow._resource_events(p_resource_id, p_since, NULL) e
                 WHERE (v_like IS NULL OR e.event LIKE v_like) AND (p_until IS NULL OR e.occurred < p_until)
                   AND (p_after_seq IS NULL OR e.seq > p_after_seq) AND (p_before_seq IS NULL OR e.seq < p_before_seq)
                 ORDER BY CASE WHEN p_after_seq IS NOT NULL THEN e.seq END,
                          CASE WHEN p_after_seq IS NULL THEN e.occurred END DESC,
                          CASE WHEN p_after_seq IS NULL THEN e.seq END DESC
                 LIMIT p_limit) page
         CROSS JOIN LATERAL pgflow.fill_event(page.e) f
         ORDER BY CASE WHEN p_after_seq IS NOT NULL THEN f.seq END,
                  CASE WHEN p_after_seq IS NULL THEN f.occurred END DESC,
                  CASE WHEN p_after_seq IS NULL THEN f.seq END DESC;
    ELSIF p_after_seq IS NOT NULL THEN
        RETURN QUERY
        SELECT f.seq, f.id, f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload
          FROM (SELECT u.e FROM (
                  (SELECT e FROM pgflow.events e
                    WHERE e.seq > p_after_seq AND (v_like IS NULL OR e.event LIKE v_like)
                      AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                    ORDER BY e.seq LIMIT p_limit)
                  UNION ALL
                  (SELECT e FROM pgflow._state_events() e
                    WHERE e.seq > p_after_seq AND (v_like IS NULL OR e.event LIKE v_like)
                      AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                    ORDER BY e.seq LIMIT p_limit)) u
                 ORDER BY (u.e).seq LIMIT p_limit) page
         CROSS JOIN LATERAL pgflow.fill_event(page.e) f
         ORDER BY f.seq;
    ELSE
        -- the state events: any p_limit of them (the newest transactions', backwards along the (xid, id)
        -- index) bound the page from below (the newest p_limit by time are at least as new as the oldest
        -- of these); then those at least as new, through the BRIN on "timestamp"
        SELECT min(x.occurred) INTO v_from
          FROM (SELECT e.occurred FROM pgflow._state_events() e
                 WHERE (p_before_seq IS NULL OR e.seq < p_before_seq) AND (v_like IS NULL OR e.event LIKE v_like)
                   AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                 ORDER BY e.xid DESC, e.seq DESC LIMIT p_limit) x;
        RETURN QUERY
        SELECT f.seq, f.id, f.occurred, f.event, f.resource_id, f.resource, f.related, f.payload
          FROM (SELECT u.e FROM (
                  (SELECT e FROM pgflow.events e
                    WHERE (p_before_seq IS NULL OR e.seq < p_before_seq) AND (v_like IS NULL OR e.event LIKE v_like)
                      AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                    ORDER BY e.occurred DESC, e.seq DESC LIMIT p_limit)
                  UNION ALL
                  (SELECT e FROM pgflow._state_events() e
                    WHERE e.occurred >= v_from
                      AND (p_before_seq IS NULL OR e.seq < p_before_seq) AND (v_like IS NULL OR e.event LIKE v_like)
                      AND (p_since IS NULL OR e.occurred >= p_since) AND (p_until IS NULL OR e.occurred < p_until)
                    ORDER BY e.occurred DESC, e.seq DESC LIMIT p_limit)) u
                 ORDER BY (u.e).occurred DESC, (u.e).seq DESC LIMIT p_limit) page
         CROSS JOIN LATERAL pgflow.fill_event(page.e) f
         ORDER BY f.occurred DESC, f.seq DESC;
    END IF;
END $$;

-- The evaluators: 0008's evaluate_events and 0011's evaluate_proactive, matching a trigger's resource
-- filter (when it has one) against the filled event, and firing actions with the filled event (the
-- templates' {{ event.resource.name }} and the like). The filling runs only for events whose name
-- matched (a costly function: the planner checks the cheaper conditions first).
CREATE OR REPLACE FUNCTION pgflow.evaluate_events(p_limit integer DEFAULT 1000, p_max_shards integer DEFAULT 8,
                                       p_now timestamptz DEFAULT now(), p_own_transaction boolean DEFAULT false,
                                       OUT events integer, OUT firings integer, OUT more boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
DECLARE
    v_horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    v_own     xid8 := CASE WHEN p_own_transaction THEN pg_current_xact_id() END;
    v_shards  smallint[];
    v_batch   pgflow.events[];
    v_m       record;
    v_a       pgflow.automations;
    v_count   bigint;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'pgflow: evaluate 1 to 100000 events at a time, got %', coalesce(p_limit::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF p_max_shards IS NULL OR p_max_shards NOT BETWEEN 1 AND 8 THEN
        RAISE EXCEPTION 'pgflow: max shards must be 1 to 8, got %', coalesce(p_max_shards::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    events := 0; firings := 0; more := false;
    v_shards := ARRAY(
        SELECT c.shard FROM pgflow.event_cursors c
         WHERE EXISTS (SELECT 1 FROM pgflow._all_events() e
                        WHERE e.shard = c.shard AND (e.xid, e.seq) > (c.xid, c.seq) AND (e.xid < v_horizon OR e.xid = v_own)
                       OFFSET 0)  -- a subplan per cursor: its shard and position reach both arms' indexes
         ORDER BY c.evaluated_at NULLS FIRST
         LIMIT p_max_shards
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_shards) = 0 THEN
        RETURN;
    END IF;
    -- the batch: per shard and per table, the first rows in the order of its (xid, …) index, slim (a state
    -- row becomes an event, _state_events' columns, only when it is in the batch); then merged
    v_batch := ARRAY(
        SELECT CASE WHEN w.run IS NULL THEN w.ev
                    ELSE ROW(w.occurred, 'pgflow.flow-run.' || w.state_name, w.run::text, '{}'::jsonb, '[]'::jsonb, '{}'::jsonb,
                             pgflow._state_event_id(w.run, w.seq), w.seq, w.xid, w.shard)::pgflow.events END
          FROM (SELECT w.* FROM pgflow.event_cursors c
                 CROSS JOIN LATERAL (
                       (SELECT e.xid, e.seq, e.shard, e AS ev, NULL::uuid AS run, NULL::text AS state_name, NULL::timestamptz AS occurred
                          FROM pgflow.events e
                         WHERE e.shard = c.shard AND (e.xid, e.seq) > (c.xid, c.seq) AND (e.xid < v_horizon OR e.xid = v_own)
                         ORDER BY e.xid, e.seq
                         LIMIT p_limit + 1)
                       UNION ALL
                       (SELECT s.xid, s.id, (s.id % 8)::smallint, NULL::pgflow.events, s.flow_run_id, s.state_name, s."timestamp"
                          FROM pgflow.flow_run_states s
                         WHERE (s.id % 8)::smallint = c.shard AND s.xid IS NOT NULL AND (s.xid, s.id) > (c.xid, c.seq)
                           AND (s.xid < v_horizon OR s.xid = v_own)
                         ORDER BY s.xid, s.id
                         LIMIT p_limit + 1)) w
                 WHERE c.shard = ANY (v_shards)
                 ORDER BY w.xid, w.seq
                 LIMIT p_limit + 1) w
         ORDER BY w.xid, w.seq);
    more := cardinality(v_batch) > p_limit;
    IF more THEN
        v_batch := v_batch[1:p_limit];
    END IF;
    events := cardinality(v_batch);
    UPDATE pgflow.event_cursors c SET xid = coalesce(m.xid, c.xid), seq = coalesce(m.seq, c.seq), evaluated_at = p_now
      FROM (SELECT s AS shard FROM unnest(v_shards) s) l
      LEFT JOIN (SELECT DISTINCT ON (b.shard) b.shard, b.xid, b.seq FROM unnest(v_batch) b
                  ORDER BY b.shard, b.xid DESC, b.seq DESC) m ON m.shard = l.shard
     WHERE c.shard = l.shard;

    -- reactive automations (threshold ones serialised by a lock on the automation row)
    FOR v_m IN
        SELECT a.id AS automation_id, a.threshold, v_batch[i] AS ev
          FROM generate_subscripts(v_batch, 1) i JOIN pgflow.automations a
            ON a.kind = 'reactive' AND NOT a.paused AND (v_batch[i]).event LIKE ANY (a.patterns)
           AND (a.resource_match = '{}' OR (pgflow.fill_event(v_batch[i])).resource @> a.resource_match)
         ORDER BY i, a.id
    LOOP
        IF v_m.threshold = 1 THEN
            SELECT * INTO v_a FROM pgflow.automations WHERE id = v_m.automation_id;
        ELSE
            SELECT * INTO v_a FROM pgflow.automations WHERE id = v_m.automation_id FOR UPDATE;
            SELECT count(*) INTO v_count FROM pgflow._all_events() e
             WHERE e.occurred > (v_m.ev).occurred - v_a.within AND e.occurred <= (v_m.ev).occurred
               AND e.occurred >= coalesce(v_a.threshold_since, '-infinity')
               AND e.event LIKE ANY (v_a.patterns)
               AND (v_a.resource_match = '{}' OR (pgflow.fill_event(e)).resource @> v_a.resource_match);
            CONTINUE WHEN v_count < v_a.threshold;
            UPDATE pgflow.automations SET threshold_since = (v_m.ev).occurred + interval '1 microsecond' WHERE id = v_a.id;
        END IF;
        firings := firings + pgflow._fire(v_a, (v_m.ev).id::text, pgflow._event_json(pgflow.fill_event(v_m.ev)), p_now);
    END LOOP;

    -- proactive: a start event opens a wait; an expected event is a sighting
    INSERT INTO pgflow.automation_expectations (automation_id, event_id, event_occurred, resource_id, due_at)
    SELECT a.id, b.id, b.occurred, b.resource_id, b.occurred + a.within
      FROM unnest(v_batch) b JOIN pgflow.automations a
        ON a.kind = 'proactive' AND NOT a.paused AND a.after_patterns IS NOT NULL
       AND b.event LIKE ANY (a.after_patterns)
       AND (a.resource_match = '{}' OR (pgflow.fill_event(b)).resource @> a.resource_match)
    ON CONFLICT DO NOTHING;
    UPDATE pgflow.automations a SET last_seen_at = greatest(a.last_seen_at, s.occurred)
      FROM (SELECT a2.id, max(b.occurred) AS occurred
              FROM unnest(v_batch) b JOIN pgflow.automations a2
                ON a2.kind = 'proactive' AND a2.after_patterns IS NULL AND NOT a2.paused
               AND b.event LIKE ANY (a2.patterns)
               AND (a2.resource_match = '{}' OR (pgflow.fill_event(b)).resource @> a2.resource_match)
             GROUP BY a2.id) s
     WHERE a.id = s.id;
END $$;

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
        SELECT pgflow._event_json(pgflow.fill_event(e)) INTO v_ev FROM pgflow._all_events() e
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

REVOKE EXECUTE ON FUNCTION pgflow._state_event_id(uuid, bigint), pgflow._state_events(), pgflow._all_events() FROM PUBLIC;

ANALYZE pgflow.flow_run_states;
