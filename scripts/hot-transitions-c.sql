-- Experiment (not a migration): scripts/hot-transitions-b.sql plus what the drain would pay for the
-- structures that replace the dropped indexes (apply after hot-transitions-b.sql):
-- (Built as migration 0024, which drops these indexes: this file applies to schemas before 0024 only.)
--   scripts/bench-drain-cpu.sh 5 20000 sql/schema.sql <(cat sql/schema.sql scripts/hot-transitions-b.sql scripts/hot-transitions-c.sql)
--   * pgflow.active_runs: one row per run in an active state (PENDING, RUNNING, PAUSED, CANCELLING), with
--     its agent (for the agents' and the reaper's reads) and state (the listings of active states sort
--     this small set); kept by a statement trigger after UPDATE on flow_runs, so every state change,
--     whichever SQL function makes it, keeps it (a migration would also need the INSERT and DELETE sides:
--     a pushed run is inserted Running);
--   * flow_run_states_ended: the terminal state rows by time (what flow_runs_ended served: runs ended in
--     a time range, for the dashboard, the metrics and failing deployments), one entry per finished run.
-- Not measured here: failed, crashed and cancelled runs (flow_runs_failed) would need the same kind of
-- side rows; a drain of completed runs writes none.
CREATE TABLE pgflow.active_runs (
    flow_run_id uuid PRIMARY KEY,
    agent_id    uuid,
    state_type  pgflow.state_type NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX active_runs_agent ON pgflow.active_runs (agent_id);
CREATE FUNCTION pgflow._active_runs_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgflow.active_runs a
     WHERE a.flow_run_id IN (SELECT n.id FROM new_rows n WHERE n.state_type NOT IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING'));
    UPDATE pgflow.active_runs a SET agent_id = n.agent_id, state_type = n.state_type
      FROM new_rows n
     WHERE a.flow_run_id = n.id AND (a.agent_id, a.state_type) IS DISTINCT FROM (n.agent_id, n.state_type)
       AND n.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
    INSERT INTO pgflow.active_runs (flow_run_id, agent_id, state_type, created_at)
    SELECT n.id, n.agent_id, n.state_type, n.created_at FROM new_rows n
     WHERE n.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
       AND NOT EXISTS (SELECT 1 FROM pgflow.active_runs a WHERE a.flow_run_id = n.id);
    RETURN NULL;
END $$;
CREATE TRIGGER flow_runs_active_sync AFTER UPDATE ON pgflow.flow_runs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgflow._active_runs_sync();
CREATE INDEX flow_run_states_ended ON pgflow.flow_run_states ("timestamp")
    WHERE state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED');
