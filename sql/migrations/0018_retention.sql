-- 0018: retention in O(1) (issue 17): a day of history is removed by dropping that day's partitions,
-- not by deleting its rows. docs/scaling.md ("Retention in O(1)") has the design and the figures.
--
--   * Flow run ids are UUIDv7 (pgflow._uuid7(): 48-bit Unix milliseconds first), so an id carries the
--     moment its run was created. A task run's id carries its flow run's 48 bits (a trigger mints it), so
--     a task run, its states and its result live in its flow run's day.
--   * flow_runs (by id), flow_run_states (by flow_run_id), task_run_states (by task_run_id), results (by
--     run_id), logs and flow_run_tags (0016; by flow_run_id) are PARTITION BY RANGE on those ids, one
--     partition per UTC day (bounds: the UUIDv7 of each midnight, pgflow._uuid7_floor), all six on the same bounds, plus a
--     DEFAULT partition each (X_default): the rows from before this migration (random v4 ids: they sort
--     anywhere, no day range holds them) and any row that finds no day partition.
--   * pgflow.delete_old_runs (the scheduler's RetentionService, `pgflow db prune`) now first creates the
--     next days' partitions, then drops every day whose runs have all ended more than the retention age
--     ago (DROP TABLE of its six partitions, no row-by-row DELETE; a day with a run not ended, or ended
--     too recently, is kept), and only then deletes row by row what is left older than the age: runs in
--     the default partitions (the pre-0018 history, once) and finished runs of kept days.
--   * What is still deleted by row when a day is dropped, bounded by what that day has of each: its
--     task_runs rows (one per task run; task_runs is not partitioned, see docs/scaling.md), its
--     flow_run_inputs, its idempotency keys and schedule slots (pgflow.flow_run_keys), and its
--     artifacts' flow_run_id set to NULL (artifacts outlive runs, as before).
--   * Idempotency keys and one run per schedule slot stay global: a UNIQUE index on a partitioned table
--     must contain the partition key, so flow_runs_idempotency and flow_runs_scheduled move to
--     pgflow.flow_run_keys (one row per run that has a key or a slot), filled by a BEFORE INSERT trigger
--     on flow_runs that skips the row when its key or slot is taken — what ON CONFLICT DO NOTHING did
--     with the two unique indexes. The trigger fires only for rows with a key or a slot.
--   * Foreign keys INTO flow_runs cannot stay (a referenced partition cannot be dropped): task_runs,
--     flow_run_inputs and artifacts lose theirs; a statement trigger after DELETE on flow_runs does what
--     their ON DELETE actions did (cascade, cascade, set null).
-- No hot-path function changes: the id defaults and the triggers do it.

-- ============================================================================================
-- UUIDv7
-- ============================================================================================
-- pgflow._uuid7(at): RFC 9562 version 7: 48 bits of Unix milliseconds, the version nibble 7, then the
-- random bits (and variant) of a gen_random_uuid().
CREATE FUNCTION pgflow._uuid7(p_at timestamptz DEFAULT clock_timestamp()) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM p_at) * 1000)::bigint), 12, '0') || '7'
            || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid
$$;

-- The smallest UUIDv7 of an instant: the bound of a day's partitions is uuid7_floor(its midnight).
CREATE FUNCTION pgflow._uuid7_floor(p_at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM p_at) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

