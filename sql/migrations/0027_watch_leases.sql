-- 0027: the followers' notifications need a watcher's lease (issue 17: commits no longer queue behind NOTIFY).
--
-- Until 0027 every statement that appended flow-run states or log lines sent `pgflow_flow_run_states` or
-- `pgflow_logs` (empty payload), whether anybody listened or not. A transaction that has sent a NOTIFY
-- takes, at its commit, one lock for the whole cluster (PostgreSQL serialises the notification queue
-- through an AccessExclusive lock on the database object "0"), and holds it across its WAL flush: every
-- claim and every completion of every agent waited for the commit of the one before. Sampled during a
-- drain (`pg_stat_activity` every 2 ms, 2 agents): 12 % of the agents' backends' time was `Lock: object`.
-- Without it the drain ran 22,758 → 24,179 runs/s (medians of 3, scripts/bench-agent.sh drain 60000).
--
-- Now these two channels are sent only while a watcher holds a live lease in pgflow.stream_listeners, the
-- lease the API's live stream already takes for its own channels: `pgflow deployment run --watch` and
-- `pgflow flow-run logs --follow` take one while they follow (RunFollower), and so can a psql session:
--     SELECT pgflow.renew_stream_listener('<any uuid>', interval '10 minutes');  LISTEN pgflow_flow_run_states;
-- Nothing's correctness depends on these notifications (followers also look every few seconds).
-- The agents' channels (`pgflow_runs`, `pgflow_cancel`, `pgflow_resume`, an agent's own) are unchanged.

-- A lease: at least a second, at most a day (one clear error otherwise, nothing changed).
CREATE OR REPLACE FUNCTION pgflow.renew_stream_listener(p_id uuid, p_lease interval DEFAULT interval '60 seconds',
                                                        p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp AS $$
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'pgflow: a watcher''s lease needs an id'
            USING ERRCODE = '22004', HINT = 'pass any uuid, the same one on every renewal: gen_random_uuid()';
    END IF;
    IF p_lease IS NULL OR p_lease < interval '1 second' OR p_lease > interval '1 day' THEN
        RAISE EXCEPTION 'pgflow: a watcher''s lease lasts 1 second to 1 day, not %', coalesce(p_lease::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'renew a short lease while watching, e.g. interval ''60 seconds'' every 20 seconds';
    END IF;
    DELETE FROM pgflow.stream_listeners WHERE expires_at < p_now AND id <> p_id;
    INSERT INTO pgflow.stream_listeners (id, expires_at) VALUES (p_id, p_now + p_lease)
    ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at;
END $$;

-- the followers (the CLI, psql sessions as pgflow_reader) take and give back leases too
GRANT EXECUTE ON FUNCTION pgflow.renew_stream_listener(uuid, interval, timestamptz), pgflow.drop_stream_listener(uuid)
    TO pgflow_reader;

CREATE OR REPLACE FUNCTION pgflow._flow_run_states_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pgflow.automations WHERE NOT paused) THEN
        PERFORM pg_notify('pgflow_events', '');
    END IF;
    IF EXISTS (SELECT 1 FROM pgflow.stream_listeners WHERE expires_at > now()) THEN
        PERFORM pgflow.notify('pgflow_flow_run_states', '');
        PERFORM pg_notify('pgflow_stream_states', string_agg(c.flow_run_id::text || ':' || c.id, ',' ORDER BY c.id))
           FROM (SELECT n.flow_run_id, n.id, (row_number() OVER (ORDER BY n.id) - 1) / 100 AS chunk FROM new_rows n) c
          GROUP BY c.chunk;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION pgflow._logs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pgflow.stream_listeners WHERE expires_at > now()) THEN
        PERFORM pgflow.notify('pgflow_logs', '');
        PERFORM pg_notify('pgflow_stream_logs', string_agg(c.flow_run_id::text || ':' || c.id, ','))
           FROM (SELECT m.flow_run_id, m.id, (row_number() OVER () - 1) / 100 AS chunk
                   FROM (SELECT n.flow_run_id, max(n.id) AS id FROM new_rows n WHERE n.flow_run_id IS NOT NULL
                          GROUP BY n.flow_run_id) m) c
          GROUP BY c.chunk;
    END IF;
    RETURN NULL;
END $$;
