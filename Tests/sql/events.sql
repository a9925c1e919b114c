-- Events, automations and notifications (0008_events.sql). Everything here happens in one
-- transaction, so evaluate_events reads this transaction's own events (p_own_transaction).
BEGIN;
SELECT plan(60);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
    RETURN v_state;
END $$;
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

-- events: partitioned by day, written by every transition in its transaction
SELECT ok((SELECT count(*) FROM pg_inherits WHERE inhparent = 'pgflow.events'::regclass) >= 5, 'day partitions and a default one');
SELECT pgflow.create_deployment('evf', 'up', './up.sh', p_tags => '{nightly}');
SELECT pgflow.create_deployment('evf', 'down', './down.sh');
SELECT pgflow.run_deployment('evf/up') AS up \gset
SELECT is((SELECT count(*)::int FROM pgflow.event_history WHERE resource_id = :'up' AND event = 'pgflow.flow-run.Scheduled'), 1, 'creating a run emits Scheduled');
SELECT pgflow.set_flow_run_state(:'up', 'PENDING');
SELECT pgflow.set_flow_run_state(:'up', 'RUNNING');
SELECT is((SELECT array_agg(event ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'up'),
          ARRAY['pgflow.flow-run.Scheduled', 'pgflow.flow-run.Pending', 'pgflow.flow-run.Running'], 'each transition, in order');
SELECT is((SELECT resource ->> 'deployment' FROM pgflow.event_history WHERE resource_id = :'up' LIMIT 1), 'evf/up', 'the resource names the deployment');
SELECT is((SELECT resource -> 'tags' FROM pgflow.event_history WHERE resource_id = :'up' LIMIT 1), '["nightly"]'::jsonb, 'and the tags');
SELECT is((SELECT payload ->> 'state_type' FROM pgflow.event_history WHERE resource_id = :'up' AND event = 'pgflow.flow-run.Running'), 'RUNNING', 'the payload has the state');
-- 0023: a flow-run event is its state row (no row in pgflow.events); readers get the resource and
-- payload from the run and its state
SELECT is((SELECT count(*)::int FROM pgflow.events WHERE resource_id = :'up'), 0,
          'a flow-run event stores no row in pgflow.events');
SELECT is((SELECT resource FROM pgflow.event_history WHERE resource_id = :'up' AND event = 'pgflow.flow-run.Pending'),
          jsonb_build_object('id', :'up', 'kind', 'flow-run', 'name', (SELECT name FROM pgflow.flow_runs WHERE id = :'up'),
                             'flow', 'evf', 'deployment', 'evf/up', 'tags', '["nightly"]'::jsonb),
          'event_history fills the resource: id, kind, name, flow, deployment, tags');
SELECT is((SELECT payload FROM pgflow.event_history WHERE resource_id = :'up' AND event = 'pgflow.flow-run.Scheduled'),
          jsonb_build_object('state_type', 'SCHEDULED', 'state_name', 'Scheduled', 'run_count', 0,
                             'scheduled_time', (SELECT expected_start_time FROM pgflow.flow_runs WHERE id = :'up')),
          'and the payload: the state, its scheduled time, the attempt count then');
SELECT is((SELECT array_agg(payload ->> 'run_count' ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'up'),
          ARRAY['0', '0', '1'], 'the attempt count as of each state');
SELECT is((SELECT resource ->> 'deployment' FROM pgflow.event_page(p_resource_id => :'up', p_limit => 1)), 'evf/up',
          'event_page returns filled events');
SELECT is((SELECT payload ->> 'state_name' FROM pgflow.event_page('pgflow.flow-run.*', p_limit => 1)), 'Running',
          'whichever branch it takes');
SELECT pgflow.create_deployment('evf', 'retry', './r.sh', p_retries => 1);
SELECT pgflow.run_deployment('evf/retry') AS rr \gset
SELECT pgflow.set_flow_run_state(:'rr', s) FROM unnest(ARRAY['PENDING', 'RUNNING', 'FAILED', 'PENDING', 'RUNNING']) s;
SELECT is((SELECT array_agg((payload ->> 'state_name') || ':' || (payload ->> 'run_count') ORDER BY seq) FROM pgflow.event_history WHERE resource_id = :'rr'),
          ARRAY['Scheduled:0', 'Pending:0', 'Running:1', 'AwaitingRetry:1', 'Pending:1', 'Retrying:2'],
          'a retried run: the retry''s states, the attempt count of each');
DELETE FROM pgflow.flow_runs WHERE id = :'rr';
SELECT is((SELECT resource || payload FROM pgflow.event_history WHERE resource_id = :'rr' AND event = 'pgflow.flow-run.Retrying'),
          jsonb_build_object('id', :'rr', 'kind', 'flow-run', 'state_type', 'RUNNING', 'state_name', 'Retrying'),
          'a deleted run''s events keep what their own row says');
SELECT count(*) FROM pgflow.run_deployments('evf/down', array_fill('{}'::jsonb, ARRAY[5])) \gset batch_
SELECT is((SELECT count(*)::int FROM pgflow.event_history e JOIN pgflow.flow_runs r ON r.id::text = e.resource_id
            WHERE r.deployment_id = pgflow._deployment_id('evf/down')), 5, 'a batch of 5 runs: 5 events');

-- emit_event: anyone's events, checked
SELECT ok(pgflow.emit_event('acme.file.arrived', '{"id": "s3://b/k"}', '{"size": 3}') IS NOT NULL, 'emit an event');
SELECT is((SELECT resource_id FROM pgflow.events WHERE event = 'acme.file.arrived'), 's3://b/k', 'resource id from the resource');
SELECT is(pg_temp.err($$SELECT pgflow.emit_event('pgflow.flow-run.Completed')$$), '22023', 'pgflow.* names are the engine''s');
SELECT is(pg_temp.err($$SELECT pgflow.emit_event('bad name')$$), '22023', 'bad event name');
SELECT is(pg_temp.err($$SELECT pgflow.emit_event('a.b', '[]')$$), '22023', 'resource must be an object');
SELECT is(pg_temp.err($$SELECT pgflow.emit_event('a.b', '{}', '3')$$), '22023', 'payload must be an object');
SELECT is(pg_temp.err($$SELECT pgflow.emit_event('a.b', '{}', jsonb_build_object('x', repeat('y', 300000)))$$), '54000', 'at most 256 KiB');

-- automations: bad input changes nothing
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('x', '{"type": "nope"}', '[{"type": "cancel-flow-run"}]')$$), '22023', 'unknown trigger type');
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('x', '{"match": "a.*", "within": "1h"}', '[{"type": "cancel-flow-run"}]')$$), '22023', 'within without threshold');
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('x', '{"match": "a.*"}', '[{"type": "launch"}]')$$), '22023', 'unknown action');
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('x', '{"match": "a.*"}', '[{"type": "run-deployment", "deployment": "no/such"}]')$$), 'P0002', 'unknown deployment');
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('x', '{"match": "a.*"}', '[{"type": "send-notification", "target": "nobody"}]')$$), 'P0002', 'unknown target');
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('x', '{"type": "flow-run-state", "states": ["Exploded"]}', '[{"type": "cancel-flow-run"}]')$$), '22023', 'unknown state');
SELECT is((SELECT count(*)::int FROM pgflow.automations WHERE name = 'x'), 0, 'none was created');

