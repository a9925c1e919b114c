-- 0004, what clients read and change without tables: NOTIFY on states and logs (one per statement),
-- state filters in any case (unknown ones rejected), the flow run listing, states and logs after an
-- id, schedule pause/resume, update_deployment. pgflow.notify is swapped for a recorder (see notify.sql).
BEGIN;
SELECT plan(31);

CREATE TEMP TABLE sent (channel text, payload text, n serial);
CREATE OR REPLACE FUNCTION pgflow.notify(p_channel text, p_payload text) RETURNS void
LANGUAGE sql AS $$ INSERT INTO sent (channel, payload) VALUES (p_channel, p_payload) $$;

SELECT pgflow.create_deployment('c', 'd', './c.sh', p_tags => ARRAY['nightly']);
SELECT pgflow.register_agent('agent-9', ARRAY['default']) AS agent \gset

-- 0027: the followers' channels only while a watcher holds a lease (a NOTIFY's commit takes a cluster-wide lock)
DELETE FROM pgflow.stream_listeners;
DELETE FROM sent;
SAVEPOINT unwatched;  -- (the run is rolled back: the tests below count and order the runs)
SELECT pgflow.run_deployment('c/d', p_flow_run_name => 'unwatched') AS unwatched \gset
SELECT pgflow.write_log(:'unwatched', 20, 'nobody follows', 'stdout');
SELECT count(*) FILTER (WHERE channel IN ('pgflow_flow_run_states', 'pgflow_logs')) AS followers_sent,
       coalesce(string_agg(channel, ','), '') AS channels_sent FROM sent \gset
ROLLBACK TO SAVEPOINT unwatched;
SELECT is(:followers_sent::int, 0, 'no watcher''s lease: a new run and a log line notify no follower channel');
SELECT is(:'channels_sent'::text, 'pgflow_runs', 'the agents'' channel is still sent');
SELECT throws_ok($$SELECT pgflow.renew_stream_listener(gen_random_uuid(), interval '2 days')$$, '22023',
                 'pgflow: a watcher''s lease lasts 1 second to 1 day, not 2 days', 'a lease longer than a day is refused');
SELECT throws_ok($$SELECT pgflow.renew_stream_listener(gen_random_uuid(), interval '-1 minute')$$, '22023', NULL,
                 'a negative lease is refused');
SELECT is((SELECT count(*)::int FROM pgflow.stream_listeners), 0, 'and neither left a lease');
SELECT pgflow.renew_stream_listener('00000000-0000-0000-0000-0000000000c1', interval '1 minute');
SET LOCAL ROLE pgflow_reader;
SELECT lives_ok($$SELECT pgflow.renew_stream_listener('00000000-0000-0000-0000-0000000000c2', interval '1 minute')$$,
                'a reader (a CLI follower) may take a lease');
SELECT lives_ok($$SELECT pgflow.drop_stream_listener('00000000-0000-0000-0000-0000000000c2')$$, 'and give it back');
RESET ROLE;
DELETE FROM sent;
SELECT pgflow.run_deployment('c/d', p_flow_run_name => 'first') AS run \gset
SELECT ok(EXISTS (SELECT 1 FROM sent WHERE channel = 'pgflow_flow_run_states'), 'with a lease: a new run notifies pgflow_flow_run_states');
DELETE FROM sent;
SELECT count(*) FROM pgflow.run_deployments('c/d', array_fill('{}'::jsonb, ARRAY[1000]), now() + interval '1 day');
SELECT is((SELECT count(*)::int FROM sent WHERE channel = 'pgflow_flow_run_states'), 1, '1,000 runs in one statement: one notification');
DELETE FROM sent;
SELECT pgflow.write_log(:'run', 40, 'oops', 'stdout');
SELECT results_eq('SELECT channel, payload FROM sent', $$VALUES ('pgflow_logs', '')$$, 'a log line notifies pgflow_logs');

