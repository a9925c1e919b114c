-- Runs pushed to idle agents (0018, 0020): claim_and_offer leaves an offer when its claim comes back short,
-- run_deployment of a run due now inserts it Running for an offering agent and NOTIFYs the agent's
-- channel with it; what turns a push off; the claim returning pushed runs the agent did not see;
-- reconciliation and withdrawal. pgflow.notify is swapped for a recorder (see notify.sql) and
-- pgflow._agent_listener_held (whether the agent's LISTEN session holds its lock: another session's
-- lock, which one test session cannot hold) reads a table; the real lock is tested by the agent's
-- process tests (PushProcessTests).
BEGIN;
SELECT plan(57);

CREATE TEMP TABLE sent (channel text, payload text, n serial);
CREATE OR REPLACE FUNCTION pgflow.notify(p_channel text, p_payload text) RETURNS void
LANGUAGE sql AS $$ INSERT INTO sent (channel, payload) SELECT p_channel, p_payload
                    WHERE p_channel NOT IN ('pgflow_flow_run_states', 'pgflow_logs') $$;
CREATE TEMP TABLE listening (agent uuid);
GRANT SELECT ON listening TO PUBLIC;
CREATE OR REPLACE FUNCTION pgflow._agent_listener_held(p_agent_id uuid) RETURNS boolean
LANGUAGE sql AS $$ SELECT EXISTS (SELECT 1 FROM listening WHERE agent = p_agent_id) $$;

SELECT pgflow.create_work_queue('pq');
SELECT pgflow.create_work_queue('other');
SELECT pgflow.create_deployment('pf', 'pd', './p.sh', '{"a": 1}', p_work_queue => 'pq', p_tags => ARRAY['t1']);
SELECT pgflow.create_deployment('pf', 'od', './o.sh', p_work_queue => 'other');
SELECT pgflow.register_agent('pa', ARRAY['pq']) AS agent \gset
INSERT INTO listening VALUES (:'agent');

-- no offer: enqueued as before
SELECT pgflow.run_deployment('pf/pd') AS queued \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'queued'), 'SCHEDULED', 'without an offer a run is enqueued Scheduled');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'queued'), 1, '... with its run_queue row');

-- a claim that takes that run and comes back short offers the rest
SELECT is(ARRAY(SELECT flow_run_id FROM pgflow.claim_and_offer(:'agent', NULL, 3, '{}', '10 seconds')), ARRAY[:'queued'::uuid],
          'claim_and_offer claims and starts due runs');
SELECT results_eq($$SELECT slots, work_queue_ids, pushed FROM pgflow.agent_offers$$,
                  $$SELECT 2, ARRAY[(SELECT id FROM pgflow.work_queues WHERE name = 'pq')], '{}'::uuid[]$$,
                  'a claim that came back short offers the rest of p_max for the agent''s queues');

-- a push
DELETE FROM sent;
SELECT pgflow.run_deployment('pf/pd', '{"b": 2}', p_tags => ARRAY['t2']) AS pushed \gset
SELECT results_eq($$SELECT state_type::text, state_name, agent_id, run_count, start_time = created_at, expected_start_time = created_at
                      FROM pgflow.flow_runs WHERE id = '$$ || :'pushed' || $$'$$,
                  $$VALUES ('RUNNING', 'Running', '$$ || :'agent' || $$'::uuid, 1, true, true)$$,
                  'a run due now is inserted Running for the offering agent (attempt 1, started)');
SELECT is(ARRAY(SELECT state_name FROM pgflow.flow_run_states WHERE flow_run_id = :'pushed' ORDER BY id),
          ARRAY['Scheduled', 'Pending', 'Running'], 'its history has Scheduled, Pending and Running');
SELECT is((SELECT message FROM pgflow.flow_run_states WHERE flow_run_id = :'pushed' AND state_name = 'Pending'),
          'pushed to an idle agent that offered to take runs of its queue', 'its Pending state says it was pushed');
SELECT is((SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = :'pushed'), 0, 'a pushed run has no run_queue row');
SELECT is(ARRAY(SELECT event FROM pgflow.event_history WHERE resource_id = :'pushed' ORDER BY event),
          ARRAY['pgflow.flow-run.Pending', 'pgflow.flow-run.Running', 'pgflow.flow-run.Scheduled'], 'and its three state events');
SELECT results_eq($$SELECT slots, pushed FROM pgflow.agent_offers$$, $$SELECT 1, ARRAY['$$ || :'pushed' || $$'::uuid]$$,
                  'the push took a slot of the offer and is listed as pushed');
