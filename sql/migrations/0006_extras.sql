-- 0006: artifacts, variables in parameters, secrets (ciphertext only), blocks, pause with typed input.
--
-- Sections: JSON-schema subset (used by blocks and pause input) · artifacts · variables · secrets ·
-- deployment secret environments · blocks · pause with input. Large results need no SQL: a result
-- over the SDK's limit is written to result storage and pgflow.results keeps its reference
-- ({"$pgflow_result": {"storage": "local", "path": …, "bytes": …, "sha256": …}}).

-- ============================================================================================
-- A JSON-schema subset, checked on write. Enforced keywords: type (string, number, integer, boolean,
-- object, array, null, or a list of them), enum, required, properties, additionalProperties (false or
-- a schema), items, and pgflow's own "secret": true (the value must be {"secret": "NAME"} naming a
-- stored secret). Annotations (title, description, default, examples, format, $schema) are allowed and
-- not checked; any other keyword is refused when the schema is stored, so nothing is silently ignored.
-- ============================================================================================
CREATE FUNCTION pgflow.check_json_schema(p_schema jsonb, p_path text DEFAULT '$') RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_key  text;
    v_type text;
BEGIN
    IF p_schema IS NULL OR jsonb_typeof(p_schema) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: the schema at % must be a JSON object', p_path
            USING ERRCODE = '22023', HINT = 'e.g. {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(p_schema) LOOP
        IF v_key NOT IN ('type', 'enum', 'required', 'properties', 'additionalProperties', 'items', 'secret',
                         'title', 'description', 'default', 'examples', 'format', '$schema') THEN
            RAISE EXCEPTION 'pgflow: JSON-schema keyword % (at %) is not supported', quote_literal(v_key), p_path
                USING ERRCODE = '22023',
                      HINT = 'supported: type, enum, required, properties, additionalProperties, items, secret (and annotations)';
        END IF;
    END LOOP;
    IF p_schema ? 'type' THEN
        FOR v_type IN SELECT t FROM jsonb_array_elements_text(CASE jsonb_typeof(p_schema->'type') WHEN 'array' THEN p_schema->'type'
                                                                                 ELSE jsonb_build_array(p_schema->'type') END) t LOOP
            IF v_type IS NULL OR v_type NOT IN ('string', 'number', 'integer', 'boolean', 'object', 'array', 'null') THEN
                RAISE EXCEPTION 'pgflow: unknown JSON type % at %', coalesce(quote_literal(v_type), 'NULL'), p_path
                    USING ERRCODE = '22023', HINT = 'use string, number, integer, boolean, object, array or null';
            END IF;
        END LOOP;
    END IF;
    IF p_schema ? 'enum' AND jsonb_typeof(p_schema->'enum') <> 'array' THEN
        RAISE EXCEPTION 'pgflow: "enum" at % must be an array', p_path USING ERRCODE = '22023';
    END IF;
    IF p_schema ? 'required' AND (jsonb_typeof(p_schema->'required') <> 'array'
        OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_schema->'required') r WHERE jsonb_typeof(r) <> 'string')) THEN
        RAISE EXCEPTION 'pgflow: "required" at % must be an array of field names', p_path USING ERRCODE = '22023';
    END IF;
    IF p_schema ? 'properties' THEN
        IF jsonb_typeof(p_schema->'properties') <> 'object' THEN
            RAISE EXCEPTION 'pgflow: "properties" at % must be an object', p_path USING ERRCODE = '22023';
        END IF;
        PERFORM pgflow.check_json_schema(s.value, p_path || '.' || s.key) FROM jsonb_each(p_schema->'properties') s;
    END IF;
    IF p_schema ? 'items' THEN
        PERFORM pgflow.check_json_schema(p_schema->'items', p_path || '[]');
    END IF;
    IF jsonb_typeof(p_schema->'additionalProperties') = 'object' THEN
        PERFORM pgflow.check_json_schema(p_schema->'additionalProperties', p_path || '.*');
    END IF;
    RETURN p_schema;
END $$;

-- Every way p_value breaks p_schema, one line each ('$.port: expected integer, got string'); empty when it fits.
CREATE FUNCTION pgflow.json_schema_errors(p_schema jsonb, p_value jsonb, p_path text DEFAULT '$') RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_errors text[] := '{}';
    v_type   text := jsonb_typeof(p_value);
    v_types  text[];
    v_key    text;
    v_sub    jsonb;
    v_i      bigint;