SELECT is(pgflow.state_filter('timedout'), 'TimedOut', 'state names in any case');
SELECT is(pgflow.state_filter('Failed'), 'FAILED', 'a type wins over the name it shares');
SELECT is(pgflow.state_filter('awaiting-retry'), 'AwaitingRetry', 'separators ignored');
SELECT is(pgflow.state_filter(NULL), NULL, 'NULL is no filter');
SELECT throws_ok($$SELECT pgflow.state_filter('bogus')$$, '22023', 'pgflow: unknown state ''bogus''', 'an unknown state is an error, not an empty list');

CREATE TEMP TABLE ids AS SELECT :'run'::uuid AS run;
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 1, true);
SELECT pgflow.set_flow_run_state(:'run', 'FAILED', 'TimedOut', p_agent_id => :'agent');
SELECT results_eq($$SELECT name FROM pgflow.list_flow_runs()$$, $$VALUES ('first')$$, 'recent activity: not the 1,000 runs due tomorrow');
SELECT is((SELECT count(*)::int FROM pgflow.list_flow_runs(p_upcoming => true, p_limit => 5000)), 1000, 'upcoming: the future runs');
SELECT results_eq($$SELECT name FROM pgflow.list_flow_runs('timedout')$$, $$VALUES ('first')$$, 'state filter');
SELECT is((SELECT count(*)::int FROM pgflow.list_flow_runs(p_tag => 'nightly', p_upcoming => true, p_limit => 5)), 5, 'tag filter and limit');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_flow => 'nope')$$, 'P0002', 'pgflow: unknown flow ''nope''', 'unknown flow');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_sort => 'color')$$, '22023', 'pgflow: unknown sort ''color''', 'unknown sort');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_limit => -1)$$, '22023', NULL, 'a negative limit');
SELECT is((SELECT agent FROM pgflow.flow_run_history WHERE id = :'run'), 'agent-9', 'the history names the agent');

SELECT results_eq($$SELECT state_name FROM pgflow.flow_run_states_after((SELECT run FROM ids), 0)$$,
                  $$VALUES ('Scheduled'), ('Pending'), ('Running'), ('TimedOut')$$, 'every state in order');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_states_after(:'run', (SELECT min(id) FROM pgflow.flow_run_states_after(:'run', 0)))), 3,
          'after an id: only the later ones');
SELECT results_eq($$SELECT level, message FROM pgflow.flow_run_logs((SELECT run FROM ids))$$, $$VALUES ('ERROR', 'oops')$$, 'log lines with their level name');
SELECT throws_ok($$SELECT * FROM pgflow.flow_run_states_after(gen_random_uuid())$$, 'P0002', NULL, 'an unknown run');

SELECT pgflow.create_deployment_schedule('c/d', 'cron', '* * * * *') AS schedule \gset
SELECT pgflow.schedule_flow_runs(:'schedule', ARRAY[now() + interval '1 hour', now() + interval '2 hours']);
SELECT pgflow.set_deployment_schedule_active(:'schedule', false);
SELECT is((SELECT count(*)::int FROM pgflow.flow_runs WHERE deployment_schedule_id = :'schedule'), 0, 'a paused schedule loses its future runs');
SELECT throws_ok($$SELECT pgflow.set_deployment_schedule_active(gen_random_uuid(), true)$$, 'P0002', NULL, 'an unknown schedule');

SELECT pgflow.update_deployment('c/d', '{"timeout_seconds": 90, "concurrency_limit": 2}');
SELECT results_eq($$SELECT timeout_seconds, concurrency_limit, tags FROM pgflow.deployment_list$$,
                  $$VALUES (90::float8, 2, ARRAY['nightly'])$$, 'update_deployment changes what it names and keeps the rest');
SELECT throws_ok($$SELECT pgflow.update_deployment('c/d', '{"concurrency_limit": -1}')$$, '22023', NULL, 'validated like create_deployment');

SELECT * FROM finish();
ROLLBACK;
