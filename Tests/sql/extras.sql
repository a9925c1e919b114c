-- Artifacts (versions by key), variables in deployment parameters, secrets (ciphertext only), blocks
-- checked against their type's schema, and pause with typed input (0006_extras).
BEGIN;
SELECT plan(29);

CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text; v_msg text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    RETURN v_state || ': ' || v_msg;
END $$;

SELECT pgflow.create_deployment('etl', 'daily', './etl.sh',
    '{"region": "{{ pgflow.variables.region }}", "limits": "{{pgflow.variables.limits}}", "greeting": "hello {{ pgflow.variables.region }}!", "plain": "{{ not a reference }}"}');
SELECT pgflow.register_agent('agent', ARRAY['default']) AS agent \gset

-- variables in parameters: resolved when the run is enqueued, so the claim hands them to the agent
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('etl/daily')$$),
          'P0002: pgflow: the parameters reference variable ''limits'', which is not set', 'an unset variable is refused');
SELECT is((SELECT count(*) FROM pgflow.flow_runs), 0::bigint, 'and no run was created');
SELECT pgflow.set_variable('region', '"eu-west"');
SELECT pgflow.set_variable('limits', '{"max": 5}');
SELECT pgflow.run_deployment('etl/daily', '{"extra": ["{{ pgflow.variables.limits }}"]}') AS run \gset
SELECT is((SELECT parameters FROM pgflow.claim_flow_runs(:'agent')),
          '{"region": "eu-west", "limits": {"max": 5}, "greeting": "hello eu-west!", "plain": "{{ not a reference }}", "extra": [{"max": 5}]}'::jsonb,
          'the claimed run has the variables'' values (whole-string references keep their JSON type)');
SELECT is((SELECT parameters->>'region' FROM pgflow.deployments), '{{ pgflow.variables.region }}', 'the deployment keeps the reference');
SELECT is(pgflow.resolve_parameters('{"a": 1}'), '{"a": 1}'::jsonb, 'parameters without references come back unchanged');
SELECT ok(pgflow.delete_variable('limits') AND NOT pgflow.delete_variable('limits'), 'delete_variable says whether it existed');

-- artifacts: keyed ones keep every version; listings by run and by key
SELECT pgflow.create_artifact('markdown', to_jsonb('# v1'::text), 'daily-report', p_flow_run_id => :'run') AS a1 \gset
SELECT pgflow.create_artifact('markdown', to_jsonb('# v2'::text), 'daily-report', p_flow_run_id => :'run') AS a2 \gset
SELECT pgflow.create_artifact('table', '[{"city": "Oslo", "n": 3}]', p_flow_run_id => :'run');
SELECT pgflow.create_artifact('link', '{"url": "https://example.com/r", "text": "report"}');
SELECT pgflow.create_artifact('progress', '10', p_flow_run_id => :'run') AS p \gset
SELECT pgflow.update_progress_artifact(:'p', 75);
SELECT results_eq($$SELECT key, version, latest, data FROM pgflow.artifact_list WHERE key = 'daily-report' ORDER BY version$$,
                  $$VALUES ('daily-report', 1, false, '"# v1"'::jsonb), ('daily-report', 2, true, '"# v2"'::jsonb)$$,
                  'both versions of a key are kept, the newest is latest');
SELECT results_eq($$SELECT type, data FROM pgflow.artifact_list WHERE flow_run_id = '$$ || :'run' || $$' ORDER BY created_at, type, version$$,
                  $$VALUES ('markdown', '"# v1"'::jsonb), ('markdown', '"# v2"'::jsonb), ('progress', '75'::jsonb), ('table', '[{"city": "Oslo", "n": 3}]'::jsonb)$$,
                  'the run''s artifacts, the progress one updated in place');
SELECT is((SELECT version FROM pgflow.latest_artifacts WHERE key = 'daily-report'), 2, 'latest_artifacts shows the newest version');
SELECT is(pg_temp.err($$SELECT pgflow.create_artifact('progress', '101')$$),
          '22023: pgflow: a progress artifact holds a number from 0 to 100, not 101', 'progress is 0 to 100');
SELECT is(pg_temp.err($$SELECT pgflow.create_artifact('table', '{"a": 1}')$$),
          '22023: pgflow: a table artifact holds an array of rows (objects or arrays)', 'a table is an array of rows');
SELECT is(pg_temp.err($$SELECT pgflow.create_artifact('chart', '1')$$), '22023: pgflow: unknown artifact type ''chart''', 'unknown type');
SELECT is(pg_temp.err($$SELECT pgflow.create_artifact('markdown', '"x"', 'Bad Key')$$),
          '22023: pgflow: invalid artifact key ''Bad Key''', 'bad key');