SELECT is((SELECT count(*)::int FROM sent WHERE channel = 'pgflow_runs'), 0, 'a push wakes no other agent');
SELECT is((SELECT channel FROM sent), 'pgflow_agent_' || :'agent', 'the agent''s channel is notified');
SELECT results_eq($$SELECT p->>'flow_run_id', p->>'flow_name', p->>'deployment_name', p->>'entrypoint', (p->>'parameters')::jsonb,
                           (p->'tags')::jsonb, p->>'state_type', (p->>'run_count')::int, p->>'work_queue'
                      FROM (SELECT payload::json AS p FROM sent) x$$,
                  $$VALUES ('$$ || :'pushed' || $$', 'pf', 'pd', './p.sh', '{"a": 1, "b": 2}'::jsonb, '["t1","t2"]'::jsonb, 'RUNNING', 1, 'pq')$$,
                  'the notification carries the run as the claim returns it (parameters merged, tags)');

-- the same run claimed: the same columns (but how it got there)
SELECT pgflow.withdraw_offer(:'agent', '{}');
SELECT pgflow.run_deployment('pf/pd', '{"b": 2}', p_tags => ARRAY['t2']) AS twin \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true);
SELECT results_eq(
    $$SELECT flow_id, deployment_id, work_queue_id, parameters, tags, retries, retry_delays, state_type, state_name, run_count,
             agent_id, end_time, total_run_time, next_scheduled_start, pause_expires_at, process_id
        FROM pgflow.flow_runs WHERE id = '$$ || :'pushed' || $$'$$,
    $$SELECT flow_id, deployment_id, work_queue_id, parameters, tags, retries, retry_delays, state_type, state_name, run_count,
             agent_id, end_time, total_run_time, next_scheduled_start, pause_expires_at, process_id
        FROM pgflow.flow_runs WHERE id = '$$ || :'twin' || $$'$$,
    'a pushed run is what a claimed one is');
SELECT is((SELECT pgflow.set_flow_run_state(:'pushed', 'COMPLETED')).status, 'ACCEPTED', 'a pushed run completes as a claimed one does');

-- claim_and_offer hands back the pushed runs the agent did not name as seen, and counts them
SELECT count(*) FROM pgflow.claim_and_offer(:'agent', NULL, 3, '{}', '10 seconds');
SELECT pgflow.run_deployment('pf/pd', p_flow_run_name => 'lost') AS lost \gset
SELECT pgflow.run_deployment('pf/pd', p_flow_run_name => 'seen') AS seen \gset
SELECT is(ARRAY(SELECT id FROM pgflow.agent_unchanged_runs(:'agent', '0 seconds', now() + interval '1 minute') WHERE id IN (:'lost', :'seen')),
          '{}'::uuid[], 'reconciliation leaves alone pushed runs no claim has acknowledged');
SELECT results_eq($$SELECT flow_run_id, flow_run_name, state_type::text, run_count, pushed FROM pgflow.claim_and_offer('$$ || :'agent' || $$', NULL, 3, ARRAY['$$ || :'seen' || $$'::uuid], '10 seconds')$$,
                  $$VALUES ('$$ || :'lost' || $$'::uuid, 'lost', 'RUNNING', 1, true)$$,
                  'the next claim returns the pushed run the agent did not see (pushed = true), and not the one it saw');
SELECT is((SELECT slots FROM pgflow.agent_offers), 2, '... and offers p_max less the run it returned');
SELECT is(ARRAY(SELECT id FROM pgflow.agent_unchanged_runs(:'agent', '0 seconds', now() + interval '1 minute') WHERE id IN (:'lost', :'seen')),
          ARRAY[:'seen'::uuid], 'the run named as seen is acknowledged (reconciliation sees it); the one returned is not yet');
-- a claim whose reply was lost acknowledged nothing: the next returns the same run again
SELECT is(ARRAY(SELECT flow_run_id FROM pgflow.claim_and_offer(:'agent', NULL, 3, '{}', '10 seconds') WHERE pushed), ARRAY[:'lost'::uuid],
          'a returned pushed run is returned again until a claim names it as seen');
SELECT count(*) FROM pgflow.claim_and_offer(:'agent', NULL, 3, ARRAY[:'lost'::uuid], '10 seconds');
SELECT is(ARRAY(SELECT id FROM pgflow.agent_unchanged_runs(:'agent', '0 seconds', now() + interval '1 minute') WHERE id IN (:'lost', :'seen') ORDER BY id),
          ARRAY(SELECT unnest(ARRAY[:'lost'::uuid, :'seen'::uuid]) ORDER BY 1), 'once named as seen, reconciliation sees it');
SELECT is((SELECT pushed FROM pgflow.agent_offers), '{}'::uuid[], '... and it leaves the offer''s list');
SELECT pgflow.set_flow_run_state(:'lost', 'COMPLETED');
SELECT pgflow.set_flow_run_state(:'seen', 'COMPLETED');