BEGIN
    IF p_schema IS NULL OR jsonb_typeof(p_schema) <> 'object' THEN
        RETURN v_errors;
    END IF;
    IF p_schema->'secret' = 'true' THEN
        IF v_type <> 'object' OR jsonb_typeof(p_value->'secret') <> 'string'
           OR (SELECT count(*) FROM jsonb_object_keys(p_value)) <> 1 THEN
            RETURN ARRAY[format('%s: expected a secret reference {"secret": "NAME"}, got %s', p_path, v_type)];
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pgflow.secrets WHERE name = p_value->>'secret') THEN
            RETURN ARRAY[format('%s: unknown secret %s (set it with `pgflow secret set %s`)', p_path,
                                p_value->>'secret', p_value->>'secret')];
        END IF;
        RETURN v_errors;
    END IF;
    IF p_schema ? 'type' THEN
        v_types := CASE jsonb_typeof(p_schema->'type') WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(p_schema->'type'))
                                                       ELSE ARRAY[p_schema->>'type'] END;
        IF NOT (v_type = ANY (v_types)
                OR (v_type = 'number' AND 'integer' = ANY (v_types) AND p_value::text::numeric = trunc(p_value::text::numeric))) THEN
            RETURN ARRAY[format('%s: expected %s, got %s', p_path, array_to_string(v_types, ' or '), v_type)];
        END IF;
    END IF;
    IF p_schema ? 'enum' AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_schema->'enum') e WHERE e = p_value) THEN
        v_errors := v_errors || format('%s: %s is not one of %s', p_path, p_value::text, (p_schema->'enum')::text);
    END IF;
    IF v_type = 'object' THEN
        FOR v_key IN SELECT jsonb_array_elements_text(p_schema->'required') LOOP
            IF NOT p_value ? v_key THEN
                v_errors := v_errors || format('%s: missing required field %s', p_path, v_key);
            END IF;
        END LOOP;
        FOR v_key, v_sub IN SELECT key, value FROM jsonb_each(p_value) ORDER BY key LOOP
            IF p_schema->'properties' ? v_key THEN
                v_errors := v_errors || pgflow.json_schema_errors(p_schema->'properties'->v_key, v_sub, p_path || '.' || v_key);
            ELSIF p_schema->'additionalProperties' = 'false' THEN
                v_errors := v_errors || format('%s: unexpected field %s', p_path, v_key);
            ELSIF jsonb_typeof(p_schema->'additionalProperties') = 'object' THEN
                v_errors := v_errors || pgflow.json_schema_errors(p_schema->'additionalProperties', v_sub, p_path || '.' || v_key);
            END IF;
        END LOOP;
    ELSIF v_type = 'array' AND p_schema ? 'items' THEN
        FOR v_sub, v_i IN SELECT value, ord - 1 FROM jsonb_array_elements(p_value) WITH ORDINALITY e(value, ord) LOOP
            v_errors := v_errors || pgflow.json_schema_errors(p_schema->'items', v_sub, format('%s[%s]', p_path, v_i));
        END LOOP;
    END IF;
    RETURN v_errors;
END $$;

-- ============================================================================================
-- Artifacts: markdown, tables, links and progress attached to flow runs (and task runs). An artifact
-- with a key is versioned: every create adds version n+1 and keeps the earlier ones; a progress
-- artifact is updated in place. Artifacts outlive their runs (the run ids become NULL).
-- ============================================================================================
CREATE TABLE pgflow.artifacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key         text CHECK (key ~ '^[a-z0-9][a-z0-9-]{0,254}$'),
    version     integer CHECK ((key IS NULL) = (version IS NULL)),
    type        text        NOT NULL CHECK (type IN ('markdown', 'table', 'link', 'progress')),
    description text,
    data        jsonb       NOT NULL,
    flow_run_id uuid REFERENCES pgflow.flow_runs ON DELETE SET NULL,
    task_run_id uuid REFERENCES pgflow.task_runs ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (key, version)
);
CREATE INDEX artifacts_flow_run_idx ON pgflow.artifacts (flow_run_id) WHERE flow_run_id IS NOT NULL;
CREATE INDEX artifacts_task_run_idx ON pgflow.artifacts (task_run_id) WHERE task_run_id IS NOT NULL;