SELECT is(pg_temp.err($$SELECT pgflow.update_progress_artifact('$$ || :'a1' || $$', 5)$$),
          '22023: pgflow: artifact ' || :'a1' || ' is a markdown artifact; only progress artifacts change in place', 'only progress updates');
SELECT is(pg_temp.err($$SELECT pgflow.create_artifact('markdown', '"x"', p_flow_run_id => '00000000-0000-0000-0000-000000000000')$$),
          'P0002: pgflow: unknown flow run 00000000-0000-0000-0000-000000000000', 'unknown flow run');

-- secrets: only AES-GCM-sized ciphertext and a key id are accepted
SELECT is(pg_temp.err($$SELECT pgflow.set_secret('api-key', 'plain text'::bytea, '0123456789abcdef')$$),
          '22023: pgflow: secret ''api-key'' needs an AES-GCM ciphertext and a 16-hex-digit key id', 'a short value is not a ciphertext');
SELECT pgflow.set_secret('db-password', decode(repeat('ab', 40), 'hex'), '0123456789abcdef');
SELECT is((SELECT key_id FROM pgflow.secret_list WHERE name = 'db-password'), '0123456789abcdef', 'secret_list shows names and key ids');
SELECT is(pg_temp.err($$SELECT pgflow.rotate_secrets('{}', '{}', '0123456789abcdef', 'fedcba9876543210')$$),
          '55000: pgflow: the secrets of key 0123456789abcdef changed during the rotation', 'a rotation must cover every secret of the old key');

-- blocks: checked against the type's schema on write
SELECT is(pg_temp.err($$SELECT pgflow.save_block('database-credentials/main', '{"host": "db", "port": "5432", "database": "d", "username": "u", "colour": 1}')$$),
          '22023: pgflow: block database-credentials/main does not fit type database-credentials: $: unexpected field colour; $.port: expected integer, got string',
          'a block with a wrong field is refused with every problem');
SELECT is(pg_temp.err($$SELECT pgflow.save_block('database-credentials/main', '{"host": "db", "database": "d", "username": "u", "password": {"secret": "nope"}}')$$),
          '22023: pgflow: block database-credentials/main does not fit type database-credentials: $.password: unknown secret nope (set it with `pgflow secret set nope`)',
          'a secret field must name a stored secret');
SELECT is((SELECT count(*) FROM pgflow.block_documents), 0::bigint, 'refused blocks wrote nothing');
SELECT lives_ok($$SELECT pgflow.save_block('database-credentials/main', '{"host": "db", "port": 5432, "database": "d", "username": "u", "password": {"secret": "db-password"}}')$$,
                'a fitting block is saved');
SELECT is(pgflow.get_block('database-credentials/main')->'password', '{"secret": "db-password"}'::jsonb, 'the secret stays a reference');
SELECT is(pg_temp.err($$SELECT pgflow.create_block_type('custom', '{"type": "object", "pattern": "x"}')$$),
          '22023: pgflow: JSON-schema keyword ''pattern'' (at $) is not supported', 'unsupported schema keywords are refused, not ignored');
SELECT is(pg_temp.err($$SELECT pgflow.save_block('nope/x', '{}')$$), 'P0002: pgflow: unknown block type ''nope''', 'unknown block type');

-- pause with input: bad input is refused and the run stays paused; good input resumes it
SELECT pgflow.set_flow_run_state(:'run', 'RUNNING', p_agent_id => :'agent');
SELECT pgflow.request_flow_run_input(:'run', '{"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}}}');
SELECT pgflow.set_flow_run_state(:'run', 'PAUSED', p_pause_expires_at => now() + interval '1 hour');
SELECT is(pg_temp.err($$SELECT pgflow.resume_flow_run_with_input('$$ || :'run' || $$', '{"approved": "yes"}')$$),
          '22023: pgflow: the input does not fit what flow run ' || :'run' || ' waits for: $.approved: expected boolean, got string',
          'bad input is refused');
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = :'run'), 'Paused', 'the run stays paused');
SELECT is((SELECT status FROM pgflow.resume_flow_run_with_input(:'run', '{"approved": true, "note": "ok"}')), 'ACCEPTED', 'good input resumes it');
SELECT is(pgflow.flow_run_input(:'run'), '{"approved": true, "note": "ok"}'::jsonb, 'and is kept for the flow to read');

SELECT * FROM finish();
ROLLBACK;