-- what turns a push off
SELECT pgflow.run_deployment('pf/od') AS other \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'other'), 'SCHEDULED', 'a run of a queue the agent does not serve is enqueued');
SELECT pgflow.run_deployment('pf/pd', p_scheduled_time => now() + interval '1 minute') AS later \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'later'), 'SCHEDULED', 'a run due later is enqueued');
SELECT pgflow.run_deployments('pf/pd', ARRAY['{}'::jsonb]) AS waiting \gset
SELECT pgflow.run_deployment('pf/pd') AS fifo \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'fifo'), 'SCHEDULED', 'a run whose queue holds a due run is enqueued behind it (FIFO)');
DELETE FROM pgflow.run_queue WHERE flow_run_id IN (:'later', :'waiting', :'fifo');  -- (out of the way; a test may write the queue)

-- concurrency limits (0020): only a limit that applies to the run holds its push back
SELECT pgflow.create_concurrency_limit('tag:unrelated', 5);
SELECT pgflow.create_deployment('pf', 'ld', './l.sh', p_work_queue => 'pq', p_concurrency_limit => 3);
SELECT pgflow.run_deployment('pf/pd') AS unlimited \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'unlimited'), 'RUNNING',
          'a run no active limit applies to is pushed while limits on another tag and another deployment are active');
SELECT is((SELECT pgflow.set_flow_run_state(:'unlimited', 'COMPLETED')).status, 'ACCEPTED', '... and completes');
SELECT pgflow.run_deployment('pf/ld') AS limited \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'limited'), 'SCHEDULED', 'a run of a deployment with a limit is enqueued (a pushed run takes no slot)');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'limited';
SELECT pgflow.create_concurrency_limit('tag:t1', 5);
SELECT pgflow.run_deployment('pf/pd') AS tagged \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'tagged'), 'SCHEDULED', 'a run with a tag (of its deployment) that has a limit is enqueued');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'tagged';
SELECT pgflow.delete_concurrency_limit('tag:t1');
SELECT pgflow.run_deployment('pf/pd', p_tags => ARRAY['unrelated']) AS own_tag \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'own_tag'), 'SCHEDULED', 'a run with a tag of its own that has a limit is enqueued');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'own_tag';
SELECT pgflow.create_concurrency_limit('tag:t1', 5, p_active => false);
SELECT pgflow.set_work_queue_concurrency_limit('pq', 4);
SELECT pgflow.run_deployment('pf/pd') AS queue_limited \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'queue_limited'), 'SCHEDULED', 'a run of a queue with a limit is enqueued');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'queue_limited';
SELECT pgflow.set_work_queue_concurrency_limit('pq', NULL);
-- a due run waiting for a slot of a full limit does not hold back a run no limit applies to (the
-- claim skips it too); one that is not waiting does (FIFO, above)
SELECT pgflow.run_deployments('pf/ld', ARRAY['{}'::jsonb]) AS blocked \gset
UPDATE pgflow.run_queue SET blocked_on = ARRAY[(SELECT id FROM pgflow.concurrency_limits WHERE name = 'deployment:pf/ld')] WHERE flow_run_id = :'blocked';
SELECT pgflow.run_deployment('pf/pd') AS past_blocked \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'past_blocked'), 'RUNNING',
          'a run is pushed past a due run waiting for a slot, an inactive limit on its tag notwithstanding');
SELECT is((SELECT pgflow.set_flow_run_state(:'past_blocked', 'COMPLETED')).status, 'ACCEPTED', '... and completes');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'blocked';
SELECT pgflow.delete_concurrency_limit('tag:t1');
SELECT pgflow.delete_concurrency_limit('tag:unrelated');
SELECT pgflow.update_deployment('pf/ld', '{"concurrency_limit": null}');
SELECT count(*) FROM pgflow.claim_and_offer(:'agent', NULL, 3, '{}', '10 seconds');  -- (the slots the pushes above took)

SELECT pgflow.set_work_queue_paused('pq', true);
SELECT pgflow.run_deployment('pf/pd') AS paused \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'paused'), 'SCHEDULED', 'a run of a paused queue is enqueued');
SELECT pgflow.set_work_queue_paused('pq', false);
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'paused';

DELETE FROM listening;
SELECT pgflow.run_deployment('pf/pd') AS deaf \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'deaf'), 'SCHEDULED', 'an agent whose LISTEN session is gone gets no push');
INSERT INTO listening VALUES (:'agent');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'deaf';

SELECT pgflow.run_deployment('pf/pd', p_now => now() + interval '1 minute') AS stale \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'stale'), 'SCHEDULED', 'an agent that has not heartbeated within its offer''s fresh_for gets no push');
DELETE FROM pgflow.run_queue WHERE flow_run_id = :'stale';