-- reactive: B runs when A completes, with A's result in its parameters; once per event
SELECT pgflow.create_automation('up-then-down', '{"type": "flow-run-state", "deployment": "evf/up", "states": ["Completed"]}',
    '[{"type": "run-deployment", "deployment": "evf/down", "parameters": {"rows": "{{ flow_run.result.rows }}", "from": "run {{ event.resource.name }}"}}]');
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('up-then-down', '{"match": "a"}', '[{"type": "cancel-flow-run"}]')$$), '23505', 'names are unique');
SELECT pgflow.set_flow_run_state(:'up', 'COMPLETED', p_result => '{"rows": 42}');
SELECT is(pg_temp.evaluate(), 1, 'one action fired');
SELECT is((SELECT parameters -> 'rows' FROM pgflow.flow_runs WHERE deployment_id = pgflow._deployment_id('evf/down') AND parameters ? 'rows'),
          '42'::jsonb, 'the upstream result is in the parameters, typed');
SELECT ok((SELECT parameters ->> 'from' FROM pgflow.flow_runs WHERE parameters ? 'rows') LIKE 'run %', 'text templates are filled in');
SELECT is(pg_temp.evaluate(), 0, 'evaluating again fires nothing');
-- the unique key: firing the same automation for the same event again does nothing
SELECT is(pgflow._fire(a, (SELECT id::text FROM pgflow.event_history WHERE resource_id = :'up' AND event = 'pgflow.flow-run.Completed'),
                       '{}'::jsonb, now()), 0, 'a second firing for one event is refused by the unique key')
  FROM pgflow.automations a WHERE a.name = 'up-then-down';

