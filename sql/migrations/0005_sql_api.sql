-- 0005: the rest of what Swift read from tables becomes named SQL (so psql users, the agent, the
-- scheduler and the API read the same things), and the state names are listed once.

-- ============================================================================================
-- The sixteen state names, once: pgflow.state_type_of(name) is the list; the history and current-state
-- tables check against it instead of repeating the names in four CHECK constraints (an unknown name
-- gives NULL, which IS DISTINCT FROM every state type, so it is refused).
-- ============================================================================================
ALTER TABLE pgflow.flow_runs DROP CONSTRAINT flow_runs_check,
    ADD CONSTRAINT flow_runs_state_name_check CHECK (pgflow.state_type_of(state_name) IS NOT DISTINCT FROM state_type);
ALTER TABLE pgflow.flow_run_states DROP CONSTRAINT flow_run_states_check,
    ADD CONSTRAINT flow_run_states_state_name_check CHECK (pgflow.state_type_of(state_name) IS NOT DISTINCT FROM state_type);
ALTER TABLE pgflow.task_runs DROP CONSTRAINT task_runs_check,
    ADD CONSTRAINT task_runs_state_name_check CHECK (pgflow.state_type_of(state_name) IS NOT DISTINCT FROM state_type);
ALTER TABLE pgflow.task_run_states DROP CONSTRAINT task_run_states_check,
    ADD CONSTRAINT task_run_states_state_name_check CHECK (pgflow.state_type_of(state_name) IS NOT DISTINCT FROM state_type);

-- ============================================================================================
-- Reads for the agent and the scheduler
-- ============================================================================================
-- An agent's Pending and Running runs whose state is older than p_unchanged_for: what a claim or a
-- start whose reply was lost to a broken connection leaves behind (the agent gives them back or crashes
-- them; a claim in flight is younger than p_unchanged_for).
CREATE FUNCTION pgflow.agent_unchanged_runs(p_agent_id uuid, p_unchanged_for interval, p_now timestamptz DEFAULT now())
RETURNS TABLE (id uuid, state_type text)
LANGUAGE sql STABLE AS $$
    SELECT r.id, r.state_type::text FROM pgflow.flow_runs r
     WHERE r.agent_id = p_agent_id AND r.state_type IN ('PENDING', 'RUNNING')
       AND r.state_timestamp < p_now - p_unchanged_for
$$;

-- The schedule-created runs of these deployments that start after p_after, each with whether it is
-- still plainly Scheduled (so schedule_flow_runs may replace it): what the scheduler plans against.
CREATE FUNCTION pgflow.scheduled_run_times(p_deployment_ids uuid[], p_after timestamptz)
RETURNS TABLE (deployment_id uuid, deployment_schedule_id uuid, expected_start_time timestamptz, replaceable boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.deployment_id, r.deployment_schedule_id, r.expected_start_time,
           r.state_type = 'SCHEDULED' AND r.state_name = 'Scheduled'
      FROM pgflow.flow_runs r
     WHERE r.deployment_id = ANY (p_deployment_ids) AND r.deployment_schedule_id IS NOT NULL
       AND r.expected_start_time > p_after
$$;

-- For each work queue with claimable runs due after p_after: the earliest such time (the scheduler
-- NOTIFYs the queue's agents when it comes).
CREATE FUNCTION pgflow.next_due_times(p_after timestamptz)
RETURNS TABLE (queue text, due timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT q.name, n.due FROM pgflow.work_queues q
     CROSS JOIN LATERAL (SELECT min(rq.scheduled_at) AS due FROM pgflow.run_queue rq
                          WHERE rq.work_queue_id = q.id AND rq.scheduled_at > p_after) n
     WHERE n.due IS NOT NULL
$$;

-- A flow run's task runs counted: how many, how many Completed (or Cached), their state rows and
-- their stored results (the SDK benchmark checks its work with it; a run page can show it).
CREATE FUNCTION pgflow.flow_run_task_counts(p_flow_run_id uuid)
RETURNS TABLE (task_runs bigint, completed bigint, states bigint, results bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*), count(*) FILTER (WHERE t.state_type = 'COMPLETED'),
           (SELECT count(*) FROM pgflow.task_run_states s JOIN pgflow.task_runs u ON u.id = s.task_run_id
             WHERE u.flow_run_id = p_flow_run_id),
           (SELECT count(*) FROM pgflow.results r JOIN pgflow.task_runs u ON u.id = r.run_id
             WHERE u.flow_run_id = p_flow_run_id)
      FROM pgflow.task_runs t WHERE t.flow_run_id = p_flow_run_id
$$;

-- ============================================================================================
-- Privileges (docs/security.md)
-- ============================================================================================
ALTER FUNCTION pgflow.agent_unchanged_runs(uuid, interval, timestamptz) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.scheduled_run_times(uuid[], timestamptz) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.next_due_times(timestamptz) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.flow_run_task_counts(uuid) SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.agent_unchanged_runs(uuid, interval, timestamptz) TO pgflow_agent, pgflow_admin;
GRANT EXECUTE ON FUNCTION pgflow.scheduled_run_times(uuid[], timestamptz), pgflow.next_due_times(timestamptz)
    TO pgflow_scheduler, pgflow_api, pgflow_admin;
GRANT EXECUTE ON FUNCTION pgflow.flow_run_task_counts(uuid) TO pgflow_reader, pgflow_api, pgflow_admin;
