-- 0023: the evaluator's horizon over state events. A run fails in an older transaction that is still
-- open while a newer one fails another run and commits: the newer failure waits (its state event is
-- past the horizon), and once the older one commits both fire, once each. Real concurrent transactions
-- need other sessions (dblink, in a schema dropped at the end) and this file's own statements outside
-- a transaction (an open transaction here would hold the horizon back itself), so it commits and
-- removes what it made at the end.
SELECT plan(7);
CREATE SCHEMA pgflow_test_link;
CREATE EXTENSION dblink SCHEMA pgflow_test_link;
CREATE FUNCTION pg_temp.conninfo() RETURNS text LANGUAGE sql AS $$
    SELECT format('host=%s port=%s dbname=%s user=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
                  current_setting('port'), current_database(), current_user)
$$;
-- evaluates as pgflow-scheduler does (other transactions' events, up to the horizon) until nothing is left
CREATE FUNCTION pg_temp.evaluate() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE v_r record; v_fired integer := 0;
BEGIN
    LOOP
        SELECT * INTO v_r FROM pgflow.evaluate_events(1000, 8, now(), false);
        v_fired := v_fired + v_r.firings;
        EXIT WHEN v_r.events = 0;
    END LOOP;
    RETURN v_fired;
END $$;

SELECT pgflow.create_work_queue('sevh-q');
SELECT pgflow.create_deployment('sevh', 'a', './x.sh', p_work_queue => 'sevh-q');
SELECT pgflow.register_agent('sevh-agent', ARRAY['sevh-q']) AS agent \gset
SELECT pgflow.create_automation('sevh-failed', '{"type": "flow-run-state", "deployment": "sevh/a", "states": ["Failed"]}',
    '[{"type": "emit-event", "event": "sevh.failed", "resource": {"id": "{{ event.resource.id }}"}}]');
SELECT count(*) FROM pgflow.run_deployments('sevh/a', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[]);
CREATE TEMP TABLE claimed AS SELECT * FROM pgflow.claim_flow_runs(:'agent', NULL, 2, true);
SELECT (SELECT flow_run_id FROM claimed WHERE parameters = '{"n": 1}') AS older_run,
       (SELECT flow_run_id FROM claimed WHERE parameters = '{"n": 2}') AS newer_run \gset
SELECT pg_temp.evaluate();  -- everything so far (committed) is evaluated

-- the older transaction fails its run and stays open; the newer one fails the other and commits
SELECT pgflow_test_link.dblink_connect('older', pg_temp.conninfo());
SELECT pgflow_test_link.dblink_connect('newer', pg_temp.conninfo());
SELECT pgflow_test_link.dblink_exec('older', 'BEGIN');
SELECT * FROM pgflow_test_link.dblink('older', format($$SELECT status FROM pgflow.set_flow_run_states(ARRAY[%L]::uuid[], ARRAY['FAILED'], p_agent_id => %L)$$,
                                                      :'older_run', :'agent')) AS t(status text);
SELECT * FROM pgflow_test_link.dblink('newer', format($$SELECT status FROM pgflow.set_flow_run_states(ARRAY[%L]::uuid[], ARRAY['FAILED'], p_agent_id => %L)$$,
                                                      :'newer_run', :'agent')) AS t(status text);
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = :'newer_run'), 'Failed', 'the newer transaction committed its failure');
SELECT is(pg_temp.evaluate(), 0, 'while an older transaction is open, the newer failure waits (past the horizon)');
SELECT pgflow_test_link.dblink_exec('older', 'COMMIT');
SELECT is(pg_temp.evaluate(), 2, 'once the older one commits, both failures fire: the one committed late is not skipped');
SELECT is(pg_temp.evaluate(), 0, 'and neither fires again');
SELECT is((SELECT array_agg(f.event_id ORDER BY f.event_id) FROM pgflow.automation_firings f JOIN pgflow.automations a ON a.id = f.automation_id
            WHERE a.name = 'sevh-failed'),
          (SELECT array_agg(pgflow._state_event_id(s.flow_run_id, s.id) ORDER BY pgflow._state_event_id(s.flow_run_id, s.id))
             FROM pgflow.flow_run_states s WHERE s.flow_run_id IN (:'older_run', :'newer_run') AND s.state_name = 'Failed'),
          'one firing per failure, each naming its state event');
SELECT is((SELECT array_agg(resource_id ORDER BY resource_id) FROM pgflow.events WHERE event = 'sevh.failed'),
          (SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY[:'older_run', :'newer_run']) r),
          'each action saw its own run');
SELECT is((SELECT count(*)::int FROM pgflow.events WHERE resource_id IN (:'older_run', :'newer_run') AND event LIKE 'pgflow.flow-run.%'), 0,
          'and no state event is a row of pgflow.events');

SELECT * FROM finish();

-- what this file made
SELECT pgflow_test_link.dblink_disconnect('older');
SELECT pgflow_test_link.dblink_disconnect('newer');
DROP SCHEMA pgflow_test_link CASCADE;
SELECT pgflow.delete_automation('sevh-failed');
DELETE FROM pgflow.events WHERE event = 'sevh.failed';
SELECT pgflow.delete_flow_run(r) FROM unnest(ARRAY[:'older_run', :'newer_run']::uuid[]) r;
SELECT pgflow.deregister_agent(:'agent');
SELECT pgflow.delete_deployment('sevh/a');
