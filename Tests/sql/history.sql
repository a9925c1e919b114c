-- 0011, the listings by route: pgflow.flow_run_page and pgflow.list_flow_runs return, for every filter
-- and route (created order, deployment, flow with and without deployments, work queue, failed, active,
-- waiting, tag, state names, time range), exactly the rows and the order of the plain query over
-- flow_runs; keyset pages neither overlap nor skip; the CLI's listing keeps its semantics with created
-- order and refuses the orders that sorted the whole history.
BEGIN;
SELECT plan(38);

SELECT pgflow.create_work_queue('q2');
SELECT pgflow.create_deployment('a', 'd1', './a.sh', p_tags => ARRAY['nightly']);
SELECT pgflow.create_deployment('a', 'd2', './a.sh', p_work_queue => 'q2');
SELECT pgflow.create_deployment('b', 'd3', './b.sh');

-- 600 finished runs, created in groups of three at the same instant (the id breaks ties): deployment
-- d1, d2, d3 or none (flow a, ad hoc) in turn; 1 in 7 Failed, 1 in 11 TimedOut, 1 in 13 Crashed, 1 in 17
-- Cancelled, 1 in 19 Cached; tags x on every fifth, y on 1 in 50; 1 in 23 in work queue q2 whatever the
-- deployment.
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, tags, run_count, expected_start_time,
                              start_time, end_time, state_type, state_name, state_timestamp, created_at)
SELECT gen_random_uuid(), 'old-' || k, d.flow_id, CASE WHEN k % 4 = 3 THEN NULL ELSE d.id END,
       CASE WHEN k % 23 = 0 THEN (SELECT id FROM pgflow.work_queues WHERE name = 'q2') ELSE d.work_queue_id END,
       ARRAY_REMOVE(ARRAY[CASE WHEN k % 5 = 0 THEN 'x' END, CASE WHEN k % 50 = 1 THEN 'y' END], NULL), 1,
       t, t, t + interval '1 s', split_part(st, ':', 1)::pgflow.state_type, split_part(st, ':', 2), t + interval '1 s', t
  FROM generate_series(1, 600) k
 CROSS JOIN LATERAL (SELECT now() - interval '1 day' + (k / 3) * interval '1 minute' AS t,
                            CASE WHEN k % 7 = 0 THEN 'FAILED:Failed' WHEN k % 11 = 0 THEN 'FAILED:TimedOut'
                                 WHEN k % 13 = 0 THEN 'CRASHED:Crashed' WHEN k % 17 = 0 THEN 'CANCELLED:Cancelled'
                                 WHEN k % 19 = 0 THEN 'COMPLETED:Cached' ELSE 'COMPLETED:Completed' END AS st) x
  JOIN pgflow.deployments d ON d.name = CASE k % 4 WHEN 0 THEN 'd1' WHEN 1 THEN 'd2' WHEN 2 THEN 'd3' ELSE 'd1' END;
-- (written straight into flow_runs: their side rows too, as gen-history.sh does; 0024)
SELECT pgflow._fill_run_sides();
-- live runs: 12 due now (4 of them claimed and running), 5 due tomorrow
SELECT count(*) FROM pgflow.run_deployments('a/d1', array_fill('{}'::jsonb, ARRAY[8]));
SELECT count(*) FROM pgflow.run_deployments('b/d3', array_fill('{}'::jsonb, ARRAY[4]));
SELECT count(*) FROM pgflow.run_deployments('a/d2', array_fill('{}'::jsonb, ARRAY[5]), now() + interval '1 day');
SELECT pgflow.register_agent('agent-h', ARRAY['default']) AS agent \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 4, true);

