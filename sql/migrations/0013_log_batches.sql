-- A log batch written twice is stored once. An agent that loses its connection while a write_logs
-- commit is on the wire cannot know whether the batch landed, so it sends it again: with a batch id
-- the second write finds the id already recorded (in the same transaction as the lines) and writes
-- nothing. Ids are kept a day (each write prunes up to 100 older ones), far longer than any retry.

CREATE TABLE pgflow.log_batches (
    id         uuid        PRIMARY KEY,
    written_at timestamptz NOT NULL
);
CREATE INDEX log_batches_written ON pgflow.log_batches (written_at);

DROP FUNCTION pgflow.write_logs(uuid[], integer[], text[], text[], uuid[], timestamptz[], timestamptz);

-- Writes log lines (one per element of the arrays); with p_batch_id, a batch id seen in the last day
-- writes nothing and returns 0. Returns how many lines were written.
CREATE FUNCTION pgflow.write_logs(
    p_flow_run_ids uuid[],
    p_levels       integer[],
    p_messages     text[],
    p_names        text[]        DEFAULT NULL,
    p_task_run_ids uuid[]        DEFAULT NULL,
    p_timestamps   timestamptz[] DEFAULT NULL,
    p_now          timestamptz   DEFAULT now(),
    p_batch_id     uuid          DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_messages), 'write_logs');
    IF p_batch_id IS NOT NULL THEN
        INSERT INTO pgflow.log_batches (id, written_at) VALUES (p_batch_id, p_now) ON CONFLICT (id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN 0;  -- written before: this is a retry of a batch whose commit reply was lost
        END IF;
        DELETE FROM pgflow.log_batches
         WHERE id IN (SELECT b.id FROM pgflow.log_batches b WHERE b.written_at < p_now - interval '1 day'
                       ORDER BY b.written_at LIMIT 100 FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN pgflow._write_logs_unchecked(p_flow_run_ids, p_levels, p_messages, p_names, p_task_run_ids, p_timestamps, p_now);
END $$;

ALTER FUNCTION pgflow.write_logs(uuid[], integer[], text[], text[], uuid[], timestamptz[], timestamptz, uuid)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
REVOKE EXECUTE ON FUNCTION pgflow.write_logs(uuid[], integer[], text[], text[], uuid[], timestamptz[], timestamptz, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.write_logs(uuid[], integer[], text[], text[], uuid[], timestamptz[], timestamptz, uuid)
    TO pgflow_agent, pgflow_admin;
REVOKE ALL ON pgflow.log_batches FROM PUBLIC;