-- Internal: checks an artifact's data against its type.
CREATE FUNCTION pgflow._check_artifact_data(p_type text, p_data jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_type IS NULL OR p_type NOT IN ('markdown', 'table', 'link', 'progress') THEN
        RAISE EXCEPTION 'pgflow: unknown artifact type %', coalesce(quote_literal(p_type), 'NULL')
            USING ERRCODE = '22023', HINT = 'use markdown, table, link or progress';
    END IF;
    IF p_type = 'markdown' AND jsonb_typeof(p_data) IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'pgflow: a markdown artifact holds a JSON string' USING ERRCODE = '22023', HINT = 'pass to_jsonb(''# Report''::text)';
    ELSIF p_type = 'table' AND (jsonb_typeof(p_data) IS DISTINCT FROM 'array'
                                OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_data) r WHERE jsonb_typeof(r) NOT IN ('object', 'array'))) THEN
        RAISE EXCEPTION 'pgflow: a table artifact holds an array of rows (objects or arrays)'
            USING ERRCODE = '22023', HINT = 'e.g. [{"city": "Oslo", "rows": 3}]';
    ELSIF p_type = 'link' AND (jsonb_typeof(p_data->'url') IS DISTINCT FROM 'string'
                               OR (p_data ? 'text' AND jsonb_typeof(p_data->'text') <> 'string')) THEN
        RAISE EXCEPTION 'pgflow: a link artifact holds {"url": "...", "text": "..."}' USING ERRCODE = '22023';
    ELSIF p_type = 'progress' AND (jsonb_typeof(p_data) IS DISTINCT FROM 'number' OR p_data::text::float8 NOT BETWEEN 0 AND 100) THEN
        RAISE EXCEPTION 'pgflow: a progress artifact holds a number from 0 to 100, not %', coalesce(p_data::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN p_data;
END $$;

-- Creates an artifact of a flow run (and task run; the flow run is then found from it) and returns
-- its id. With a key, it becomes that key's next version.
CREATE FUNCTION pgflow.create_artifact(
    p_type        text,
    p_data        jsonb,
    p_key         text        DEFAULT NULL,
    p_description text        DEFAULT NULL,
    p_flow_run_id uuid        DEFAULT NULL,
    p_task_run_id uuid        DEFAULT NULL,
    p_now         timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_flow_run_id uuid := p_flow_run_id;
    v_version     integer;
    v_id          uuid;
BEGIN
    PERFORM pgflow._check_artifact_data(p_type, p_data);
    IF p_key IS NOT NULL AND p_key !~ '^[a-z0-9][a-z0-9-]{0,254}$' THEN
        RAISE EXCEPTION 'pgflow: invalid artifact key %', quote_literal(p_key)
            USING ERRCODE = '22023', HINT = 'use lower-case letters, digits and dashes (e.g. daily-report)';
    END IF;
    IF p_task_run_id IS NOT NULL THEN
        SELECT flow_run_id INTO v_flow_run_id FROM pgflow.task_runs WHERE id = p_task_run_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pgflow: unknown task run %', p_task_run_id USING ERRCODE = 'P0002', HINT = 'check the id';
        END IF;
        IF p_flow_run_id IS NOT NULL AND p_flow_run_id <> v_flow_run_id THEN
            RAISE EXCEPTION 'pgflow: task run % belongs to flow run %, not %', p_task_run_id, v_flow_run_id, p_flow_run_id
                USING ERRCODE = '22023';
        END IF;
    ELSIF p_flow_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.flow_runs WHERE id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id USING ERRCODE = 'P0002', HINT = 'check the id (PGFLOW_FLOW_RUN_ID)';
    END IF;
    IF p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('pgflow.artifacts'), hashtext(p_key));
        SELECT coalesce(max(version), 0) + 1 INTO v_version FROM pgflow.artifacts WHERE key = p_key;
    END IF;
    INSERT INTO pgflow.artifacts (key, version, type, description, data, flow_run_id, task_run_id, created_at, updated_at)
    VALUES (p_key, v_version, p_type, p_description, p_data, v_flow_run_id, p_task_run_id, p_now, p_now)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Sets a progress artifact's value (0 to 100) in place.
CREATE FUNCTION pgflow.update_progress_artifact(p_id uuid, p_progress float8, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
BEGIN
    SELECT type INTO v_type FROM pgflow.artifacts WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown artifact %', p_id USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    IF v_type <> 'progress' THEN
        RAISE EXCEPTION 'pgflow: artifact % is a % artifact; only progress artifacts change in place', p_id, v_type
            USING ERRCODE = '22023', HINT = 'create a new version with the same key instead';
    END IF;
    UPDATE pgflow.artifacts SET data = pgflow._check_artifact_data('progress', to_jsonb(p_progress)), updated_at = p_now
     WHERE id = p_id;
END $$;

-- Every artifact with its run's name; latest is true for the newest version of a key (and for unkeyed ones).
CREATE VIEW pgflow.artifact_list AS
SELECT a.id, a.key, a.version,
       a.key IS NULL OR a.version = max(a.version) OVER (PARTITION BY a.key) AS latest,
       a.type, a.description, a.data, a.flow_run_id, r.name AS flow_run_name, a.task_run_id, a.created_at, a.updated_at
  FROM pgflow.artifacts a LEFT JOIN pgflow.flow_runs r ON r.id = a.flow_run_id;

-- The newest version of every keyed artifact.
CREATE VIEW pgflow.latest_artifacts AS
SELECT DISTINCT ON (a.key) a.key, a.version, a.id, a.type, a.description, a.data, a.flow_run_id, a.created_at
  FROM pgflow.artifacts a WHERE a.key IS NOT NULL ORDER BY a.key, a.version DESC;

-- ============================================================================================
-- Variables: listing and deletion, and {{ pgflow.variables.NAME }} in deployment parameters.
-- ============================================================================================
CREATE FUNCTION pgflow.delete_variable(p_key text) RETURNS boolean
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM pgflow.variables WHERE key = p_key RETURNING 1) SELECT EXISTS (SELECT 1 FROM d)
$$;

CREATE VIEW pgflow.variable_list AS SELECT key, value, updated_at FROM pgflow.variables;

-- Internal: a variable's value, or a clear error naming it.
CREATE FUNCTION pgflow._variable_value(p_key text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_value jsonb;
BEGIN
    SELECT value INTO v_value FROM pgflow.variables WHERE key = p_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: the parameters reference variable %, which is not set', quote_literal(p_key)
            USING ERRCODE = 'P0002', HINT = format('set it with `pgflow variable set %s VALUE` or pgflow.set_variable', p_key);
    END IF;
    RETURN v_value;
END $$;

-- Internal: replaces templates in every string of a JSON value (see resolve_parameters).
CREATE FUNCTION pgflow._resolve_templates(p_value jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_text  text;
    v_match text[];
    v_value jsonb;
BEGIN
    CASE jsonb_typeof(p_value)
    WHEN 'object' THEN
        RETURN (SELECT coalesce(jsonb_object_agg(key, pgflow._resolve_templates(value)), '{}') FROM jsonb_each(p_value));
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(pgflow._resolve_templates(value) ORDER BY ord), '[]')
                  FROM jsonb_array_elements(p_value) WITH ORDINALITY e(value, ord));
    WHEN 'string' THEN
        v_text := p_value #>> '{}';
        IF strpos(v_text, '{{') = 0 THEN
            RETURN p_value;
        END IF;
        v_match := regexp_match(v_text, '^\{\{\s*pgflow\.variables\.([a-z0-9_./-]+)\s*\}\}$');
        IF v_match IS NOT NULL THEN  -- the whole string: the variable's JSON value, whatever its type
            RETURN pgflow._variable_value(v_match[1]);
        END IF;
        FOR v_match IN SELECT regexp_matches(v_text, '\{\{\s*pgflow\.variables\.([a-z0-9_./-]+)\s*\}\}', 'g') LOOP
            v_value := pgflow._variable_value(v_match[1]);
            v_text := regexp_replace(v_text, '\{\{\s*pgflow\.variables\.' || regexp_replace(v_match[1], '([./-])', '\\\1', 'g') || '\s*\}\}',
                                     replace(CASE jsonb_typeof(v_value) WHEN 'string' THEN v_value #>> '{}' ELSE v_value::text END,
                                             '\', '\\'), 'g');
        END LOOP;
        RETURN to_jsonb(v_text);
    ELSE
        RETURN p_value;
    END CASE;
END $$;

-- Parameters with their variable references resolved: a string that is exactly
-- '{{ pgflow.variables.NAME }}' becomes the variable's JSON value (of any type); a reference inside a
-- longer string is replaced by the variable's text. An unset variable is an error (P0002). Parameters
-- without '{{' come back untouched at the cost of one strpos.
CREATE FUNCTION pgflow.resolve_parameters(p_parameters jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_parameters IS NULL OR strpos(p_parameters::text, '{{') = 0 THEN p_parameters
                ELSE pgflow._check_parameters(pgflow._resolve_templates(p_parameters), 'parameters with their variables resolved') END
$$;

-- _enqueue_runs as in 0003 (0002's, with the merged parameters' size checked), with one change: the
-- merged parameters go through resolve_parameters (whose result is size-checked too), so
-- every deployment run (run_deployment, run_deployments, schedules) records the values it runs with.
-- Variables are read when the run is enqueued: a scheduled run materialised ahead of time keeps the
-- value of that moment, and a retry reuses the values of its first attempt.
CREATE OR REPLACE FUNCTION pgflow._enqueue_runs(
    p_deployment_id uuid, p_parameters jsonb[], p_times timestamptz[], p_tags text[], p_idempotency_keys text[],
    p_names text[], p_work_queue_id uuid, p_parent_task_run_id uuid, p_schedule_id uuid, p_now timestamptz
) RETURNS SETOF uuid
LANGUAGE sql AS $$
    WITH d AS (SELECT * FROM pgflow.deployments WHERE id = p_deployment_id),
    x AS (SELECT * FROM unnest(p_parameters, p_times, p_idempotency_keys, p_names) WITH ORDINALITY
                        AS x(params, at, key, name, ord)),
    ins AS (
        INSERT INTO pgflow.flow_runs (name, flow_id, deployment_id, work_queue_id, deployment_schedule_id, parameters,
                                      tags, idempotency_key, parent_task_run_id, retries, retry_delays, retry_backoff,
                                      retry_jitter, expected_start_time, next_scheduled_start, state_type, state_name,
                                      state_timestamp, created_at)
        SELECT coalesce(x.name, pgflow.random_run_name()), d.flow_id, d.id, coalesce(p_work_queue_id, d.work_queue_id),
               p_schedule_id,
               pgflow.resolve_parameters(
                   CASE WHEN d.parameters = '{}' OR coalesce(x.params, '{}') = '{}' THEN d.parameters || coalesce(x.params, '{}')
                        ELSE pgflow._check_parameters(d.parameters || x.params, 'parameters merged over the deployment''s') END),
               ARRAY(SELECT DISTINCT t FROM unnest(d.tags || coalesce(p_tags, '{}')) t ORDER BY t),
               x.key, p_parent_task_run_id, d.retries, d.retry_delays, d.retry_backoff, d.retry_jitter,
               coalesce(x.at, p_now), coalesce(x.at, p_now), 'SCHEDULED', 'Scheduled', p_now, p_now
          FROM x CROSS JOIN d ORDER BY x.ord
        ON CONFLICT DO NOTHING
        RETURNING id, work_queue_id, expected_start_time),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", scheduled_time)
        SELECT id, 'SCHEDULED', 'Scheduled', p_now, expected_start_time FROM ins),
    q AS (
        INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at)
        SELECT id, work_queue_id, expected_start_time FROM ins)
    SELECT id FROM ins
$$;

-- ============================================================================================
-- Secrets: sealed in the client (AES-256-GCM, PGFlowSecrets); the database holds the name, the
-- ciphertext and the id of the key that sealed it, never a plaintext or a key.
-- ============================================================================================
CREATE TABLE pgflow.secrets (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,254}$'),
    ciphertext bytea       NOT NULL CHECK (octet_length(ciphertext) >= 28),  -- 12-byte nonce + 16-byte tag at least
    key_id     text        NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Internal: checks a secret name.
CREATE FUNCTION pgflow._check_secret_name(p_name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9_.-]{0,254}$' THEN
        RAISE EXCEPTION 'pgflow: invalid secret name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'use lower-case letters, digits, _ . - (e.g. api-key)';
    END IF;
    RETURN p_name;
END $$;

-- Stores (or replaces) a sealed secret.
CREATE FUNCTION pgflow.set_secret(p_name text, p_ciphertext bytea, p_key_id text, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_secret_name(p_name);
    IF p_ciphertext IS NULL OR octet_length(p_ciphertext) < 28 OR p_key_id IS NULL OR p_key_id !~ '^[0-9a-f]{16}$' THEN
        RAISE EXCEPTION 'pgflow: secret % needs an AES-GCM ciphertext and a 16-hex-digit key id', quote_literal(p_name)
            USING ERRCODE = '22023', HINT = 'seal it in the client: `pgflow secret set NAME` (PGFlowSecrets)';
    END IF;
    INSERT INTO pgflow.secrets (name, ciphertext, key_id, created_at, updated_at)
    VALUES (p_name, p_ciphertext, p_key_id, p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, key_id = excluded.key_id, updated_at = excluded.updated_at;
END $$;

-- A sealed secret (no rows when there is none).
CREATE FUNCTION pgflow.get_secret(p_name text) RETURNS TABLE (ciphertext bytea, key_id text)
LANGUAGE sql STABLE AS $$ SELECT s.ciphertext, s.key_id FROM pgflow.secrets s WHERE s.name = p_name $$;

CREATE FUNCTION pgflow.delete_secret(p_name text) RETURNS boolean
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM pgflow.secrets WHERE name = p_name RETURNING 1) SELECT EXISTS (SELECT 1 FROM d)
$$;

-- Names and key ids; never the ciphertext.
CREATE VIEW pgflow.secret_list AS SELECT name, key_id, created_at, updated_at FROM pgflow.secrets;

-- Key rotation, all or nothing: replaces the ciphertexts of every secret sealed with p_old_key_id by
-- the given ones (sealed with p_new_key_id). Refused (55000, nothing changed) when the names given are
-- not exactly the secrets of the old key, i.e. when a secret changed since the client read them.
CREATE FUNCTION pgflow.rotate_secrets(p_names text[], p_ciphertexts bytea[], p_old_key_id text, p_new_key_id text,
                                      p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_old text[];
    v_n   integer;
BEGIN
    IF p_new_key_id IS NULL OR p_new_key_id !~ '^[0-9a-f]{16}$' OR cardinality(p_names) IS DISTINCT FROM cardinality(p_ciphertexts) THEN
        RAISE EXCEPTION 'pgflow: rotate_secrets needs one ciphertext per name and a 16-hex-digit new key id' USING ERRCODE = '22023';
    END IF;
    v_old := ARRAY(SELECT name FROM pgflow.secrets WHERE key_id = p_old_key_id ORDER BY name FOR UPDATE);
    IF v_old IS DISTINCT FROM ARRAY(SELECT n FROM unnest(p_names) n ORDER BY n) THEN
        RAISE EXCEPTION 'pgflow: the secrets of key % changed during the rotation', p_old_key_id
            USING ERRCODE = '55000', HINT = 'run the rotation again';
    END IF;
    UPDATE pgflow.secrets s SET ciphertext = n.c, key_id = p_new_key_id, updated_at = p_now
      FROM unnest(p_names, p_ciphertexts) n(name, c) WHERE s.name = n.name;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;

-- ============================================================================================
-- Deployment environments from secrets: env: {API_KEY: {secret: api-key}} in pgflow.yaml. The agent
-- (with the key) decrypts them into the command's environment (PGFlowSecrets.SecretEnvironment).
-- ============================================================================================
CREATE TABLE pgflow.deployment_secret_env (
    deployment_id uuid NOT NULL REFERENCES pgflow.deployments ON DELETE CASCADE,
    env_name      text NOT NULL CHECK (env_name ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    secret_name   text NOT NULL,  -- no FK: a secret may be set after the deployment; resolving names a missing one
    PRIMARY KEY (deployment_id, env_name)
);

-- Replaces a deployment's secret environment with p_env ({"API_KEY": {"secret": "api-key"}}, or
-- {"API_KEY": "api-key"}); returns how many variables it maps.
CREATE FUNCTION pgflow.set_deployment_secret_env(p_deployment text, p_env jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_dep_id uuid := pgflow._deployment_id(p_deployment);
    v_bad    text;
    v_n      integer;
BEGIN
    IF p_env IS NULL OR jsonb_typeof(p_env) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: a secret environment is a JSON object' USING ERRCODE = '22023',
              HINT = '{"API_KEY": {"secret": "api-key"}}';
    END IF;
    SELECT key INTO v_bad FROM jsonb_each(p_env)
     WHERE key !~ '^[A-Za-z_][A-Za-z0-9_]*$'
        OR coalesce(CASE jsonb_typeof(value) WHEN 'string' THEN value #>> '{}' WHEN 'object' THEN value->>'secret' END, '')
           !~ '^[a-z0-9][a-z0-9_.-]{0,254}$'
     LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: bad secret environment entry %', quote_literal(v_bad) USING ERRCODE = '22023',
              HINT = 'names are environment variable names, values {"secret": "secret-name"}';
    END IF;
    DELETE FROM pgflow.deployment_secret_env WHERE deployment_id = v_dep_id;
    INSERT INTO pgflow.deployment_secret_env (deployment_id, env_name, secret_name)
    SELECT v_dep_id, key, CASE jsonb_typeof(value) WHEN 'string' THEN value #>> '{}' ELSE value->>'secret' END FROM jsonb_each(p_env);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;

-- Every deployment's secret environment with the sealed values (NULL when the secret is not set).
CREATE VIEW pgflow.deployment_secret_env_list AS
SELECT e.deployment_id, f.name || '/' || d.name AS deployment, e.env_name, e.secret_name, s.ciphertext, s.key_id
  FROM pgflow.deployment_secret_env e
  JOIN pgflow.deployments d ON d.id = e.deployment_id
  JOIN pgflow.flows f ON f.id = d.flow_id
  LEFT JOIN pgflow.secrets s ON s.name = e.secret_name;

-- ============================================================================================
-- Blocks: typed configuration documents ('slack-webhook/alerts'). A block type has a JSON schema (the
-- subset above); a block is checked against it on every write, and secret fields hold
-- {"secret": "NAME"} references (resolved by the client that has the key), never values.
-- ============================================================================================
CREATE TABLE pgflow.block_types (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    description text,
    schema      jsonb       NOT NULL,
    builtin     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE pgflow.block_documents (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    block_type text        NOT NULL REFERENCES pgflow.block_types (slug),
    name       text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,254}$'),
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (block_type, name)
);

-- Creates or replaces a block type (its schema is checked: see check_json_schema). Existing blocks
-- are not re-checked; they are on their next write.
CREATE FUNCTION pgflow.create_block_type(p_slug text, p_schema jsonb, p_description text DEFAULT NULL,
                                         p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_slug IS NULL OR p_slug !~ '^[a-z0-9][a-z0-9-]{0,62}$' THEN
        RAISE EXCEPTION 'pgflow: invalid block type name %', coalesce(quote_literal(p_slug), 'NULL')
            USING ERRCODE = '22023', HINT = 'use lower-case letters, digits and dashes (e.g. slack-webhook)';
    END IF;
    PERFORM pgflow.check_json_schema(p_schema);
    IF p_schema->>'type' IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'pgflow: a block type''s schema describes an object ("type": "object")' USING ERRCODE = '22023';
    END IF;
    INSERT INTO pgflow.block_types (slug, description, schema, created_at, updated_at)
    VALUES (p_slug, p_description, p_schema, p_now, p_now)
    ON CONFLICT (slug) DO UPDATE SET description = excluded.description, schema = excluded.schema, updated_at = excluded.updated_at;
END $$;

-- Internal: splits 'type/name'.
CREATE FUNCTION pgflow._block_ref(p_ref text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_ref IS NULL OR p_ref !~ '^[^/]+/[^/]+$' THEN
        RAISE EXCEPTION 'pgflow: a block is named TYPE/NAME, not %', coalesce(quote_literal(p_ref), 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. slack-webhook/alerts';
    END IF;
    RETURN string_to_array(p_ref, '/');
END $$;

-- Creates or replaces block 'type/name' after checking p_data against the type's schema (22023 with
-- every problem, nothing written, when it does not fit); returns its id.
CREATE FUNCTION pgflow.save_block(p_ref text, p_data jsonb, p_now timestamptz DEFAULT now()) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_ref    text[] := pgflow._block_ref(p_ref);
    v_schema jsonb;
    v_errors text[];
    v_id     uuid;
BEGIN
    SELECT schema INTO v_schema FROM pgflow.block_types WHERE slug = v_ref[1];
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown block type %', quote_literal(v_ref[1])
            USING ERRCODE = 'P0002', HINT = '`pgflow block types` lists them; create one with pgflow.create_block_type';
    END IF;
    IF v_ref[2] !~ '^[a-z0-9][a-z0-9_.-]{0,254}$' THEN
        RAISE EXCEPTION 'pgflow: invalid block name %', quote_literal(v_ref[2])
            USING ERRCODE = '22023', HINT = 'use lower-case letters, digits, _ . -';
    END IF;
    v_errors := pgflow.json_schema_errors(v_schema, p_data);
    IF p_data IS NULL OR cardinality(v_errors) > 0 THEN
        RAISE EXCEPTION 'pgflow: block % does not fit type %: %', p_ref, v_ref[1],
                        coalesce(array_to_string(v_errors, '; '), 'no data')
            USING ERRCODE = '22023', HINT = format('the schema of %s: %s', v_ref[1], v_schema::text);
    END IF;
    INSERT INTO pgflow.block_documents (block_type, name, data, created_at, updated_at)
    VALUES (v_ref[1], v_ref[2], p_data, p_now, p_now)
    ON CONFLICT (block_type, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- A block's data (secret fields still references); P0002 when there is none.
CREATE FUNCTION pgflow.get_block(p_ref text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ref  text[] := pgflow._block_ref(p_ref);
    v_data jsonb;
BEGIN
    SELECT data INTO v_data FROM pgflow.block_documents WHERE block_type = v_ref[1] AND name = v_ref[2];
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown block %', p_ref USING ERRCODE = 'P0002', HINT = '`pgflow block ls` lists them';
    END IF;
    RETURN v_data;
END $$;

CREATE FUNCTION pgflow.delete_block(p_ref text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_ref text[] := pgflow._block_ref(p_ref);
BEGIN
    DELETE FROM pgflow.block_documents WHERE block_type = v_ref[1] AND name = v_ref[2];
    RETURN FOUND;
END $$;

CREATE VIEW pgflow.block_list AS
SELECT b.block_type || '/' || b.name AS block, b.block_type, b.name, b.data, b.created_at, b.updated_at, b.id
  FROM pgflow.block_documents b;

CREATE VIEW pgflow.block_type_list AS
SELECT t.slug, t.description, t.builtin, (SELECT count(*) FROM pgflow.block_documents b WHERE b.block_type = t.slug) AS blocks,
       t.schema
  FROM pgflow.block_types t;

-- The built-in block types.
SELECT pgflow.create_block_type('webhook', '{
    "type": "object", "required": ["url"], "additionalProperties": false,
    "properties": {"url": {"type": "string"}, "method": {"enum": ["POST", "PUT", "GET"]},
                   "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                   "token": {"secret": true, "description": "sent as Authorization: Bearer"}}}',
    'An HTTP endpoint to call (URL, method, headers, an optional bearer token secret)');
SELECT pgflow.create_block_type('slack-webhook', '{
    "type": "object", "required": ["url"], "additionalProperties": false,
    "properties": {"url": {"secret": true, "description": "the incoming-webhook URL, a secret"},
                   "channel": {"type": "string"}}}',
    'A Slack incoming webhook (its URL is a secret)');
SELECT pgflow.create_block_type('database-credentials', '{
    "type": "object", "required": ["host", "database", "username"], "additionalProperties": false,
    "properties": {"driver": {"enum": ["postgresql", "mysql", "sqlite"]}, "host": {"type": "string"},
                   "port": {"type": "integer"}, "database": {"type": "string"}, "username": {"type": "string"},
                   "password": {"secret": true}, "sslmode": {"enum": ["disable", "prefer", "require", "verify-full"]}}}',
    'Credentials for a database (the password is a secret)');
SELECT pgflow.create_block_type('s3-bucket', '{
    "type": "object", "required": ["bucket"], "additionalProperties": false,
    "properties": {"bucket": {"type": "string"}, "prefix": {"type": "string"}, "endpoint_url": {"type": "string"},
                   "region": {"type": "string"}, "access_key_id": {"type": "string"}, "secret_access_key": {"secret": true}}}',
    'S3-compatible object storage (configuration only: pgflow cannot store results in S3 yet)');
SELECT pgflow.create_block_type('local-file-system', '{
    "type": "object", "required": ["basepath"], "additionalProperties": false,
    "properties": {"basepath": {"type": "string"}}}',
    'A directory on the machine that runs the flow (result storage)');
UPDATE pgflow.block_types SET builtin = true;

-- ============================================================================================
-- Pause with input: a flow declares the JSON schema of the input it waits for, pauses, and is resumed
-- with a value that must fit it (else 22023 and the run stays paused).
-- ============================================================================================
CREATE TABLE pgflow.flow_run_inputs (
    flow_run_id  uuid PRIMARY KEY REFERENCES pgflow.flow_runs ON DELETE CASCADE,
    schema       jsonb       NOT NULL,
    value        jsonb,
    requested_at timestamptz NOT NULL,
    received_at  timestamptz
);

-- Declares the input a flow run is about to wait for (before it pauses); clears an earlier value.
CREATE FUNCTION pgflow.request_flow_run_input(p_flow_run_id uuid, p_schema jsonb, p_now timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgflow.flow_runs WHERE id = p_flow_run_id) THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    PERFORM pgflow.check_json_schema(p_schema);
    INSERT INTO pgflow.flow_run_inputs (flow_run_id, schema, value, requested_at, received_at)
    VALUES (p_flow_run_id, p_schema, NULL, p_now, NULL)
    ON CONFLICT (flow_run_id) DO UPDATE SET schema = excluded.schema, value = NULL, requested_at = excluded.requested_at,
                                            received_at = NULL;
END $$;

-- Resumes a paused run with input: the input is checked against the schema the run declared (22023
-- listing every problem, the run stays paused) and stored; then as resume_flow_run(id). A function of
-- its own rather than a resume_flow_run overload: with one, resume_flow_run('<id>', '<time>') (two
-- untyped literals, as psql users write) could no longer choose between (uuid, timestamptz) and (uuid, jsonb).
CREATE FUNCTION pgflow.resume_flow_run_with_input(p_flow_run_id uuid, p_input jsonb, p_now timestamptz DEFAULT now())
RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_run    pgflow.flow_runs;
    v_schema jsonb;
    v_errors text[];
BEGIN
    SELECT * INTO v_run FROM pgflow.flow_runs WHERE id = p_flow_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id USING ERRCODE = 'P0002', HINT = 'check the id';
    END IF;
    IF v_run.state_type <> 'PAUSED' THEN
        RETURN ROW(v_run.id, 'REJECTED', format('only a PAUSED flow run can be resumed, this one is %s', v_run.state_type),
                   v_run.state_type, v_run.state_name, v_run.state_timestamp, v_run.next_scheduled_start,
                   v_run.run_count, NULL)::pgflow.transition_result;
    END IF;
    IF p_input IS NULL THEN
        RAISE EXCEPTION 'pgflow: resuming with input needs a JSON value' USING ERRCODE = '22023',
              HINT = 'pass a JSON value such as ''{"approved": true}'', or call pgflow.resume_flow_run(id) without input';
    END IF;
    SELECT schema INTO v_schema FROM pgflow.flow_run_inputs WHERE flow_run_id = p_flow_run_id;
    v_errors := pgflow.json_schema_errors(v_schema, p_input);
    IF cardinality(v_errors) > 0 THEN
        RAISE EXCEPTION 'pgflow: the input does not fit what flow run % waits for: %', p_flow_run_id, array_to_string(v_errors, '; ')
            USING ERRCODE = '22023', HINT = format('the run stays paused; the expected JSON schema: %s', v_schema::text);
    END IF;
    INSERT INTO pgflow.flow_run_inputs (flow_run_id, schema, value, requested_at, received_at)
    VALUES (p_flow_run_id, '{}', p_input, p_now, p_now)
    ON CONFLICT (flow_run_id) DO UPDATE SET value = excluded.value, received_at = excluded.received_at;
    RETURN pgflow.resume_flow_run(p_flow_run_id, p_now);
END $$;

-- The input a flow run was resumed with (NULL while it waits, or when none was given).
CREATE FUNCTION pgflow.flow_run_input(p_flow_run_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$ SELECT value FROM pgflow.flow_run_inputs WHERE flow_run_id = p_flow_run_id $$;

-- ============================================================================================
-- Privileges (the rule of docs/security.md)
-- ============================================================================================
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'pgflow'::regnamespace AND p.proname !~ '^_'
           AND p.proname IN ('check_json_schema', 'json_schema_errors', 'create_artifact', 'update_progress_artifact',
                             'delete_variable', 'resolve_parameters', 'set_secret', 'get_secret', 'delete_secret',
                             'rotate_secrets', 'set_deployment_secret_env', 'create_block_type', 'save_block', 'get_block',
                             'delete_block', 'request_flow_run_input', 'resume_flow_run_with_input', 'flow_run_input')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp', v_fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgflow_api, pgflow_admin', v_fn);
    END LOOP;
END $$;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
-- The agent and the flows it runs: artifacts, blocks and their schemas, the secrets a command's
-- environment maps (ciphertext only: the key stays with the agent), pause input.
GRANT EXECUTE ON FUNCTION
    pgflow.create_artifact(text, jsonb, text, text, uuid, uuid, timestamptz),
    pgflow.update_progress_artifact(uuid, float8, timestamptz),
    pgflow.get_block(text), pgflow.get_secret(text),
    pgflow.request_flow_run_input(uuid, jsonb, timestamptz), pgflow.flow_run_input(uuid)
    TO pgflow_agent;
GRANT SELECT ON pgflow.deployment_secret_env_list TO pgflow_agent;
GRANT SELECT ON pgflow.artifact_list, pgflow.latest_artifacts, pgflow.block_list, pgflow.block_type_list,
                pgflow.secret_list, pgflow.deployment_secret_env_list, pgflow.variable_list
    TO pgflow_reader, pgflow_api, pgflow_admin;
GRANT SELECT ON pgflow.artifacts, pgflow.block_documents, pgflow.block_types, pgflow.deployment_secret_env,
                pgflow.flow_run_inputs, pgflow.secrets
    TO pgflow_api, pgflow_admin;
