-- What the HTTP API uses (0005_api.sql): hashed tokens with scopes, the audit log, keyset listings,
-- state events for the live stream, the metrics views.
BEGIN;
SELECT plan(32);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
    RETURN v_state;
END $$;

-- tokens: shown once, stored as SHA-256 only; scopes nest read < run < admin
SELECT pgflow.create_api_token('ci', 'run') AS token \gset
SELECT matches(:'token'::text, '^pgf_[0-9a-f]{64}$', 'a token is pgf_ and 64 hex digits');
SELECT is((SELECT count(*)::int FROM pgflow.api_tokens WHERE token_hash = sha256(convert_to(:'token', 'UTF8'))), 1, 'its hash is stored');
SELECT is((SELECT count(*)::int FROM pgflow.api_tokens t WHERE position(:'token' IN t::text) > 0), 0, 'the token itself is not');
SELECT is((SELECT allowed FROM pgflow.authorize_api_token(:'token', 'read')), true, 'run covers read');
SELECT is((SELECT allowed FROM pgflow.authorize_api_token(:'token', 'run')), true, 'run covers run');
SELECT is((SELECT allowed FROM pgflow.authorize_api_token(:'token', 'admin')), false, 'run does not cover admin');
SELECT is((SELECT count(*)::int FROM pgflow.authorize_api_token('pgf_nope', 'read')), 0, 'an unknown token is nobody');
SELECT is(pg_temp.err($$SELECT pgflow.create_api_token('ci', 'read')$$), '23505', 'one live token per name');
SELECT is(pg_temp.err($$SELECT pgflow.create_api_token('x', 'root')$$), '22023', 'unknown scope');
SELECT is(pg_temp.err($$SELECT pgflow.create_api_token('a b', 'read')$$), '22023', 'bad name');
SELECT pgflow.revoke_api_token('ci');
SELECT is((SELECT count(*)::int FROM pgflow.authorize_api_token(:'token', 'read')), 0, 'a revoked token is nobody');
SELECT is(pg_temp.err($$SELECT pgflow.revoke_api_token('ci')$$), 'P0002', 'revoking twice: no live token');

-- audit
SELECT pgflow.record_api_audit('ci', 'POST /api/deployments/runs', 'a/b', 'ok', '{"flow_run_id": "x"}');
SELECT is((SELECT result FROM pgflow.api_audit WHERE token_name = 'ci'), 'ok', 'an audit row');

-- listings: filters and keyset pages, newest first
SELECT pgflow.create_work_queue('lq');
SELECT pgflow.create_deployment('lf', 'd1', './a.sh', p_tags => '{t1}');
SELECT pgflow.create_deployment('lf', 'd2', './b.sh', p_work_queue => 'lq');
SELECT count(*) FROM pgflow.run_deployments('lf/d1', array_fill('{}'::jsonb, ARRAY[7]), p_now => now() - interval '1 hour');
SELECT count(*) FROM pgflow.run_deployments('lf/d2', array_fill('{}'::jsonb, ARRAY[5]));
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_limit => 100)), 12, 'all runs');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_deployment => 'lf/d1')), 7, 'by deployment');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_work_queue => 'lq')), 5, 'by work queue');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_tag => 't1', p_state_type => 'scheduled', p_state_name => 'Scheduled')), 7, 'by tag and state');
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_page(p_since => now() - interval '1 minute')), 5, 'by time');
SELECT is((SELECT deployment FROM pgflow.flow_run_page(p_limit => 1)), 'd2', 'newest first');
SELECT is((WITH p1 AS (SELECT * FROM pgflow.flow_run_page(p_limit => 5)),
                p2 AS (SELECT * FROM pgflow.flow_run_page(p_limit => 5, p_cursor => (SELECT cursor FROM p1 ORDER BY created_at, id LIMIT 1))),
                p3 AS (SELECT * FROM pgflow.flow_run_page(p_limit => 5, p_cursor => (SELECT cursor FROM p2 ORDER BY created_at, id LIMIT 1)))
           SELECT count(DISTINCT id)::int FROM (SELECT id FROM p1 UNION ALL SELECT id FROM p2 UNION ALL SELECT id FROM p3) x), 12,
          'three pages of 5 cover the 12 runs once');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.flow_run_page(p_cursor => 'garbage')$$), '22023', 'a bad cursor');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.flow_run_page(p_limit => 1001)$$), '22023', 'a page too large');
SELECT is(pg_temp.err($$SELECT * FROM pgflow.flow_run_page(p_deployment => 'lf/nope')$$), 'P0002', 'an unknown deployment');

-- live stream rows and metrics
SELECT is((SELECT count(*)::int FROM pgflow.flow_run_state_events(0, p_deployment => 'lf/d2')), 5, 'state events of a deployment');
SELECT is((SELECT sum(runs)::int FROM pgflow.metrics_flow_runs WHERE deployment = 'lf/d1' AND state_name = 'Scheduled'), 7, 'metrics: runs by state');
SELECT is((SELECT due_runs::int FROM pgflow.metrics_work_queues WHERE work_queue = 'lq'), 5, 'metrics: due runs per queue');

-- dropping a queue's or a deployment's limit works (it failed with 27000 before 0005)
SELECT pgflow.create_work_queue('limited', p_concurrency_limit => 2);
SELECT is(pg_temp.err($$SELECT pgflow.create_work_queue('limited')$$), 'no error', 'a work queue limit can be dropped');
SELECT pgflow.create_deployment('lf', 'd3', './c.sh', p_concurrency_limit => 1);
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('lf', 'd3', './c.sh')$$), 'no error', 'a deployment limit can be dropped');

-- a schedule is deleted only through its own deployment
SELECT pgflow.create_deployment_schedule('lf/d1', 'cron', '0 6 * * *') AS sched \gset
SELECT is(pg_temp.err(format('SELECT pgflow.delete_schedule_of_deployment(%L, %L)', 'lf/d2', :'sched')), 'P0002', 'not through another deployment');
SELECT is(pg_temp.err(format('SELECT pgflow.delete_schedule_of_deployment(%L, %L)', 'lf/d1', :'sched')), 'no error', 'through its own');

-- stream listener leases (the stream NOTIFYs are sent only while one is live)
SELECT pgflow.renew_stream_listener('00000000-0000-0000-0000-000000000001', interval '1 minute', now() - interval '2 minutes');
SELECT pgflow.renew_stream_listener('00000000-0000-0000-0000-000000000002');
SELECT is((SELECT array_agg(id::text ORDER BY id) FROM pgflow.stream_listeners), ARRAY['00000000-0000-0000-0000-000000000002'],
          'renewing a lease forgets expired ones');
SELECT pgflow.drop_stream_listener('00000000-0000-0000-0000-000000000002');
SELECT is((SELECT count(*)::int FROM pgflow.stream_listeners), 0, 'a dropped lease is gone');

SELECT * FROM finish();
ROLLBACK;
