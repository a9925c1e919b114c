-- 0023: a flow-run state event is its row of pgflow.flow_run_states, not a copy in pgflow.events.
-- Drained runs (claim, then set_flow_run_states): their states read as the same events as before in
-- event_history, event_page and the evaluators; an automation on Failed fires once per failure; events
-- copied before 0023 (state rows without an xid) are read once, not twice. The evaluator's horizon
-- with transactions committing out of order: state_events_horizon.sql.
BEGIN;
SELECT plan(26);

CREATE FUNCTION pg_temp.evaluate(p_now timestamptz DEFAULT now()) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE v_r record; v_fired integer := 0;
BEGIN
    LOOP
        SELECT * INTO v_r FROM pgflow.evaluate_events(1000, 8, p_now, true);
        v_fired := v_fired + v_r.firings;
        EXIT WHEN v_r.events = 0;
    END LOOP;
    RETURN v_fired;
END $$;
SELECT pg_temp.evaluate();  -- whatever earlier files left

\set t0 '''2031-01-01 00:00:00+00'''
\set t1 '''2031-01-01 00:05:00+00'''
\set t2 '''2031-01-01 00:09:00+00'''
SELECT pgflow.create_work_queue('seq', p_now => :t0);
SELECT pgflow.create_deployment('sev', 'a', './x.sh', p_work_queue => 'seq', p_tags => ARRAY['t'], p_now => :t0);
SELECT pgflow.register_agent('sev-agent', ARRAY['seq'], :t0) AS agent \gset
SELECT pgflow.create_automation('sev-failed', '{"type": "flow-run-state", "deployment": "sev/a", "states": ["Failed"]}',
    '[{"type": "emit-event", "event": "sev.failed", "resource": {"id": "{{ event.resource.id }}"},
       "payload": {"state": "{{ event.payload.state_name }}", "deployment": "{{ event.resource.deployment }}", "event_id": "{{ event.id }}"}}]');
SELECT count(*) FROM pgflow.run_deployments('sev/a', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[], :t0, p_now => :t0);
CREATE TEMP TABLE claimed AS SELECT * FROM pgflow.claim_flow_runs(:'agent', NULL, 3, true, :t1);
SELECT (SELECT flow_run_id FROM claimed WHERE parameters = '{"n": 1}') AS ok_run,
       (SELECT flow_run_id FROM claimed WHERE parameters = '{"n": 2}') AS bad_run,
       (SELECT flow_run_id FROM claimed WHERE parameters = '{"n": 3}') AS old_run \gset
SELECT count(*) FROM pgflow.set_flow_run_states(ARRAY[:'ok_run', :'bad_run', :'old_run']::uuid[], ARRAY['COMPLETED', 'FAILED', 'COMPLETED'],
    p_messages => ARRAY['done', 'boom', NULL], p_agent_id => :'agent', p_now => :t2);

-- no copy: the states are the events
SELECT is((SELECT count(*)::int FROM pgflow.events WHERE resource_id IN (:'ok_run', :'bad_run', :'old_run')), 0,
          'a drained run''s states write no row into pgflow.events');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states WHERE flow_run_id = :'ok_run' AND xid = pg_current_xact_id()), 4,
          'each state row records its transaction');