-- threshold: 3 within 10 minutes
SELECT pgflow.create_automation('three-files', '{"match": "acme.file.*", "resource": {"kind": "file"}, "threshold": 3, "within": "10 minutes"}',
    '[{"type": "emit-event", "event": "acme.files.batch", "payload": {"last": "{{ event.resource.id }}"}}]');
SELECT pgflow.emit_event('acme.file.arrived', jsonb_build_object('id', 'f' || g, 'kind', 'file')) FROM generate_series(1, 2) g;
SELECT is(pg_temp.evaluate(), 0, 'two of three: nothing');
SELECT pgflow.emit_event('acme.file.arrived', '{"id": "f3", "kind": "file"}');
SELECT is(pg_temp.evaluate(), 1, 'the third fires');
SELECT is((SELECT payload ->> 'last' FROM pgflow.events WHERE event = 'acme.files.batch'), 'f3', 'the emitted event carries the template');
SELECT pgflow.emit_event('acme.file.arrived', '{"id": "f4", "kind": "file"}');
SELECT is(pg_temp.evaluate(), 0, 'the count starts over after firing');

-- proactive: Running not followed by Completed within 1 hour (time injected)
-- a target's signing key (and URL, when it is a credential) are secrets: names here, sealed elsewhere
SELECT pgflow.set_secret('ops-key', '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c'::bytea, '0123456789abcdef');
SELECT is(pg_temp.err($$SELECT pgflow.set_notification_target('ops', 'http://127.0.0.1:9/hook', 'json', 'k3y', 2, 1)$$), 'P0002',
          'a plaintext key where a secret name goes: unknown secret');
SELECT is(pg_temp.err($$SELECT pgflow.set_notification_target('ops', 'http://127.0.0.1:9/hook', p_url_secret => 'ops-key')$$), '22023',
          'a URL and a URL secret: refused');
SELECT is(pg_temp.err($$SELECT pgflow.set_notification_target('ops', NULL)$$), '22023', 'neither a URL nor a URL secret: refused');
SELECT is(pg_temp.err($$SELECT pgflow.set_notification_target('ops', NULL, p_url_secret => 'nope')$$), 'P0002', 'an unknown URL secret');
SELECT is((SELECT count(*)::int FROM pgflow.notification_targets WHERE name = 'ops'), 0, 'the refusals wrote nothing');
SELECT pgflow.set_notification_target('ops', 'http://127.0.0.1:9/hook', 'json', 'ops-key', 2, 1);
SELECT is((SELECT signed::text || ' ' || signing_key_secret FROM pgflow.notification_target_list WHERE name = 'ops'), 'true ops-key',
          'the target lists its key secret by name');
SELECT pgflow.create_automation('stuck', '{"type": "proactive", "after": "pgflow.flow-run.Running", "expect": "pgflow.flow-run.Completed", "resource": {"deployment": "evf/down"}, "within": "1 hour"}',
    '[{"type": "send-notification", "target": "ops", "message": "{{ event.resource.name }} did not complete"}]');