-- the reference: the plain query, newest created first
CREATE TEMP TABLE cases (n serial, label text, args text, filter text);
INSERT INTO cases (label, args, filter) VALUES
  ('no filter',              '',                                     'true'),
  ('FAILED',                 'p_state_type => ''FAILED''',           $$state_type = 'FAILED'$$),
  ('CRASHED',                'p_state_type => ''crashed''',          $$state_type = 'CRASHED'$$),
  ('CANCELLED',              'p_state_type => ''CANCELLED''',        $$state_type = 'CANCELLED'$$),
  ('COMPLETED',              'p_state_type => ''COMPLETED''',        $$state_type = 'COMPLETED'$$),
  ('RUNNING',                'p_state_type => ''RUNNING''',          $$state_type = 'RUNNING'$$),
  ('SCHEDULED',              'p_state_type => ''SCHEDULED''',        $$state_type = 'SCHEDULED'$$),
  ('name TimedOut',          'p_state_name => ''TimedOut''',         $$state_name = 'TimedOut'$$),
  ('name Cached',            'p_state_name => ''Cached''',           $$state_name = 'Cached'$$),
  ('type and its name',      'p_state_type => ''FAILED'', p_state_name => ''Failed''', $$state_name = 'Failed'$$),
  ('type and another name',  'p_state_type => ''FAILED'', p_state_name => ''Cached''', 'false'),
  ('no such name',           'p_state_name => ''Bogus''',            'false'),
  ('deployment a/d1',        'p_deployment => ''a/d1''',             $$deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'd1')$$),
  ('deployment of another flow', 'p_flow => ''b'', p_deployment => ''a/d1''', 'false'),
  ('flow a (with ad-hoc runs)', 'p_flow => ''a''',                   $$flow_id = (SELECT id FROM pgflow.flows WHERE name = 'a')$$),
  ('flow b',                 'p_flow => ''b''',                      $$flow_id = (SELECT id FROM pgflow.flows WHERE name = 'b')$$),
  ('work queue q2',          'p_work_queue => ''q2''',               $$work_queue_id = (SELECT id FROM pgflow.work_queues WHERE name = 'q2')$$),
  ('tag x',                  'p_tag => ''x''',                       $$tags @> '{x}'$$),
  ('tag y',                  'p_tag => ''y''',                       $$tags @> '{y}'$$),
  ('time range',             $$p_since => now() - interval '23 hours', p_until => now() - interval '22 hours'$$,
                             $$created_at >= now() - interval '23 hours' AND created_at < now() - interval '22 hours'$$),
  ('flow a and FAILED',      'p_flow => ''a'', p_state_type => ''FAILED''', $$flow_id = (SELECT id FROM pgflow.flows WHERE name = 'a') AND state_type = 'FAILED'$$),
  ('tag and time range',     $$p_tag => 'x', p_since => now() - interval '23 hours', p_until => now() - interval '22 hours'$$,
                             $$tags @> '{x}' AND created_at >= now() - interval '23 hours' AND created_at < now() - interval '22 hours'$$),
  ('tag and COMPLETED',      'p_tag => ''x'', p_state_type => ''COMPLETED''', $$tags @> '{x}' AND state_type = 'COMPLETED'$$),
  ('deployment and tag',     'p_deployment => ''a/d1'', p_tag => ''x''', $$deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'd1') AND tags @> '{x}'$$),
  ('queue and CANCELLED',    'p_work_queue => ''q2'', p_state_type => ''CANCELLED''', $$work_queue_id = (SELECT id FROM pgflow.work_queues WHERE name = 'q2') AND state_type = 'CANCELLED'$$),
  ('RUNNING of deployment',  'p_state_type => ''RUNNING'', p_deployment => ''a/d1''', $$state_type = 'RUNNING' AND deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'd1')$$);

