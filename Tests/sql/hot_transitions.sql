-- 0024: HOT transitions of flow_runs. The side tables that replace the four state-keyed indexes stay exact
-- after every kind of transition (active_runs: the runs in PENDING, RUNNING, PAUSED or CANCELLING with their
-- agent; failed_runs: the runs FAILED, CRASHED or CANCELLED; reopened_endings: the terminal state rows that
-- no longer end their run), and a claim and a completion of a batch are HOT updates of flow_runs.
BEGIN;
SELECT plan(31);

-- what flow_runs and flow_run_states say against what the side tables hold: NULL when they agree
CREATE FUNCTION pg_temp.sides_differ() RETURNS text LANGUAGE sql AS $$
    SELECT nullif(concat_ws('; ',
        (SELECT 'active_runs: ' || count(*) || ' rows differ' FROM (
            (SELECT flow_run_id, agent_id, state_type, created_at FROM pgflow.active_runs
             EXCEPT ALL
             SELECT id, agent_id, state_type, created_at FROM pgflow.flow_runs WHERE state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING'))
            UNION ALL
            (SELECT id, agent_id, state_type, created_at FROM pgflow.flow_runs WHERE state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
             EXCEPT ALL
             SELECT flow_run_id, agent_id, state_type, created_at FROM pgflow.active_runs)) x HAVING count(*) > 0),
        (SELECT 'failed_runs: ' || count(*) || ' rows differ' FROM (
            (SELECT flow_run_id, state_name, created_at FROM pgflow.failed_runs
             EXCEPT ALL
             SELECT id, state_name, created_at FROM pgflow.flow_runs WHERE state_type IN ('FAILED', 'CRASHED', 'CANCELLED'))
            UNION ALL
            (SELECT id, state_name, created_at FROM pgflow.flow_runs WHERE state_type IN ('FAILED', 'CRASHED', 'CANCELLED')
             EXCEPT ALL
             SELECT flow_run_id, state_name, created_at FROM pgflow.failed_runs)) x HAVING count(*) > 0),
        -- every terminal state row either is its run's current ending (the last one of a run in a terminal
        -- state) or is listed as reopened, never both
        (SELECT 'endings: ' || count(*) || ' terminal state rows miscounted' FROM pgflow.flow_run_states s
           JOIN pgflow.flow_runs r ON r.id = s.flow_run_id
          WHERE s.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
            AND (r.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND r.state_type = s.state_type AND r.state_name = s.state_name
                 AND s.id = (SELECT max(l.id) FROM pgflow.flow_run_states l WHERE l.flow_run_id = s.flow_run_id
                                AND l.state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')))
              = EXISTS (SELECT 1 FROM pgflow.reopened_endings o WHERE o.state_id = s.id AND o.flow_run_id = s.flow_run_id)
         HAVING count(*) > 0),
        (SELECT 'side rows of deleted runs: ' || count(*) FROM (
            SELECT flow_run_id FROM pgflow.active_runs UNION ALL SELECT flow_run_id FROM pgflow.failed_runs
            UNION ALL SELECT flow_run_id FROM pgflow.reopened_endings) x
          WHERE NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = x.flow_run_id) HAVING count(*) > 0)), '')
$$;

-- pushes need an agent whose LISTEN session holds its lock: a table stands for it (as in push.sql)
CREATE TEMP TABLE listening (agent uuid);
GRANT SELECT ON listening TO PUBLIC;
CREATE OR REPLACE FUNCTION pgflow._agent_listener_held(p_agent_id uuid) RETURNS boolean
LANGUAGE sql AS $$ SELECT EXISTS (SELECT 1 FROM listening WHERE agent = p_agent_id) $$;

SELECT pgflow.create_work_queue('hq');
SELECT pgflow.create_deployment('hf', 'plain', './h.sh', p_work_queue => 'hq');
SELECT pgflow.create_deployment('hf', 'retry', './h.sh', p_work_queue => 'hq', p_retries => 1);
SELECT pgflow.register_agent('ha', ARRAY['hq']) AS agent \gset
SELECT pgflow.register_agent('hb', ARRAY['hq']) AS agent_b \gset

SELECT count(*) FROM pgflow.run_deployments('hf/plain', array_fill('{}'::jsonb, ARRAY[20]));
SELECT is(pg_temp.sides_differ(), NULL, 'runs enqueued (Scheduled): nothing in progress');

-- the fast claim (Running with the claim's own statement)
CREATE TEMP TABLE fast AS SELECT flow_run_id AS id FROM pgflow.claim_flow_runs(:'agent', NULL, 6, true);
SELECT is((SELECT count(*)::int FROM pgflow.active_runs a JOIN fast f ON f.id = a.flow_run_id
            WHERE a.agent_id = :'agent' AND a.state_type = 'RUNNING'), 6, 'the fast claim: its 6 runs are active, of its agent');
SELECT is(pg_temp.sides_differ(), NULL, '... and the side tables are exact');

-- the general claim without a start (Pending), then Running by a transition
CREATE TEMP TABLE general AS SELECT flow_run_id AS id FROM pgflow.claim_flow_runs(:'agent_b', NULL, 3, false);
SELECT is((SELECT count(*)::int FROM pgflow.active_runs a JOIN general g ON g.id = a.flow_run_id
            WHERE a.agent_id = :'agent_b' AND a.state_type = 'PENDING'), 3, 'the general claim: 3 runs Pending of agent hb');
SELECT pgflow.set_flow_run_state(id, 'RUNNING', p_agent_id => :'agent_b') FROM general;
SELECT is(pg_temp.sides_differ(), NULL, 'Pending to Running by the transition: exact');

-- the completion (the fast path: every proposal Completed, with the agent)
SELECT count(*) FROM pgflow.set_flow_run_states(ARRAY(SELECT id FROM fast ORDER BY id LIMIT 3), ARRAY['COMPLETED', 'COMPLETED', 'COMPLETED'],
                                                p_agent_id => :'agent');
SELECT is((SELECT count(*)::int FROM pgflow.active_runs a JOIN fast f ON f.id = a.flow_run_id), 3, 'the completion: 3 runs left active_runs');
SELECT is(pg_temp.sides_differ(), NULL, '... exact');

-- failures: one run with a retry left (AwaitingRetry, Scheduled), one without (Failed)
SELECT pgflow.run_deployment('hf/retry') AS retried \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 20, true);
SELECT is((SELECT state_name FROM pgflow.set_flow_run_state(:'retried', 'FAILED', p_agent_id => :'agent')), 'AwaitingRetry', 'a failure with a retry left waits');
SELECT pgflow.set_flow_run_state((SELECT id FROM fast ORDER BY id OFFSET 3 LIMIT 1), 'FAILED', p_agent_id => :'agent');
SELECT is(pg_temp.sides_differ(), NULL, 'failures (AwaitingRetry, Failed): exact');

-- pause and its expiry (TimedOut), suspend, resume
SELECT pgflow.set_flow_run_state((SELECT id FROM fast ORDER BY id OFFSET 4 LIMIT 1), 'PAUSED', p_pause_expires_at => now() - interval '1 s',
                                 p_agent_id => :'agent');
SELECT is(pg_temp.sides_differ(), NULL, 'paused: exact');
SELECT is(pgflow.expire_paused_runs(), 1, 'the expired pause times out');
SELECT is(pg_temp.sides_differ(), NULL, '... exact (TimedOut is a failed run)');

-- cancellation: a running run (Cancelling, then Cancelled by its agent) and a waiting one (Cancelled at once)
SELECT pgflow.cancel_flow_run((SELECT id FROM fast ORDER BY id OFFSET 5 LIMIT 1));
SELECT is(ARRAY(SELECT h FROM pgflow.heartbeat(:'agent') h), ARRAY(SELECT id FROM fast ORDER BY id OFFSET 5 LIMIT 1),
          'the heartbeat names the agent''s Cancelling run');
SELECT pgflow.set_flow_run_state((SELECT id FROM fast ORDER BY id OFFSET 5 LIMIT 1), 'CANCELLED', p_agent_id => :'agent');
SELECT pgflow.cancel_flow_run(:'retried');
SELECT is(pg_temp.sides_differ(), NULL, 'cancellations: exact');

-- a finished run retried by request: its ending no longer counts, it is no longer failed
SELECT pgflow.retry_flow_run((SELECT id FROM fast ORDER BY id OFFSET 3 LIMIT 1));
SELECT is(pg_temp.sides_differ(), NULL, 'a retry by request: exact');
-- and finished again: run_state_counts counts the run once
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 20, true);
SELECT pgflow.set_flow_run_state((SELECT id FROM fast ORDER BY id OFFSET 3 LIMIT 1), 'COMPLETED', p_agent_id => :'agent');
SELECT is((SELECT sum(runs)::int FROM pgflow.run_state_counts(now() - interval '1 hour') WHERE state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')),
          (SELECT count(*)::int FROM pgflow.flow_runs WHERE end_time >= now() - interval '1 hour'),
          'run_state_counts: a run that ended twice counts once');

-- ad-hoc runs (Pending; Running through the transition)
SELECT pgflow.create_flow_run('hf') AS adhoc \gset
SELECT pgflow.create_flow_run('hf', p_state_type => 'RUNNING', p_agent_id => :'agent_b');
SELECT is(pg_temp.sides_differ(), NULL, 'ad-hoc runs: exact');

-- a push (inserted Running for the offering agent)
INSERT INTO listening VALUES (:'agent');
SELECT count(*) FROM pgflow.claim_and_offer(:'agent', NULL, 5, '{}', '10 seconds');
SELECT pgflow.run_deployment('hf/plain') AS pushed \gset
SELECT is((SELECT agent_id FROM pgflow.active_runs WHERE flow_run_id = :'pushed'), :'agent'::uuid, 'a pushed run is active, of its agent');
SELECT is(pg_temp.sides_differ(), NULL, '... exact');

-- the reaper: agent hb stops heartbeating (its runs crash)
UPDATE pgflow.agents SET last_heartbeat_at = now() - interval '1 hour' WHERE id = :'agent_b';
SELECT cmp_ok(pgflow.reap_crashed_runs(interval '90 seconds'), '>=', 4, 'the reaper crashes the silent agent''s runs');
SELECT is(pg_temp.sides_differ(), NULL, '... exact');

-- deregistration ends the agent's runs
SELECT pgflow.deregister_agent(:'agent');
SELECT is((SELECT count(*)::int FROM pgflow.active_runs WHERE agent_id IS NOT NULL), 0, 'no run of an agent left in progress');
SELECT is(pg_temp.sides_differ(), NULL, 'deregistration: exact');

-- deletions: a run by id, then retention's residue (ended runs deleted row by row)
SELECT pgflow.delete_flow_run((SELECT id FROM fast ORDER BY id OFFSET 4 LIMIT 1));
SELECT cmp_ok(pgflow.delete_old_runs(interval '0', 1000, now() + interval '8 days'), '>', 0, 'retention deletes the ended runs');
SELECT is(pg_temp.sides_differ(), NULL, 'deletions: exact');

-- HOT: a claim of a batch and a completion of a batch rewrite their runs in place (no index entry), on
-- pages filled as a drain fills them (fillfactor 40 leaves each row room for its next version)
SELECT pgflow.register_agent('hc', ARRAY['hq']) AS agent_c \gset
SELECT count(*) FROM pgflow.run_deployments('hf/plain', array_fill('{}'::jsonb, ARRAY[200]));
SELECT is((SELECT count(DISTINCT tableoid)::int FROM pgflow.flow_runs WHERE state_type = 'SCHEDULED'), 1, 'the waiting runs are in one partition');
SELECT (SELECT tableoid FROM pgflow.flow_runs WHERE state_type = 'SCHEDULED' LIMIT 1) AS part,
       pg_stat_get_xact_tuples_hot_updated((SELECT tableoid FROM pgflow.flow_runs WHERE state_type = 'SCHEDULED' LIMIT 1)) AS hot0 \gset
CREATE TEMP TABLE batch AS SELECT flow_run_id AS id FROM pgflow.claim_flow_runs(:'agent_c', NULL, 200, true);
SELECT cmp_ok(pg_stat_get_xact_tuples_hot_updated(:'part') - :hot0, '>=', 180::bigint,
              'a claim of 200 runs: at least 90 % of its updates are HOT');
-- the completion of pushed runs (inserted Running: one version each, as a drain by pushes leaves them)
INSERT INTO listening VALUES (:'agent_c');
SELECT count(*) FROM pgflow.claim_and_offer(:'agent_c', NULL, 200, ARRAY(SELECT id FROM batch), '10 seconds');
CREATE TEMP TABLE pushed AS SELECT pgflow.run_deployment('hf/plain') AS id FROM generate_series(1, 150);
SELECT pg_stat_get_xact_tuples_hot_updated(:'part') AS hot1 \gset
SELECT count(*) FROM pgflow.set_flow_run_states(ARRAY(SELECT id FROM pushed ORDER BY id), array_fill('COMPLETED'::text, ARRAY[150]),
                                                p_agent_id => :'agent_c');
SELECT cmp_ok(pg_stat_get_xact_tuples_hot_updated(:'part') - :hot1, '>=', 135::bigint,
              'a completion of 150 runs: at least 90 % of its updates are HOT');
SELECT is(pg_temp.sides_differ(), NULL, 'after the batches: exact');

-- every partition of flow_runs has fillfactor 40, and a week made later too (it copies the default partition's)
SELECT ok(pgflow._ensure_history_week((now() + interval '70 days')::date), 'a week 10 weeks ahead is made');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_partition_tree('pgflow.flow_runs') t JOIN pg_class c ON c.oid = t.relid
            WHERE t.isleaf AND NOT coalesce(c.reloptions @> ARRAY['fillfactor=40'], false)), NULL,
          'every partition of flow_runs, the new week''s too, has fillfactor 40');

SELECT * FROM finish();
ROLLBACK;