SELECT pgflow.run_deployment('evf/down') AS slow \gset
SELECT pgflow.run_deployment('evf/down') AS quick \gset
SELECT pgflow.set_flow_run_state(r, 'PENDING') FROM unnest(ARRAY[:'slow', :'quick']::uuid[]) r;
SELECT pgflow.set_flow_run_state(r, 'RUNNING') FROM unnest(ARRAY[:'slow', :'quick']::uuid[]) r;
SELECT pgflow.set_flow_run_state(:'quick', 'COMPLETED');
SELECT pg_temp.evaluate();
SELECT is((SELECT count(*)::int FROM pgflow.automation_expectations), 2, 'two waits');
SELECT is(pgflow.evaluate_proactive(now() + interval '30 minutes'), 0, 'within the window: nothing');
SELECT is(pgflow.evaluate_proactive(now() + interval '61 minutes'), 1, 'past it: the slow run fires, the quick one does not');
SELECT is((SELECT count(*)::int FROM pgflow.notification_deliveries d JOIN pgflow.automation_firings f ON f.id = d.firing_id
            WHERE f.event_id IN (SELECT id FROM pgflow.event_history WHERE resource_id = :'slow')), 1, 'a notification about the slow run');

-- notifications: claim, fail, back off, dead letter, retry
SELECT is((SELECT signing_key_secret || ' ' || signing_key_key_id || ' ' || (signing_key_sealed IS NOT NULL)::text || ' ' || (signing_key IS NULL)::text
             FROM pgflow.claim_notifications(10, interval '60 seconds', now() + interval '2 hours')), 'ops-key 0123456789abcdef true true',
          'the sender claims it, with the key sealed (the database holds no plaintext key)');
SELECT is(pgflow.record_notification_attempt((SELECT max(id) FROM pgflow.notification_deliveries), false, 'HTTP 500', now() + interval '2 hours'),
          'pending', 'a failure: pending again');
SELECT is((SELECT count(*)::int FROM pgflow.claim_notifications(10, interval '60 seconds', now() + interval '2 hours')), 0, 'not before its backoff');
SELECT is((SELECT count(*)::int FROM pgflow.claim_notifications(10, interval '60 seconds', now() + interval '3 hours')), 1, 'after it');
SELECT is(pgflow.record_notification_attempt((SELECT max(id) FROM pgflow.notification_deliveries), false, 'HTTP 500', now() + interval '3 hours'),
          'dead', 'max attempts: a dead letter');
SELECT is((SELECT count(*)::int FROM pgflow.notification_dead_letters), 1, 'visible in SQL');
SELECT pgflow.retry_notification((SELECT max(id) FROM pgflow.notification_deliveries));
SELECT is((SELECT status FROM pgflow.notification_deliveries ORDER BY id DESC LIMIT 1), 'pending', 'retry sends it again');

-- agents: online when registered, offline when deregistered
SELECT pgflow.register_agent('ev-agent', ARRAY['default']) AS agent \gset
SELECT is((SELECT count(*)::int FROM pgflow.events WHERE event = 'pgflow.agent.online' AND resource_id = :'agent'), 1, 'a registered agent is online');
SELECT pgflow.deregister_agent(:'agent');
SELECT is((SELECT count(*)::int FROM pgflow.events WHERE event = 'pgflow.agent.offline' AND resource_id = :'agent'), 1, 'a deregistered agent is offline');

-- roles: an agent may emit, a reader may not create automations
SET LOCAL ROLE pgflow_agent;
SELECT ok(pgflow.emit_event('acme.agent.said', '{}') IS NOT NULL, 'an agent may emit events');
RESET ROLE;
SET LOCAL ROLE pgflow_reader;
SELECT is(pg_temp.err($$SELECT pgflow.create_automation('r', '{"match": "a"}', '[{"type": "cancel-flow-run"}]')$$), '42501', 'a reader may not create automations');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