-- every case: the same rows in the same order as the reference, in one page of up to 1000
CREATE FUNCTION pg_temp.same_rows(p_args text, p_filter text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE got uuid[]; want uuid[];
BEGIN
    EXECUTE format('SELECT coalesce(array_agg(id), ''{}'') FROM pgflow.flow_run_page(%s)',
                   concat_ws(', ', nullif(p_args, ''), 'p_limit => 1000')) INTO got;
    EXECUTE format('SELECT coalesce(array_agg(id ORDER BY created_at DESC, id DESC), ''{}'') FROM pgflow.flow_runs WHERE %s', p_filter) INTO want;
    RETURN got = want;
END $$;
-- every case paged by 7: the pages joined are the reference (no overlap, no gap), each page at most 7
CREATE FUNCTION pg_temp.same_pages(p_args text, p_filter text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE got uuid[] := '{}'; want uuid[]; page uuid[]; v_cursor text; ok boolean := true;
BEGIN
    LOOP
        EXECUTE format('SELECT coalesce(array_agg(id), ''{}''), (array_agg(cursor))[count(*)] FROM pgflow.flow_run_page(%s)',
                       concat_ws(', ', nullif(p_args, ''), 'p_limit => 7', 'p_cursor => $1')) INTO page, v_cursor USING v_cursor;
        ok := ok AND cardinality(page) <= 7;
        got := got || page;
        EXIT WHEN cardinality(page) < 7;
    END LOOP;
    EXECUTE format('SELECT coalesce(array_agg(id ORDER BY created_at DESC, id DESC), ''{}'') FROM pgflow.flow_runs WHERE %s', p_filter) INTO want;
    RETURN ok AND got = want;
END $$;

SELECT is(array_agg(label ORDER BY n) FILTER (WHERE NOT pg_temp.same_rows(args, filter)), NULL,
          'flow_run_page: every filter returns the reference rows in the reference order') FROM cases;
SELECT is(array_agg(label ORDER BY n) FILTER (WHERE NOT pg_temp.same_pages(args, filter)), NULL,
          'flow_run_page: pages of 7 joined are the reference (no overlap, no gap)') FROM cases;
-- the cases are not vacuous
SELECT ok((SELECT count(*) FROM pgflow.flow_run_page(p_state_type => 'RUNNING')) = 4, 'the running runs');
SELECT ok((SELECT count(*) FROM pgflow.flow_run_page(p_state_type => 'SCHEDULED')) = 13, 'the waiting runs');
SELECT ok((SELECT count(*) FROM pgflow.flow_run_page(p_state_name => 'TimedOut', p_limit => 1000)) BETWEEN 20 AND 60, 'TimedOut runs');
SELECT ok((SELECT count(*) FROM pgflow.flow_run_page(p_flow => 'a', p_limit => 1000) WHERE deployment IS NULL) = 150, 'ad-hoc runs of flow a');
SELECT ok((SELECT count(*) FROM pgflow.flow_run_page(p_work_queue => 'q2', p_limit => 1000)) > 150, 'work queue q2');
SELECT ok((SELECT count(*) FROM pgflow.flow_run_page(p_tag => 'y', p_limit => 1000)) = 12, 'tag y');
SELECT ok((SELECT count(DISTINCT created_at) < count(*) FROM pgflow.flow_run_page(p_limit => 1000)), 'ties in created_at exist');
-- one case by hand: a tie broken by id across a page boundary
SELECT results_eq(
    $$SELECT id FROM pgflow.flow_run_page(p_limit => 2, p_cursor => (SELECT cursor FROM pgflow.flow_run_page(p_limit => 40) OFFSET 38 LIMIT 1))$$,
    $$SELECT id FROM pgflow.flow_runs ORDER BY created_at DESC, id DESC OFFSET 39 LIMIT 2$$, 'the page after a cursor');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_limit => 1000)), 617, 'every run');
SELECT throws_ok($$SELECT * FROM pgflow.flow_run_page(p_state_type => 'DONE')$$, '22023', NULL, 'an invalid state type');
SELECT throws_ok($$SELECT * FROM pgflow.flow_run_page(p_cursor => 'x')$$, '22023', NULL, 'an invalid cursor');
SELECT throws_ok($$SELECT * FROM pgflow.flow_run_page(p_flow => 'nope')$$, 'P0002', NULL, 'an unknown flow');
SELECT throws_ok($$SELECT * FROM pgflow.flow_run_page(p_deployment => 'a/nope')$$, 'P0002', NULL, 'an unknown deployment');
SELECT throws_ok($$SELECT * FROM pgflow.flow_run_page(p_work_queue => 'nope')$$, 'P0002', NULL, 'an unknown work queue');

-- the CLI's listing: past runs newest created first, future ones only by state or --upcoming
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs(p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE start_time IS NOT NULL OR expected_start_time <= now()
                     ORDER BY created_at DESC, id DESC$$, 'list_flow_runs: past runs, newest created first');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs(p_limit => 5)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE start_time IS NOT NULL OR expected_start_time <= now()
                     ORDER BY created_at DESC, id DESC LIMIT 5$$, 'list_flow_runs: the limit');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs('scheduled', p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE state_type = 'SCHEDULED' ORDER BY created_at DESC, id DESC$$,
                  'list_flow_runs: a state shows the future runs too');
SELECT is((SELECT count(*)::int FROM pgflow.list_flow_runs('scheduled', p_limit => 1000)), 13, 'the 13 waiting runs');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs('timedout', p_flow => 'a', p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE state_name = 'TimedOut' AND flow_id = (SELECT id FROM pgflow.flows WHERE name = 'a')
                     ORDER BY created_at DESC, id DESC$$, 'list_flow_runs: a state name and a flow');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs('failed', p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE state_type = 'FAILED' ORDER BY created_at DESC, id DESC$$,
                  'list_flow_runs: a state type');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs(p_deployment => 'b/d3', p_tag => NULL, p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'd3')
                       AND (start_time IS NOT NULL OR expected_start_time <= now()) ORDER BY created_at DESC, id DESC$$,
                  'list_flow_runs: a deployment');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs(p_tag => 'y', p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE tags @> '{y}' ORDER BY created_at DESC, id DESC$$, 'list_flow_runs: a tag');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs(p_since => now() - interval '2 hours', p_limit => 1000)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE created_at >= now() - interval '2 hours'
                       AND (start_time IS NOT NULL OR expected_start_time <= now()) ORDER BY created_at DESC, id DESC$$,
                  'list_flow_runs: created since');