-- the idempotency key: the same run, no slot taken
SELECT pgflow.run_deployment('pf/pd', p_idempotency_key => 'k1') AS k1 \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'k1'), 'RUNNING', 'a run with a new idempotency key is pushed');
SELECT slots AS slots_before FROM pgflow.agent_offers \gset
SELECT is(pgflow.run_deployment('pf/pd', p_idempotency_key => 'k1'), :'k1'::uuid, 'the key used again returns the same run');
SELECT is((SELECT slots FROM pgflow.agent_offers), :slots_before, '... taking no slot');
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE idempotency_key = 'k1'), 1, '... and writing no run');

-- a payload too large for a notification: pushed, the notification empty (the agent then claims)
DELETE FROM sent;
SELECT pgflow.run_deployment('pf/pd', jsonb_build_object('big', repeat('x', 8000))) AS big \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'big'), 'RUNNING', 'a run with large parameters is pushed');
SELECT is((SELECT payload FROM sent WHERE channel LIKE 'pgflow_agent_%'), '', '... with an empty notification');
SELECT is(ARRAY(SELECT flow_run_id FROM pgflow.claim_and_offer(:'agent', NULL, 3, ARRAY[:'k1'::uuid], '10 seconds')), ARRAY[:'big'::uuid],
          '... which the agent''s claim returns');

-- slots run out
SELECT slots AS n FROM pgflow.agent_offers \gset
SELECT count(*) FROM (SELECT pgflow.run_deployment('pf/pd') FROM generate_series(1, :n)) x;
SELECT is((SELECT slots FROM pgflow.agent_offers), 0, 'each push takes a slot');
SELECT pgflow.run_deployment('pf/pd') AS full \gset
SELECT is((SELECT state_type::text FROM pgflow.flow_runs WHERE id = :'full'), 'SCHEDULED', 'with no slot left the run is enqueued');

-- withdrawal and deregistration
SELECT is(cardinality(ARRAY(SELECT pgflow.withdraw_offer(:'agent', ARRAY[:'big'::uuid]))), :n, 'withdraw_offer returns the pushed runs not named as seen');
SELECT is((SELECT count(*)::int FROM pgflow.agent_offers), 0, '... and revokes the offer');
SELECT count(*) FROM pgflow.claim_and_offer(:'agent', NULL, 2, '{}', '10 seconds');
SELECT is((SELECT count(*)::int FROM pgflow.agent_offers), 1, 'the agent offers again');
SELECT pgflow.deregister_agent(:'agent');
SELECT is((SELECT count(*)::int FROM pgflow.agent_offers), 0, 'an agent that deregisters offers nothing');
SELECT pgflow.register_agent('pb', ARRAY['pq']) AS agent2 \gset
INSERT INTO listening VALUES (:'agent2');
SELECT count(*) FROM pgflow.claim_and_offer(:'agent2', NULL, 10000, '{}', '10 seconds');
SELECT is((SELECT count(*)::int FROM pgflow.agent_offers WHERE agent_id = :'agent2'), 1, 'a second agent offers');
SELECT pgflow.reap_crashed_runs('1 minute', now() + interval '2 minutes');
SELECT is((SELECT count(*)::int FROM pgflow.agent_offers), 0, 'an agent the reaper takes offline offers nothing');

-- bad input: one clear error, nothing changed
SELECT throws_ok(format('SELECT * FROM pgflow.claim_and_offer(%L, NULL, 0, ''{}'', ''10 seconds'')', :'agent2'), '22023', NULL, 'p_max 0 is refused');
SELECT throws_ok(format('SELECT * FROM pgflow.claim_and_offer(%L, NULL, 1, ''{}'', ''0.5 seconds'')', :'agent2'), '22023', NULL, 'an offer counting for under a second is refused');
SELECT throws_ok(format('SELECT * FROM pgflow.claim_and_offer(%L, NULL, 1, ''{}'', ''2 hours'')', :'agent2'), '22023', NULL, 'an offer counting for over an hour is refused');
SELECT throws_ok(format('SELECT * FROM pgflow.claim_and_offer(%L, NULL, 1, (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, 10001)), NULL)', :'agent2'),
                 '22023', NULL, 'more than 10,000 seen runs are refused');
SELECT throws_ok($$SELECT * FROM pgflow.claim_and_offer(gen_random_uuid(), NULL, 1, '{}', '10 seconds')$$, 'P0002', NULL, 'an unknown agent is refused');
SELECT throws_ok($$SELECT pgflow.agent_listening(gen_random_uuid())$$, 'P0002', NULL, 'agent_listening of an unknown agent is refused');

SELECT * FROM finish();
ROLLBACK;