SELECT is((SELECT array_agg(event ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'ok_run'),
          ARRAY['pgflow.flow-run.Scheduled', 'pgflow.flow-run.Pending', 'pgflow.flow-run.Running', 'pgflow.flow-run.Completed'],
          'event_history: each state of a drained run, in order');
SELECT results_eq(format($$SELECT id, seq, occurred, event, xid, shard FROM pgflow.event_history WHERE resource_id = %L ORDER BY seq$$, :'ok_run'),
                  format($$SELECT md5(flow_run_id::text || ':' || id)::uuid, id, "timestamp", 'pgflow.flow-run.' || state_name, xid, (id %% 8)::smallint
                            FROM pgflow.flow_run_states WHERE flow_run_id = %L ORDER BY id$$, :'ok_run'),
                  'a state event: its id derived from the run and state (stable), seq the state''s id, its time, name, transaction and shard');
SELECT is((SELECT resource FROM pgflow.event_history WHERE resource_id = :'ok_run' AND event = 'pgflow.flow-run.Completed'),
          jsonb_build_object('id', :'ok_run', 'kind', 'flow-run', 'name', (SELECT name FROM pgflow.flow_runs WHERE id = :'ok_run'),
                             'flow', 'sev', 'deployment', 'sev/a', 'tags', '["t"]'::jsonb),
          'its resource, filled from the run as before');
SELECT results_eq(format($$SELECT payload FROM pgflow.event_history WHERE resource_id = %L ORDER BY seq$$, :'ok_run'),
                  format($$VALUES (jsonb_build_object('state_type', 'SCHEDULED', 'state_name', 'Scheduled', 'run_count', 0, 'scheduled_time', %L::timestamptz)),
                                  ('{"state_type": "PENDING", "state_name": "Pending", "run_count": 0}'::jsonb),
                                  ('{"state_type": "RUNNING", "state_name": "Running", "run_count": 1}'::jsonb),
                                  ('{"state_type": "COMPLETED", "state_name": "Completed", "run_count": 1, "message": "done"}'::jsonb)$$, :t0),
                  'its payload, filled from its state as before');
SELECT results_eq(format($$SELECT seq, id, occurred, event, resource, payload FROM pgflow.event_page(p_resource_id => %L, p_after_seq => 0)$$, :'ok_run'),
                  format($$SELECT seq, id, occurred, event, resource, payload FROM pgflow.event_history WHERE resource_id = %L ORDER BY seq$$, :'ok_run'),
                  'event_page by resource: the same events');
SELECT results_eq($$SELECT event, resource_id FROM pgflow.event_page('pgflow.flow-run.*', p_limit => 3)$$,
                  format($$SELECT 'pgflow.flow-run.' || state_name, flow_run_id::text FROM pgflow.flow_run_states
                            WHERE flow_run_id IN (%L, %L, %L) AND "timestamp" = %L ORDER BY id DESC$$, :'ok_run', :'bad_run', :'old_run', :t2),
                  'event_page newest first: the newest states (the three ends, at one time), newest seq first');
SELECT is((SELECT payload ->> 'message' FROM pgflow.event_page('pgflow.flow-run.F*', p_limit => 1)), 'boom',
          'and filled');

-- one seq space: an event emitted after the states sorts after them; pages by seq cross both kinds
SELECT pgflow.emit_event('acme.after', jsonb_build_object('id', :'ok_run'), p_occurred => :t2) AS after_id \gset
SELECT ok((SELECT seq FROM pgflow.events WHERE id = :'after_id') > (SELECT max(id) FROM pgflow.flow_run_states),
          'an emitted event''s seq is above every state''s id (one sequence)');
SELECT results_eq(format($$SELECT event FROM pgflow.event_page(p_resource_id => %L, p_after_seq => 0)$$, :'ok_run'),
                  $$VALUES ('pgflow.flow-run.Scheduled'), ('pgflow.flow-run.Pending'), ('pgflow.flow-run.Running'), ('pgflow.flow-run.Completed'), ('acme.after')$$,
                  'a run''s events oldest first: its states, then the event emitted about it');
SELECT results_eq(format($$SELECT event FROM pgflow.event_page(p_after_seq => %s, p_limit => 2)$$,
                         (SELECT min(id) - 1 FROM pgflow.flow_run_states WHERE flow_run_id IN (:'ok_run', :'bad_run', :'old_run'))),
                  $$VALUES ('pgflow.flow-run.Scheduled'), ('pgflow.flow-run.Scheduled')$$,
                  'event_page after a seq (the --follow feed): state events in seq order');
SELECT is((SELECT array_agg(p.seq ORDER BY p.seq) FROM pgflow.event_page(p_after_seq => (SELECT max(id) FROM pgflow.flow_run_states) - 2, p_limit => 10) p),
          ARRAY[(SELECT max(id) - 1 FROM pgflow.flow_run_states), (SELECT max(id) FROM pgflow.flow_run_states),
                (SELECT seq FROM pgflow.events WHERE id = :'after_id')],
          'the feed reads both tables in one order');

-- the evaluators: the automation on Failed fires once per failure, with the filled event
SELECT is(pg_temp.evaluate(), 1, 'the failed run fires the automation once');
SELECT is(pg_temp.evaluate(), 0, 'evaluating again fires nothing');
SELECT is((SELECT event_id FROM pgflow.automation_firings f JOIN pgflow.automations a ON a.id = f.automation_id WHERE a.name = 'sev-failed'),
          (SELECT md5(flow_run_id::text || ':' || id)::uuid FROM pgflow.flow_run_states WHERE flow_run_id = :'bad_run' AND state_name = 'Failed'),
          'the firing names the state event''s id');
SELECT is((SELECT payload FROM pgflow.events WHERE event = 'sev.failed' AND resource_id = :'bad_run'),
          jsonb_build_object('state', 'Failed', 'deployment', 'sev/a',
                             'event_id', (SELECT md5(flow_run_id::text || ':' || id)::text FROM pgflow.flow_run_states WHERE flow_run_id = :'bad_run' AND state_name = 'Failed')::uuid),
          'the action saw the filled event (payload, resource, id)');

-- two equal states of one run at one time: each event is its own state
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message)
VALUES (:'bad_run', 'FAILED', 'Failed', :t2, 'first'), (:'bad_run', 'FAILED', 'Failed', :t2, 'second');
SELECT is((SELECT array_agg(payload ->> 'message' ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'bad_run' AND event = 'pgflow.flow-run.Failed'),
          ARRAY['boom', 'first', 'second'], 'equal states at one time: each event has its own state''s payload');
SELECT is(pg_temp.evaluate(), 2, 'and each fires the automation once');

-- copied before 0023: a state row without an xid has its event in pgflow.events, read once
UPDATE pgflow.flow_run_states SET xid = NULL WHERE flow_run_id = :'old_run';
INSERT INTO pgflow.events (occurred, event, resource_id)  -- what 0016's trigger wrote
SELECT "timestamp", 'pgflow.flow-run.' || state_name, flow_run_id::text FROM pgflow.flow_run_states WHERE flow_run_id = :'old_run' ORDER BY id;
SELECT is((SELECT array_agg(event ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'old_run'),
          ARRAY['pgflow.flow-run.Scheduled', 'pgflow.flow-run.Pending', 'pgflow.flow-run.Running', 'pgflow.flow-run.Completed'],
          'a run from before 0023: each event once (its copy), not twice');
SELECT is((SELECT array_agg(payload ->> 'state_name' ORDER BY seq) FROM pgflow.event_page(p_resource_id => :'old_run', p_after_seq => 0)),
          ARRAY['Scheduled', 'Pending', 'Running', 'Completed'], 'event_page too, filled');
SELECT is((SELECT count(*)::int FROM pgflow.event_page('pgflow.flow-run.*', p_since => :t0, p_limit => 1000) WHERE resource_id = :'old_run'), 4,
          'and its listing');

-- the newest-first feed orders by time, not by transaction: a state written last with an older time
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message)
VALUES (:'bad_run', 'FAILED', 'Failed', :t0, 'written last, dated first');
SELECT results_eq($$SELECT payload ->> 'message' FROM pgflow.event_page('pgflow.flow-run.Failed', p_limit => 2)$$,
                  $$VALUES ('second'), ('first')$$, 'the newest page by time, though a state written later is dated earlier');
SELECT is((SELECT array_agg(payload ->> 'message') FROM pgflow.event_page('pgflow.flow-run.Failed', p_limit => 10)),
          ARRAY['second', 'first', 'boom', 'written last, dated first'], 'and the older one after them');

-- privileges: a reader sees the state events through the view and event_page, not the tables
SET LOCAL ROLE pgflow_reader;
SELECT is((SELECT count(*)::int FROM pgflow.event_history WHERE resource_id = :'ok_run'), 5, 'a reader reads them in event_history');
SELECT is((SELECT count(*)::int FROM pgflow.event_page(p_resource_id => :'ok_run')), 5, 'and through event_page');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