SELECT results_eq($$SELECT id FROM pgflow.list_flow_runs(p_upcoming => true)$$,
                  $$SELECT id FROM pgflow.flow_runs WHERE state_type = 'SCHEDULED' AND expected_start_time > now()
                     ORDER BY expected_start_time, id$$, 'list_flow_runs: upcoming, soonest first');
SELECT is((SELECT count(*)::int FROM pgflow.list_flow_runs(p_upcoming => true)), 5, 'the 5 runs due tomorrow');
SELECT is((SELECT count(*)::int FROM pgflow.list_flow_runs(p_upcoming => true, p_sort => 'created')), 5, 'upcoming sorted by creation');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_sort => 'activity')$$, '22023', 'pgflow: unknown sort ''activity''',
                 'the activity order (a sort of the whole history) is gone');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_sort => 'name')$$, '22023', NULL, 'so is the name order');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_sort => 'scheduled')$$, '22023', NULL,
                 'the scheduled order is for upcoming runs only');
SELECT throws_ok($$SELECT * FROM pgflow.list_flow_runs(p_deployment => 'a/nope')$$, 'P0002', NULL, 'list_flow_runs: an unknown deployment');

-- the routes read indexes (plans, not timings): the failed runs, a deployment and a work queue are read
-- in order from their index, never by sorting the history
CREATE FUNCTION pg_temp.uses(p_sql text, p_index text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_plan text;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || p_sql INTO v_plan;
    -- (since 0019 flow_runs is partitioned: the plan names the partitions' copies of the index)
    RETURN v_plan NOT LIKE '%"Node Type": "Sort"%' AND EXISTS (
        SELECT 1 FROM regexp_matches(v_plan, '"Index Name": "([^"]+)"', 'g') m
          JOIN pg_class c ON c.relname = m[1] AND c.relnamespace = 'pgflow'::regnamespace
          LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
         WHERE coalesce(p.relname, c.relname) = p_index);
END $$;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_sort = off;
-- (0024: the failed runs from failed_runs, newest first, as _flow_run_keys reads them)
SELECT ok(pg_temp.uses($$SELECT r.id FROM pgflow.failed_runs x JOIN pgflow.flow_runs r ON r.id = x.flow_run_id
                          WHERE x.state_name = 'TimedOut' AND r.state_type IN ('FAILED', 'CRASHED', 'CANCELLED') AND r.state_name = 'TimedOut'
                          ORDER BY x.created_at DESC, x.flow_run_id DESC LIMIT 50$$, 'failed_runs_listing'), 'TimedOut reads failed_runs_listing');
SELECT ok(pg_temp.uses($$SELECT * FROM pgflow.flow_runs r WHERE r.deployment_id = (SELECT id FROM pgflow.deployments WHERE name = 'd1')
                          AND r.flow_id = (SELECT id FROM pgflow.flows WHERE name = 'a') ORDER BY r.created_at DESC, r.id DESC LIMIT 50$$,
                       'flow_runs_deployment'), 'a deployment reads flow_runs_deployment');
SELECT ok(pg_temp.uses($$SELECT * FROM pgflow.flow_runs r WHERE r.work_queue_id = (SELECT id FROM pgflow.work_queues WHERE name = 'q2')
                          ORDER BY r.created_at DESC, r.id DESC LIMIT 50$$, 'flow_runs_queue'), 'a work queue reads flow_runs_queue');

-- 0016: a run's tags are rows of flow_run_tags from its creation to its deletion
SELECT is((SELECT count(*) FROM pgflow.flow_run_tags), (SELECT sum(cardinality(tags)) FROM pgflow.flow_runs),
          'flow_run_tags: one row per tag of every run');
SELECT pgflow.run_deployment('a/d1', p_tags => ARRAY['fresh', 'nightly']) AS fresh \gset
DELETE FROM pgflow.flow_runs WHERE id IN (SELECT id FROM pgflow.flow_runs WHERE tags @> '{y}' LIMIT 3);
SELECT is((SELECT array_agg(tag ORDER BY tag) FROM pgflow.flow_run_tags WHERE flow_run_id = :'fresh'), ARRAY['fresh', 'nightly'],
          'a new run''s tags (its own and its deployment''s) are there at once');
SELECT is((SELECT count(*) FROM pgflow.flow_run_tags g WHERE NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.id = g.flow_run_id)), 0::bigint,
          'and a deleted run''s go with it');
SELECT * FROM finish();
ROLLBACK;