-- The instant a UUIDv7 was minted (meaningless for other versions).
CREATE FUNCTION pgflow._uuid7_time(p_id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(('x' || substr(replace(p_id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
$$;

-- A new id in the same millisecond (so the same day partition) as p_id: task run ids from their flow run's.
CREATE FUNCTION pgflow._uuid_beside(p_id uuid) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (substr(replace(p_id::text, '-', ''), 1, 12) || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid
$$;

-- The tables partitioned by day, each with its partition key, children before parents (drop order).
CREATE FUNCTION pgflow._history_tables() RETURNS TABLE (name text, key text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('logs', 'flow_run_id'), ('results', 'run_id'), ('task_run_states', 'task_run_id'),
           ('flow_run_states', 'flow_run_id'), ('flow_run_tags', 'flow_run_id'), ('flow_runs', 'id')
$$;

-- ============================================================================================
-- Views over the six tables: their definitions, to point them at the new tables
-- ============================================================================================
CREATE TEMP TABLE _pgflow_views AS
WITH RECURSIVE deps(oid) AS (
    SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
     WHERE d.refobjid IN ('pgflow.flow_runs'::regclass, 'pgflow.flow_run_states'::regclass, 'pgflow.task_run_states'::regclass,
                          'pgflow.results'::regclass, 'pgflow.logs'::regclass, 'pgflow.flow_run_tags'::regclass)
    UNION
    SELECT r.ev_class FROM deps JOIN pg_depend d ON d.refobjid = deps.oid
      JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
     WHERE r.ev_class <> deps.oid)
SELECT c.oid, c.relname::text AS name, '' AS def
  FROM pg_class c WHERE c.oid IN (SELECT oid FROM deps) AND c.relkind = 'v';

DO $$
DECLARE
    v_path text := current_setting('search_path');
BEGIN
    PERFORM set_config('search_path', 'pg_catalog', true);  -- definitions with every name qualified
    UPDATE _pgflow_views SET def = pg_get_viewdef(oid);
    PERFORM set_config('search_path', v_path, true);
END $$;

-- ============================================================================================
-- The six tables become partitioned; the old tables become their DEFAULT partitions
-- ============================================================================================
DROP INDEX pgflow.flow_runs_idempotency;   -- replaced by pgflow.flow_run_keys
DROP INDEX pgflow.flow_runs_scheduled;
ALTER TABLE pgflow.task_runs DROP CONSTRAINT task_runs_flow_run_id_fkey;
ALTER TABLE pgflow.flow_run_inputs DROP CONSTRAINT flow_run_inputs_flow_run_id_fkey;
ALTER TABLE pgflow.artifacts DROP CONSTRAINT artifacts_flow_run_id_fkey;
-- unique indexes must contain the partition key: a transition id is unique per run (it always was in
-- practice: a client mints one per transition of one run)
DROP INDEX pgflow.flow_run_states_transition;
DROP INDEX pgflow.task_run_states_transition;
ALTER TABLE pgflow.logs DROP CONSTRAINT logs_pkey;

DO $$
DECLARE
    t      record;
    v_old  text;
    i      record;
    v_next bigint;
    v_seq  text;
    v_path text := current_setting('search_path');
BEGIN
    PERFORM set_config('search_path', 'pg_catalog', true);  -- definitions with every name qualified
    FOR t IN SELECT * FROM pgflow._history_tables() LOOP
        v_old := t.name || '_default';
        EXECUTE format('ALTER TABLE pgflow.%I RENAME TO %I', t.name, v_old);
        -- the old indexes get the partition's name (the parent's take the old names)
        FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                  WHERE x.indrelid = format('pgflow.%I', v_old)::regclass LOOP
            EXECUTE format('ALTER INDEX pgflow.%I RENAME TO %I', i.relname,
                           v_old || substr(i.relname, length(t.name) + 1));
        END LOOP;
        -- identity columns cannot be partitioned in PostgreSQL 15: a sequence default, going on where it was
        v_seq := CASE WHEN EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = format('pgflow.%I', v_old)::regclass
                                      AND attname = 'id' AND attidentity <> '')
                      THEN pg_get_serial_sequence(format('pgflow.%I', v_old), 'id') END;
        IF v_seq IS NOT NULL THEN
            v_next := nextval(v_seq);
            EXECUTE format('ALTER TABLE pgflow.%I ALTER COLUMN id DROP IDENTITY', v_old);
            EXECUTE format('CREATE SEQUENCE pgflow.%I START %s', t.name || '_id_seq', v_next);
        END IF;
        EXECUTE format('CREATE TABLE pgflow.%I (LIKE pgflow.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (%I)',
                       t.name, v_old, t.key);
        IF v_seq IS NOT NULL THEN
            EXECUTE format('ALTER TABLE pgflow.%I ALTER COLUMN id SET DEFAULT nextval(%L)', t.name, 'pgflow.' || t.name || '_id_seq');
            EXECUTE format('ALTER SEQUENCE pgflow.%I OWNED BY pgflow.%I.id', t.name || '_id_seq', t.name);
        END IF;
        -- the parent's indexes and keys: the old table's, by definition (ATTACH then adopts them)
        FOR i IN SELECT c.relname, pg_get_indexdef(x.indexrelid) AS def, k.conname, pg_get_constraintdef(k.oid) AS condef
                   FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                   LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.contype IN ('p', 'u')
                  WHERE x.indrelid = format('pgflow.%I', v_old)::regclass ORDER BY c.oid LOOP
            IF i.conname IS NOT NULL THEN
                EXECUTE format('ALTER TABLE pgflow.%I ADD CONSTRAINT %I %s', t.name,
                               t.name || substr(i.conname, length(v_old) + 1), i.condef);
            ELSE
                EXECUTE replace(replace(i.def, ' ON pgflow.' || v_old || ' ', ' ON pgflow.' || t.name || ' '),
                                'INDEX ' || i.relname || ' ', 'INDEX ' || t.name || substr(i.relname, length(v_old) + 1) || ' ');
            END IF;
        END LOOP;
        -- foreign keys out of the table (to flows, deployments, work queues, task runs)
        FOR i IN SELECT conname, pg_get_constraintdef(oid) AS condef FROM pg_constraint
                  WHERE conrelid = format('pgflow.%I', v_old)::regclass AND contype = 'f' LOOP
            EXECUTE format('ALTER TABLE pgflow.%I ADD CONSTRAINT %I %s', t.name, i.conname, i.condef);
        END LOOP;
        -- statement triggers (events, NOTIFY) move to the parent
        FOR i IN SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger
                  WHERE tgrelid = format('pgflow.%I', v_old)::regclass AND NOT tgisinternal LOOP
            EXECUTE format('DROP TRIGGER %I ON pgflow.%I', i.tgname, v_old);
            EXECUTE replace(i.def, ' ON pgflow.' || v_old || ' ', ' ON pgflow.' || t.name || ' ');
        END LOOP;
        EXECUTE format('REVOKE ALL ON pgflow.%I FROM PUBLIC', t.name);
        -- the old table's grants (the API and the admin read every table; the agent reads results)
        FOR i IN SELECT a.privilege_type, a.grantee::regrole::text AS grantee
                   FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
                  WHERE c.oid = format('pgflow.%I', v_old)::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner LOOP
            EXECUTE format('GRANT %s ON pgflow.%I TO %I', i.privilege_type, t.name, i.grantee);
        END LOOP;
    END LOOP;
    PERFORM set_config('search_path', v_path, true);
END $$;

-- Lookups that the dropped unique indexes served, and the transition ids' uniqueness per run.
CREATE INDEX flow_runs_idempotency ON pgflow.flow_runs (flow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX flow_runs_scheduled ON pgflow.flow_runs (deployment_id, expected_start_time) WHERE deployment_schedule_id IS NOT NULL;
CREATE UNIQUE INDEX flow_run_states_transition ON pgflow.flow_run_states (transition_id, flow_run_id) WHERE transition_id IS NOT NULL;
CREATE UNIQUE INDEX task_run_states_transition ON pgflow.task_run_states (transition_id, task_run_id) WHERE transition_id IS NOT NULL;
CREATE INDEX logs_id ON pgflow.logs (flow_run_id, id);


ALTER TABLE pgflow.flow_runs ALTER COLUMN id SET DEFAULT pgflow._uuid7();

-- ============================================================================================
-- Day partitions
-- ============================================================================================
-- Creates the six partitions of one UTC day when they do not exist; rows of that day waiting in a
-- default partition move into them first. Each partition is made apart (LIKE the parent, the default
-- partition's storage settings) and ATTACHed: that locks the parent in SHARE UPDATE EXCLUSIVE mode only,
-- and the default partition (ACCESS EXCLUSIVE) for a scan that proves none of its rows belongs to the day.
-- On a database upgraded with history that scan reads only the small part of the old rows whose ids sort
-- before 20 years ahead (`<table>_legacy_lo`, ≈ 0.9 % of random v4 ids): the rest (`<table>_legacy`)
-- has a CHECK constraint that proves it holds no day's rows, and PostgreSQL skips it (see the end of this
-- migration). Tables busy for more than 500 ms: the day is made on a later call (nothing of it is kept
-- half made).
CREATE FUNCTION pgflow._ensure_history_day(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_lo      uuid := pgflow._uuid7_floor(p_day::timestamp AT TIME ZONE 'UTC');
    v_hi      uuid := pgflow._uuid7_floor((p_day + 1)::timestamp AT TIME ZONE 'UTC');
    v_made    boolean := false;
    v_part    text;
    v_cols    text;
    v_options text;
    t         record;
BEGIN
    FOR t IN SELECT * FROM pgflow._history_tables() ORDER BY name = 'flow_runs' DESC LOOP
        v_part := t.name || '_' || to_char(p_day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('pgflow.' || v_part) IS NOT NULL;
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
          FROM pg_attribute WHERE attrelid = format('pgflow.%I', t.name)::regclass AND attnum > 0 AND NOT attisdropped;
        -- the default partition's storage settings (its old rows' table when it is split, below)
        SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') INTO v_options
          FROM pg_class WHERE oid = coalesce(to_regclass(format('pgflow.%I', t.name || '_legacy')),
                                             format('pgflow.%I', t.name || '_default')::regclass);
        EXECUTE format('CREATE TABLE pgflow.%I (LIKE pgflow.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s',
                       v_part, t.name, v_options);
        EXECUTE format('REVOKE ALL ON pgflow.%I FROM PUBLIC', v_part);
        EXECUTE format('WITH m AS (DELETE FROM pgflow.%I WHERE %I >= %L AND %I < %L RETURNING %s) INSERT INTO pgflow.%I (%s) SELECT %s FROM m',
                       t.name || '_default', t.key, v_lo, t.key, v_hi, v_cols, v_part, v_cols, v_cols);
        EXECUTE format('ALTER TABLE pgflow.%I ATTACH PARTITION pgflow.%I FOR VALUES FROM (%L) TO (%L)', t.name, v_part, v_lo, v_hi);
        v_made := true;
    END LOOP;
    RETURN v_made;
EXCEPTION WHEN lock_not_available THEN  -- busy (lock_timeout): the next call makes the day (2 days ahead)
    RETURN false;
END $$;
ALTER FUNCTION pgflow._ensure_history_day(date) SET lock_timeout = '500ms';

-- The days (UTC dates) that have partitions, oldest first.
CREATE FUNCTION pgflow._history_days() RETURNS SETOF date
LANGUAGE sql STABLE AS $$
    SELECT to_date(substr(c.relname, 11), 'YYYYMMDD') AS day
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'pgflow.flow_runs'::regclass AND c.relname ~ '^flow_runs_[0-9]{8}$'
     ORDER BY 1
$$;

-- Whether a day's runs have all ended before p_cut (an empty day has).
CREATE FUNCTION pgflow._history_day_done(p_day date, p_cut timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r
                        WHERE r.id >= pgflow._uuid7_floor(p_day::timestamp AT TIME ZONE 'UTC')
                          AND r.id < pgflow._uuid7_floor((p_day + 1)::timestamp AT TIME ZONE 'UTC')
                          AND (r.state_type NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                               OR r.end_time IS NULL OR r.end_time >= p_cut))
$$;

-- Drops every day partition older than p_older_than whose runs have all ended more than p_older_than
-- ago; returns the number of runs they held, or NULL when the tables could not be locked within the
-- function's lock_timeout (busy: the caller tries again on its next pass). Dropping needs the six
-- parents in ACCESS EXCLUSIVE mode for a moment; lock_timeout (500 ms, below deadlock_timeout) keeps a
-- busy hot path from queueing behind it for long.
CREATE FUNCTION pgflow._drop_history_days(p_older_than interval, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cut    timestamptz := p_now - p_older_than;
    v_days   date[];
    v_day    date;
    v_lo     uuid;
    v_hi     uuid;
    v_runs   integer := 0;
    v_n      integer;
BEGIN
    v_days := ARRAY(SELECT d FROM pgflow._history_days() d
                     WHERE (d + 1)::timestamp AT TIME ZONE 'UTC' <= v_cut AND pgflow._history_day_done(d, v_cut));
    IF cardinality(v_days) = 0 THEN
        RETURN 0;
    END IF;
    BEGIN
        LOCK TABLE pgflow.flow_runs, pgflow.flow_run_states, pgflow.task_run_states, pgflow.results, pgflow.logs,
                   pgflow.flow_run_tags IN ACCESS EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    FOREACH v_day IN ARRAY v_days LOOP
        CONTINUE WHEN NOT pgflow._history_day_done(v_day, v_cut);  -- again, now that nothing can change
        v_lo := pgflow._uuid7_floor(v_day::timestamp AT TIME ZONE 'UTC');
        v_hi := pgflow._uuid7_floor((v_day + 1)::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('SELECT count(*) FROM pgflow.%I', 'flow_runs_' || to_char(v_day, 'YYYYMMDD')) INTO v_n;
        -- the residue, by row: what the day has of each (index range scans)
        DELETE FROM pgflow.task_runs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.flow_run_inputs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.flow_run_keys WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        UPDATE pgflow.artifacts SET flow_run_id = NULL WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        -- the day itself
        EXECUTE (SELECT 'DROP TABLE ' || string_agg(format('pgflow.%I', name || '_' || to_char(v_day, 'YYYYMMDD')), ', ')
                   FROM pgflow._history_tables());
        v_runs := v_runs + v_n;
    END LOOP;
    RETURN v_runs;
END $$;
ALTER FUNCTION pgflow._drop_history_days(interval, timestamptz) SET lock_timeout = '500ms';

-- The partitions of the day of p_now and of today, and of p_days_ahead days after each; returns how
-- many days got partitions.
CREATE FUNCTION pgflow._ensure_history_days(p_days_ahead integer, p_now timestamptz) RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE pgflow._ensure_history_day(d))::integer
      FROM (SELECT DISTINCT (s AT TIME ZONE 'UTC')::date + k AS d
              FROM unnest(ARRAY[p_now, clock_timestamp()]) s, generate_series(0, p_days_ahead) k
             ORDER BY 1) days
$$;

-- ============================================================================================
-- Global idempotency keys and schedule slots
-- ============================================================================================
CREATE TABLE pgflow.flow_run_keys (
    flow_run_id     uuid PRIMARY KEY,
    flow_id         uuid NOT NULL,
    idempotency_key text,
    deployment_id   uuid,
    slot            timestamptz
);
CREATE UNIQUE INDEX flow_run_keys_idempotency ON pgflow.flow_run_keys (flow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX flow_run_keys_slot ON pgflow.flow_run_keys (deployment_id, slot) WHERE slot IS NOT NULL;
REVOKE ALL ON pgflow.flow_run_keys FROM PUBLIC;
GRANT SELECT ON pgflow.flow_run_keys TO pgflow_api, pgflow_admin;

INSERT INTO pgflow.flow_run_keys (flow_run_id, flow_id, idempotency_key, deployment_id, slot)
SELECT id, flow_id, idempotency_key,
       CASE WHEN deployment_schedule_id IS NOT NULL THEN deployment_id END,
       CASE WHEN deployment_schedule_id IS NOT NULL THEN expected_start_time END
  FROM pgflow.flow_runs_default WHERE idempotency_key IS NOT NULL OR deployment_schedule_id IS NOT NULL;

-- A new run with an idempotency key or a schedule slot claims it in flow_run_keys; when another run has
-- it, the row is skipped (RETURNING returns nothing), as ON CONFLICT DO NOTHING did with the unique
-- indexes. Concurrent inserts of one key wait on the unique index, as they did. A run moved between
-- partitions (its row inserted again) keeps its own key.
CREATE FUNCTION pgflow._claim_flow_run_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgflow.flow_run_keys (flow_run_id, flow_id, idempotency_key, deployment_id, slot)
    VALUES (NEW.id, NEW.flow_id, NEW.idempotency_key,
            CASE WHEN NEW.deployment_schedule_id IS NOT NULL THEN NEW.deployment_id END,
            CASE WHEN NEW.deployment_schedule_id IS NOT NULL THEN NEW.expected_start_time END)
    ON CONFLICT DO NOTHING;
    IF FOUND OR EXISTS (SELECT 1 FROM pgflow.flow_run_keys WHERE flow_run_id = NEW.id) THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER flow_runs_keys BEFORE INSERT ON pgflow.flow_runs FOR EACH ROW
    WHEN (NEW.idempotency_key IS NOT NULL OR NEW.deployment_schedule_id IS NOT NULL)
    EXECUTE FUNCTION pgflow._claim_flow_run_key();

-- What the foreign keys into flow_runs did on DELETE (a dropped partition fires no trigger: the retention
-- does the same for its day, above).
CREATE FUNCTION pgflow._flow_runs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgflow.task_runs WHERE flow_run_id IN (SELECT id FROM old_rows);
    DELETE FROM pgflow.flow_run_inputs WHERE flow_run_id IN (SELECT id FROM old_rows);
    DELETE FROM pgflow.flow_run_keys WHERE flow_run_id IN (SELECT id FROM old_rows);
    UPDATE pgflow.artifacts SET flow_run_id = NULL WHERE flow_run_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
CREATE TRIGGER flow_runs_deleted AFTER DELETE ON pgflow.flow_runs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgflow._flow_runs_deleted();

-- Task run ids in their flow run's millisecond (so its day).
CREATE FUNCTION pgflow._task_run_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := pgflow._uuid_beside(NEW.flow_run_id);
    RETURN NEW;
END $$;
CREATE TRIGGER task_runs_id BEFORE INSERT ON pgflow.task_runs FOR EACH ROW EXECUTE FUNCTION pgflow._task_run_id();

-- ============================================================================================
-- The first days, then the old tables attached as the DEFAULT partitions
-- ============================================================================================
-- Day partitions from yesterday to 3 days ahead first (rows of those days that the old tables hold,
-- random v4 ids that happen to fall there, move in), then the old tables become the DEFAULT partitions.
--
-- An old table with rows is not attached as it is: its random v4 ids sort anywhere, ≈ 3 per 10 million
-- rows in each future day's range, so PostgreSQL would have to read all of it, holding the default
-- partition in ACCESS EXCLUSIVE mode (claims wait), each time delete_old_runs makes a day (0.35–0.70 s
-- per day at 200,000 old runs, tens of seconds at 10 million) until retention has deleted them. Instead
-- the default partition is itself partitioned by the same key, in two:
--   * <table>_legacy: the old table (no rewrite), its rows with ids from the first midnight 20 years
--     ahead on (≈ 99 % of random v4 ids), with CHECK (key >= that bound): PostgreSQL proves from it that
--     no row belongs to a new day and skips the table when a day partition is attached;
--   * <table>_legacy_lo: the rest (ids before that bound, ≈ 0.9 % of them; copied here at the upgrade),
--     the only part still read when a day is made (≈ 1,800 rows at 200,000 old runs).
-- An empty old table (a new database) stays the plain default partition. In 20 years the bound is
-- reached and days are made in _legacy's range: they are then checked by a scan of it, as before.
SELECT pgflow._ensure_history_day((now() AT TIME ZONE 'UTC')::date + k) FROM generate_series(-1, 3) k;
DO $$
DECLARE
    t      record;
    v_cut  uuid := pgflow._uuid7_floor(date_trunc('year', now() AT TIME ZONE 'UTC' + interval '21 years') AT TIME ZONE 'UTC');
    v_cols text;
    v_rows boolean;
    i      record;
BEGIN
    FOR t IN SELECT * FROM pgflow._history_tables() LOOP
        EXECUTE format('SELECT string_agg(quote_ident(attname), '', '' ORDER BY attnum) FROM pg_attribute
                         WHERE attrelid = %L::regclass AND attnum > 0 AND NOT attisdropped', 'pgflow.' || t.name) INTO v_cols;
        EXECUTE format('SELECT EXISTS (SELECT FROM pgflow.%I)', t.name || '_default') INTO v_rows;
        IF v_rows THEN
            EXECUTE format('ALTER TABLE pgflow.%I RENAME TO %I', t.name || '_default', t.name || '_legacy');
            FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                      WHERE x.indrelid = format('pgflow.%I', t.name || '_legacy')::regclass LOOP
                EXECUTE format('ALTER INDEX pgflow.%I RENAME TO %I', i.relname,
                               t.name || '_legacy' || substr(i.relname, length(t.name || '_default') + 1));
            END LOOP;
            EXECUTE format('CREATE TABLE pgflow.%I (LIKE pgflow.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (%I)',
                           t.name || '_default', t.name, t.key);
            EXECUTE format('CREATE TABLE pgflow.%I (LIKE pgflow.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s', t.name || '_legacy_lo', t.name,
                           (SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') FROM pg_class
                             WHERE oid = format('pgflow.%I', t.name || '_legacy')::regclass));
            EXECUTE format('WITH m AS (DELETE FROM pgflow.%I WHERE %I < %L RETURNING %s) INSERT INTO pgflow.%I (%s) SELECT %s FROM m',
                           t.name || '_legacy', t.key, v_cut, v_cols, t.name || '_legacy_lo', v_cols, v_cols);
            EXECUTE format('ALTER TABLE pgflow.%I ADD CONSTRAINT %I CHECK (%I >= %L::uuid)', t.name || '_legacy', t.name || '_legacy_ids', t.key, v_cut);
            EXECUTE format('ALTER TABLE pgflow.%I ATTACH PARTITION pgflow.%I FOR VALUES FROM (MINVALUE) TO (%L)',
                           t.name || '_default', t.name || '_legacy_lo', v_cut);
            EXECUTE format('ALTER TABLE pgflow.%I ATTACH PARTITION pgflow.%I FOR VALUES FROM (%L) TO (MAXVALUE)',
                           t.name || '_default', t.name || '_legacy', v_cut);
            EXECUTE format('REVOKE ALL ON pgflow.%I, pgflow.%I FROM PUBLIC, pgflow_api, pgflow_admin, pgflow_agent, pgflow_reader, pgflow_scheduler',
                           t.name || '_legacy', t.name || '_legacy_lo');
        END IF;
        EXECUTE format('ALTER TABLE pgflow.%I ATTACH PARTITION pgflow.%I DEFAULT', t.name, t.name || '_default');
    END LOOP;
END $$;
REVOKE ALL ON pgflow.flow_runs_default, pgflow.flow_run_states_default, pgflow.task_run_states_default, pgflow.results_default,
              pgflow.logs_default, pgflow.flow_run_tags_default FROM pgflow_api, pgflow_admin, pgflow_agent, pgflow_reader, pgflow_scheduler;

-- The views again, as they were, now over the partitioned tables (CREATE OR REPLACE keeps each view,
-- its grants and the functions that return its rows).
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT * FROM _pgflow_views ORDER BY oid LOOP
        EXECUTE format('CREATE OR REPLACE VIEW pgflow.%I AS %s', v.name, v.def);
    END LOOP;
END $$;
DROP TABLE _pgflow_views;

-- ============================================================================================
-- Retention: days dropped whole, then the rest by row
-- ============================================================================================
-- pgflow.delete_old_runs keeps its signature and checks (0003); its body now: the next days' partitions,
-- the old days dropped, then a batch of row deletes among what is left: finished runs created and ended
-- before the first midnight of the age (p_now - p_older_than, a day's granularity), that is runs of days
-- that are over the age but kept (a run in them has not ended, or ended too recently) and the runs in the
-- default partitions (the history from before 0018, once). A run whose day is not yet over the age waits
-- for its day's drop. Returns the runs removed (a dropped day counts its runs: more than p_batch).
CREATE OR REPLACE FUNCTION pgflow._delete_old_runs_unchecked(p_older_than interval, p_batch integer DEFAULT 1000,
                                                             p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ids     uuid[];
    v_tasks   uuid[];
    v_dropped integer;
    v_bound   timestamptz;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' OR p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'pgflow: retention needs a non-negative age and a batch of 1 or more (got %, %)',
                        coalesce(p_older_than::text, 'NULL'), coalesce(p_batch::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. SELECT pgflow.delete_old_runs(interval ''30 days'', 1000)';
    END IF;
    PERFORM pgflow._ensure_history_days(2, p_now);
    v_dropped := pgflow._drop_history_days(p_older_than, p_now);
    IF v_dropped IS NULL THEN  -- the tables were busy: drop first, on the next pass, then delete the rest
        RETURN 0;
    END IF;
    -- the first midnight of the age: the runs of days that are wholly older were created and ended before it
    v_bound := ((p_now - p_older_than) AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC';
    v_ids := ARRAY(SELECT id FROM pgflow.flow_runs
                    WHERE end_time IS NOT NULL AND end_time < v_bound AND created_at < v_bound
                      AND state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                    ORDER BY end_time LIMIT p_batch FOR UPDATE SKIP LOCKED);
    IF cardinality(v_ids) = 0 THEN
        RETURN v_dropped;
    END IF;
    v_tasks := ARRAY(SELECT id FROM pgflow.task_runs WHERE flow_run_id = ANY (v_ids));
    DELETE FROM pgflow.logs WHERE flow_run_id = ANY (v_ids);
    DELETE FROM pgflow.results WHERE run_id = ANY (v_ids) OR run_id = ANY (v_tasks);
    DELETE FROM pgflow.task_run_states WHERE task_run_id = ANY (v_tasks);
    DELETE FROM pgflow.task_runs WHERE id = ANY (v_tasks);
    DELETE FROM pgflow.flow_run_states WHERE flow_run_id = ANY (v_ids);
    DELETE FROM pgflow.flow_runs WHERE id = ANY (v_ids);
    DELETE FROM pgflow.task_run_cache WHERE cache_key IN (
        SELECT cache_key FROM pgflow.task_run_cache WHERE expires_at < p_now LIMIT p_batch);
    DELETE FROM pgflow.agents a WHERE a.status = 'OFFLINE' AND a.last_heartbeat_at < p_now - p_older_than
       AND NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r WHERE r.agent_id = a.id
                        AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING'));
    RETURN v_dropped + cardinality(v_ids);
END $$;

-- Privileges: only internal functions are new (delete_old_runs, granted to the scheduler since 0003,
-- runs them as the schema owner, who owns the partitions it creates and drops).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgflow FROM PUBLIC;
