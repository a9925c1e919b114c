-- 0019: retention in O(1) (issue 17): a week of history is removed by dropping that week's partitions,
-- not by deleting its rows. docs/scaling.md ("Retention in O(1)") has the design and the figures.
--
--   * Flow run ids are UUIDv7 (pgflow._uuid7(): 48-bit Unix milliseconds first), so an id carries the
--     moment its run was created. A task run's id carries its flow run's 48 bits (record_task_runs or a
--     trigger mints it), so a task run, its states and its result live in its flow run's week.
--   * flow_runs (by id), flow_run_states (by flow_run_id), task_run_states (by task_run_id), results (by
--     run_id), logs and flow_run_tags (0016; by flow_run_id) are PARTITION BY RANGE on those ids, one
--     partition per UTC week, Monday to Monday (bounds: the UUIDv7 of each Monday 00:00 UTC,
--     pgflow._uuid7_floor; partitions named <table>_wYYYYMMDD after the Monday), all six on the same
--     bounds, plus a DEFAULT partition each (X_default): the rows from before this migration (random v4
--     ids: they sort anywhere, no week's range holds them) and any row that finds no week partition. On a
--     database with history each default partition is split in two (X_legacy with a CHECK on its ids,
--     X_legacy_lo), so that making a week does not read the old rows (see "The first weeks" below).
--     Weeks, not days: each partition costs the hot path's cached plans (see "Week partitions").
--   * pgflow.delete_old_runs (the scheduler's RetentionService, `pgflow db prune`) now first creates the
--     partitions of this week (and the next, 2 days ahead), then drops every week whose runs have all
--     ended more than the retention age ago (DROP TABLE of its six partitions, no row-by-row DELETE; a
--     week with a run not ended, or ended too recently, is kept), and only then deletes row by row what
--     is left older than the age: runs in the default partitions (the pre-0019 history, once) and
--     finished runs of kept weeks. Retention works in weeks: a run is removed between the age and the
--     age + 7 days after it ended.
--   * What is still deleted by row when a week is dropped, bounded by what that week has of each: its
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
-- Three hot-path functions change (end of this file): the SDK's record_task_runs gives task runs their
-- ids itself; the claim and the fast completion bound their UPDATE joins by the batch's smallest and
-- largest id, so that flow_runs is pruned at executor start. Otherwise the id defaults and the triggers
-- do it.

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

-- The smallest UUIDv7 of an instant: the bound of a week's partitions is uuid7_floor(its Monday 00:00 UTC).
CREATE FUNCTION pgflow._uuid7_floor(p_at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM p_at) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

-- The instant a UUIDv7 was minted (meaningless for other versions).
CREATE FUNCTION pgflow._uuid7_time(p_id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(('x' || substr(replace(p_id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
$$;

-- A new id in the same millisecond (so the same week partition) as p_id: task run ids from their flow run's.
CREATE FUNCTION pgflow._uuid_beside(p_id uuid) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (substr(replace(p_id::text, '-', ''), 1, 12) || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid
$$;

-- The tables partitioned by week, each with its partition key, children before parents (drop order).
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
-- any other foreign key into the six tables (one a later migration added before this one) would keep
-- pointing at the old table, which becomes the default partition: refuse, rather than fail on new runs
DO $$
DECLARE
    v_fk text;
BEGIN
    SELECT string_agg(format('%s (%s)', conrelid::regclass, conname), ', ') INTO v_fk
      FROM pg_constraint
     WHERE contype = 'f' AND confrelid IN ('pgflow.flow_runs'::regclass, 'pgflow.flow_run_states'::regclass,
                                           'pgflow.task_run_states'::regclass, 'pgflow.results'::regclass,
                                           'pgflow.logs'::regclass, 'pgflow.flow_run_tags'::regclass);
    IF v_fk IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: the retention migration cannot partition the history: % still references it by a foreign key', v_fk
            USING HINT = 'drop that foreign key in this migration, as task_runs'' is, and do its ON DELETE action in pgflow._flow_runs_deleted()';
    END IF;
END $$;
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
-- Week partitions
-- ============================================================================================
-- A week is a UTC week from Monday 00:00 to the next Monday 00:00 (ISO weeks); its partitions are
-- named <table>_wYYYYMMDD after its Monday and bounded by the UUIDv7 of the two Mondays. Weeks, not days:
-- PostgreSQL 15's cached generic plans lock and set up every partition of a table on each call, so the
-- hot path's cost grows with the number of partitions (36 day partitions for a 30-day retention cost the
-- drain +31-33 % PostgreSQL CPU per run); a 30-day retention keeps 5 or 6 weeks (docs/scaling.md).

-- The Monday of the UTC week of p_at.
CREATE FUNCTION pgflow._history_week(p_at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc('week', p_at AT TIME ZONE 'UTC')::date
$$;

-- The bounds of the week that starts on Monday p_week: the UUIDv7 floors of its Monday and the next.
CREATE FUNCTION pgflow._history_week_lo(p_week date) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pgflow._uuid7_floor(p_week::timestamp AT TIME ZONE 'UTC')
$$;
CREATE FUNCTION pgflow._history_week_hi(p_week date) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pgflow._uuid7_floor((p_week + 7)::timestamp AT TIME ZONE 'UTC')
$$;

-- Creates the six partitions of the UTC week of p_day (any day of it) when they do not exist; rows of
-- that week waiting in a default partition move into them first. Each partition is made apart (LIKE the
-- parent with its indexes, the default partition's storage settings), then the six are ATTACHed
-- together: that locks the parent in SHARE UPDATE EXCLUSIVE mode only, and the default partition
-- (ACCESS EXCLUSIVE, until the transaction ends) for a scan that proves none of its rows belongs to the
-- week. On a database upgraded with history that scan reads only the small part of the old rows whose ids
-- sort before 20 years ahead (`<table>_legacy_lo`, ≈ 0.9 % of random v4 ids): the rest (`<table>_legacy`)
-- has a CHECK constraint that proves it holds no week's rows, and PostgreSQL skips it (see the end of this
-- migration). Tables busy for more than 500 ms: the week is made on a later call (nothing of it is kept
-- half made). Returns whether partitions were made.
CREATE FUNCTION pgflow._ensure_history_week(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_week    date := pgflow._history_week(p_day::timestamp AT TIME ZONE 'UTC');
    v_lo      uuid := pgflow._history_week_lo(v_week);
    v_hi      uuid := pgflow._history_week_hi(v_week);
    v_new     text[] := '{}';  -- the tables whose partition of the week is made here
    v_part    text;
    v_cols    text;
    v_options text;
    t         record;
BEGIN
    -- first each partition apart, with its indexes (copies of the parent's, which ATTACH adopts instead of
    -- building), and the week's rows waiting in the default partition: no lock that stops the hot path
    FOR t IN SELECT * FROM pgflow._history_tables() LOOP
        v_part := t.name || '_w' || to_char(v_week, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('pgflow.' || v_part) IS NOT NULL;
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
          FROM pg_attribute WHERE attrelid = format('pgflow.%I', t.name)::regclass AND attnum > 0 AND NOT attisdropped;
        -- the default partition's storage settings (its old rows' table when it is split, below)
        SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') INTO v_options
          FROM pg_class WHERE oid = coalesce(to_regclass(format('pgflow.%I', t.name || '_legacy')),
                                             format('pgflow.%I', t.name || '_default')::regclass);
        EXECUTE format('CREATE TABLE pgflow.%I (LIKE pgflow.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)%s',
                       v_part, t.name, v_options);
        EXECUTE format('REVOKE ALL ON pgflow.%I FROM PUBLIC', v_part);
        EXECUTE format('WITH m AS (DELETE FROM pgflow.%I WHERE %I >= %L AND %I < %L RETURNING %s) INSERT INTO pgflow.%I (%s) SELECT %s FROM m',
                       t.name || '_default', t.key, v_lo, t.key, v_hi, v_cols, v_part, v_cols, v_cols);
        v_new := v_new || t.name;
    END LOOP;
    -- then the six ATTACHes, back to back: each holds its default partition in ACCESS EXCLUSIVE mode (the
    -- hot path waits) until the transaction ends; flow_runs first, the order in which the hot path locks
    FOR t IN SELECT * FROM pgflow._history_tables() WHERE name = ANY (v_new) ORDER BY name = 'flow_runs' DESC LOOP
        EXECUTE format('ALTER TABLE pgflow.%I ATTACH PARTITION pgflow.%I FOR VALUES FROM (%L) TO (%L)',
                       t.name, t.name || '_w' || to_char(v_week, 'YYYYMMDD'), v_lo, v_hi);
    END LOOP;
    RETURN cardinality(v_new) > 0;
EXCEPTION WHEN lock_not_available THEN  -- busy (lock_timeout): a later call makes the week (2 days ahead)
    RETURN false;
END $$;
ALTER FUNCTION pgflow._ensure_history_week(date) SET lock_timeout = '500ms';

-- The weeks (their Mondays) that have partitions, oldest first.
CREATE FUNCTION pgflow._history_weeks() RETURNS SETOF date
LANGUAGE sql STABLE AS $$
    SELECT to_date(substr(c.relname, 12), 'YYYYMMDD') AS week
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'pgflow.flow_runs'::regclass AND c.relname ~ '^flow_runs_w[0-9]{8}$'
     ORDER BY 1
$$;

-- Whether the runs of the week starting on Monday p_week have all ended before p_cut (an empty week has).
CREATE FUNCTION pgflow._history_week_done(p_week date, p_cut timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pgflow.flow_runs r
                        WHERE r.id >= pgflow._history_week_lo(p_week) AND r.id < pgflow._history_week_hi(p_week)
                          AND (r.state_type NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')
                               OR r.end_time IS NULL OR r.end_time >= p_cut))
$$;

-- Drops every week's partitions that ended more than p_older_than ago and whose runs have all ended more
-- than p_older_than ago; returns the number of runs they held, or NULL when the tables could not be
-- locked within the function's lock_timeout (busy: the caller tries again on its next pass). Dropping
-- needs the six parents in ACCESS EXCLUSIVE mode for a moment; lock_timeout (500 ms, below
-- deadlock_timeout) keeps a busy hot path from queueing behind it for long.
CREATE FUNCTION pgflow._drop_history_weeks(p_older_than interval, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cut    timestamptz := p_now - p_older_than;
    v_weeks  date[];
    v_week   date;
    v_lo     uuid;
    v_hi     uuid;
    v_runs   integer := 0;
    v_n      integer;
BEGIN
    v_weeks := ARRAY(SELECT w FROM pgflow._history_weeks() w
                      WHERE (w + 7)::timestamp AT TIME ZONE 'UTC' <= v_cut AND pgflow._history_week_done(w, v_cut));
    IF cardinality(v_weeks) = 0 THEN
        RETURN 0;
    END IF;
    BEGIN
        LOCK TABLE pgflow.flow_runs, pgflow.flow_run_states, pgflow.task_run_states, pgflow.results, pgflow.logs,
                   pgflow.flow_run_tags IN ACCESS EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    FOREACH v_week IN ARRAY v_weeks LOOP
        CONTINUE WHEN NOT pgflow._history_week_done(v_week, v_cut);  -- again, now that nothing can change
        v_lo := pgflow._history_week_lo(v_week);
        v_hi := pgflow._history_week_hi(v_week);
        EXECUTE format('SELECT count(*) FROM pgflow.%I', 'flow_runs_w' || to_char(v_week, 'YYYYMMDD')) INTO v_n;
        -- the residue, by row: what the week has of each (index range scans)
        DELETE FROM pgflow.task_runs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.flow_run_inputs WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        DELETE FROM pgflow.flow_run_keys WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        UPDATE pgflow.artifacts SET flow_run_id = NULL WHERE flow_run_id >= v_lo AND flow_run_id < v_hi;
        -- the week itself
        EXECUTE (SELECT 'DROP TABLE ' || string_agg(format('pgflow.%I', name || '_w' || to_char(v_week, 'YYYYMMDD')), ', ')
                   FROM pgflow._history_tables());
        v_runs := v_runs + v_n;
    END LOOP;
    RETURN v_runs;
END $$;
ALTER FUNCTION pgflow._drop_history_weeks(interval, timestamptz) SET lock_timeout = '500ms';

-- The partitions of the weeks of p_now and of today, and of the weeks of the p_days_ahead days after each
-- (so a week is made up to that many days before it starts); returns how many weeks got partitions.
CREATE FUNCTION pgflow._ensure_history_weeks(p_days_ahead integer, p_now timestamptz) RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE pgflow._ensure_history_week(w))::integer
      FROM (SELECT DISTINCT pgflow._history_week(s + make_interval(days => k)) AS w
              FROM unnest(ARRAY[p_now, clock_timestamp()]) s, generate_series(0, p_days_ahead) k
             ORDER BY 1) weeks
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
-- does the same for its week, above).
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

-- Task run ids in their flow run's millisecond (so its week). The SDK's record_task_runs (below) gives
-- each new task run its id itself (pgflow._uuid_beside, inlined: a PL/pgSQL row trigger cost ≈ 5 µs a
-- task run, ≈ 7 % of PostgreSQL's CPU per SDK task); any other INSERT leaves id NULL (the column has no
-- default any more) and this trigger mints it.
ALTER TABLE pgflow.task_runs ALTER COLUMN id DROP DEFAULT;
CREATE FUNCTION pgflow._task_run_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := pgflow._uuid_beside(NEW.flow_run_id);
    RETURN NEW;
END $$;
CREATE TRIGGER task_runs_id BEFORE INSERT ON pgflow.task_runs FOR EACH ROW WHEN (NEW.id IS NULL)
    EXECUTE FUNCTION pgflow._task_run_id();

-- ============================================================================================
-- The first weeks, then the old tables attached as the DEFAULT partitions
-- ============================================================================================
-- The partitions of this week (and of the next when it starts within 2 days) first (rows of those weeks
-- that the old tables hold, random v4 ids that happen to fall there, move in), then the old tables
-- become the DEFAULT partitions.
--
-- An old table with rows is not attached as it is: its random v4 ids sort anywhere, ≈ 20 per 10 million
-- rows in each future week's range, so PostgreSQL would have to read all of it, holding the default
-- partition in ACCESS EXCLUSIVE mode (claims wait), each time delete_old_runs makes a week (0.35–0.70 s
-- at 200,000 old runs, tens of seconds at 10 million) until retention has deleted them. Instead the
-- default partition is itself partitioned by the same key, in two:
--   * <table>_legacy: the old table (no rewrite), its rows with ids from the first midnight 20 years
--     ahead on (≈ 99 % of random v4 ids), with CHECK (key >= that bound): PostgreSQL proves from it that
--     no row belongs to a new week and skips the table when a week's partition is attached;
--   * <table>_legacy_lo: the rest (ids before that bound, ≈ 0.9 % of them; copied here at the upgrade),
--     the only part still read when a week is made (≈ 1,800 rows at 200,000 old runs).
-- An empty old table (a new database) stays the plain default partition. In 20 years the bound is
-- reached and weeks are made in _legacy's range: they are then checked by a scan of it, as before.
SELECT pgflow._ensure_history_weeks(2, now());
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
-- Retention: weeks dropped whole, then the rest by row
-- ============================================================================================
-- pgflow.delete_old_runs keeps its signature and checks (0003); its body now: the partitions of this week
-- and of the next when it starts within 2 days, the old weeks dropped, then a batch of row deletes among
-- what is left: finished runs created and ended before the first Monday 00:00 UTC of the age (the start of
-- the UTC week of p_now - p_older_than), that is runs of weeks that are over the age but kept (a run in
-- them has not ended, or ended too recently) and the runs in the default partitions (the history from
-- before this migration, once). A run whose week is not yet over the age waits for its week's drop.
-- Retention therefore works in weeks: a finished run is removed between p_older_than and p_older_than +
-- 7 days after it ended (the scheduler's pass and its batches aside). Returns the runs removed (a
-- dropped week counts its runs: more than p_batch).
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
    PERFORM pgflow._ensure_history_weeks(2, p_now);
    v_dropped := pgflow._drop_history_weeks(p_older_than, p_now);
    IF v_dropped IS NULL THEN  -- the tables were busy: drop first, on the next pass, then delete the rest
        RETURN 0;
    END IF;
    -- the first Monday 00:00 UTC of the age: the runs of weeks that are wholly older were created and ended before it
    v_bound := pgflow._history_week(p_now - p_older_than)::timestamp AT TIME ZONE 'UTC';
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

-- ============================================================================================
-- The SDK's record_task_runs (0015), two changes: each new task run gets its id in the INSERT, in its
-- flow run's millisecond (no row trigger), and the flow run's state is read with the id's value
-- (EXECUTE: planned for one partition; the function's generic plans would plan and lock all of them).
-- Its arguments, checks, rules and result are 0015's.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow.record_task_runs(
    p_flow_run_id              uuid,
    p_task_keys                text[],
    p_dynamic_keys             text[]        DEFAULT NULL,
    p_names                    text[]        DEFAULT NULL,
    p_inputs                   jsonb[]       DEFAULT NULL,
    p_tags                     text[]        DEFAULT NULL,
    p_cache_keys               text[]        DEFAULT NULL,
    p_cache_expirations        interval[]    DEFAULT NULL,
    p_retries                  integer[]     DEFAULT NULL,
    p_retry_delays             text[]        DEFAULT NULL,
    p_retry_backoffs           text[]        DEFAULT NULL,
    p_retry_jitters            float8[]      DEFAULT NULL,
    p_created_at               timestamptz[] DEFAULT NULL,
    p_cache_refresh            boolean[]     DEFAULT NULL,
    p_started_at               timestamptz[] DEFAULT NULL,
    p_start_transition_ids     uuid[]        DEFAULT NULL,
    p_completed_at             timestamptz[] DEFAULT NULL,
    p_results                  jsonb[]       DEFAULT NULL,
    p_complete_transition_ids  uuid[]        DEFAULT NULL,
    p_now                      timestamptz   DEFAULT now()
) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_n     integer := coalesce(cardinality(p_task_keys), 0);
    v_state pgflow.state_type;
    v_bad   record;
    v_ids   uuid[];
    v_slow  integer[];  -- ordinals of started runs that take the general path
BEGIN
    PERFORM pgflow._check_batch(v_n, 'record_task_runs');
    -- planned with the id's value (EXECUTE), so pruned to its week's partition when planned: a cached
    -- generic plan would plan and lock every partition of flow_runs
    EXECUTE 'SELECT state_type FROM pgflow.flow_runs WHERE id = $1' INTO v_state USING p_flow_run_id;
    IF v_state IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown flow run %', p_flow_run_id
            USING ERRCODE = 'P0002', HINT = 'create the flow run first (pgflow.create_flow_run or pgflow.run_deployment)';
    END IF;
    IF p_task_keys IS NULL
       OR coalesce(cardinality(p_dynamic_keys), v_n) <> v_n OR coalesce(cardinality(p_names), v_n) <> v_n
       OR coalesce(cardinality(p_inputs), v_n) <> v_n OR coalesce(cardinality(p_tags), v_n) <> v_n
       OR coalesce(cardinality(p_cache_keys), v_n) <> v_n OR coalesce(cardinality(p_cache_expirations), v_n) <> v_n
       OR coalesce(cardinality(p_retries), v_n) <> v_n OR coalesce(cardinality(p_retry_delays), v_n) <> v_n
       OR coalesce(cardinality(p_retry_backoffs), v_n) <> v_n OR coalesce(cardinality(p_retry_jitters), v_n) <> v_n
       OR coalesce(cardinality(p_created_at), v_n) <> v_n OR coalesce(cardinality(p_cache_refresh), v_n) <> v_n
       OR coalesce(cardinality(p_started_at), v_n) <> v_n OR coalesce(cardinality(p_start_transition_ids), v_n) <> v_n
       OR coalesce(cardinality(p_completed_at), v_n) <> v_n OR coalesce(cardinality(p_results), v_n) <> v_n
       OR coalesce(cardinality(p_complete_transition_ids), v_n) <> v_n THEN
        RAISE EXCEPTION 'pgflow: the arrays of a batch of task runs must be of one length (% task keys)', v_n
            USING ERRCODE = '22023', HINT = 'pass one element per task key in every array, or NULL for an array of defaults';
    END IF;
    IF v_n = 0 THEN
        RETURN;
    END IF;
    p_inputs := coalesce(p_inputs, array_fill('{}'::jsonb, ARRAY[v_n]));
    p_retries := coalesce(p_retries, array_fill(0, ARRAY[v_n]));
    p_retry_delays := coalesce(p_retry_delays, array_fill('{0}'::text, ARRAY[v_n]));
    p_retry_backoffs := coalesce(p_retry_backoffs, array_fill('fixed'::text, ARRAY[v_n]));
    p_retry_jitters := coalesce(p_retry_jitters, array_fill(0::float8, ARRAY[v_n]));
    p_started_at := coalesce(p_started_at, array_fill(NULL::timestamptz, ARRAY[v_n]));
    p_completed_at := coalesce(p_completed_at, array_fill(NULL::timestamptz, ARRAY[v_n]));

    -- the checks of create_task_runs (0002, 0003), with its messages
    -- (a name of printable ASCII without leading or trailing space, 1 to 255 long, passes _check_name:
    -- only the others are checked by it, which saves three regular expressions per task run name)
    PERFORM pgflow._check_name(k, 'task key') FROM (SELECT DISTINCT k FROM unnest(p_task_keys) k WHERE k <> '') t
      WHERE NOT (char_length(k) <= 255 AND k ~ '^[!-~]([ -~]*[!-~])?$');
    PERFORM pgflow._check_name(n, 'task run name') FROM (SELECT DISTINCT n FROM unnest(p_names) n WHERE n IS NOT NULL) t
      WHERE NOT (char_length(n) <= 255 AND n ~ '^[!-~]([ -~]*[!-~])?$');
    PERFORM pgflow._check_number(extract(epoch FROM e)::float8, 'a cache expiration (in seconds)', 0, 3153600000)
       FROM unnest(p_cache_expirations) e WHERE e >= interval '0';
    SELECT x.ord, x.k, x.i, x.ce INTO v_bad
      FROM unnest(p_task_keys, p_inputs, p_cache_expirations) WITH ORDINALITY x(k, i, ce, ord)
     WHERE x.k IS NULL OR x.k = '' OR x.i IS NULL OR x.ce < interval '0'
     ORDER BY x.ord LIMIT 1;
    IF v_bad.ord IS NOT NULL THEN
        IF v_bad.k IS NULL OR v_bad.k = '' THEN
            RAISE EXCEPTION 'pgflow: a task run needs a task key'
                USING ERRCODE = '22023', HINT = 'pass the task''s stable name, e.g. ''extract''';
        ELSIF v_bad.i IS NULL THEN
            RAISE EXCEPTION 'pgflow: task inputs must not be NULL' USING ERRCODE = '22023', HINT = 'pass ''{}'' for none';
        ELSE
            RAISE EXCEPTION 'pgflow: cache expiration must not be negative, got %', v_bad.ce
                USING ERRCODE = '22023', HINT = 'pass a positive interval, or NULL for never';
        END IF;
    END IF;
    PERFORM pgflow._check_retry_policy(r.retries, r.backoff, r.delays::float8[], r.jitter)
       FROM (SELECT DISTINCT x.retries, x.backoff, x.delays, x.jitter
               FROM unnest(p_retries, p_retry_backoffs, p_retry_delays, p_retry_jitters) x(retries, backoff, delays, jitter)) r;
    -- what is new here: times that make sense, each task run once
    SELECT x.ord, x.s, x.c INTO v_bad
      FROM unnest(p_started_at, p_completed_at) WITH ORDINALITY x(s, c, ord)
     WHERE (x.c IS NOT NULL AND x.s IS NULL) OR NOT isfinite(x.s) OR NOT isfinite(x.c)
     ORDER BY x.ord LIMIT 1;
    IF v_bad.ord IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: task run % of the batch has % (start %, end %)', v_bad.ord,
                        CASE WHEN v_bad.s IS NULL THEN 'an end time but no start time' ELSE 'an infinite time' END, v_bad.s, v_bad.c
            USING ERRCODE = '22023', HINT = 'give every ended run its start time, and finite times';
    END IF;
    IF v_n > 1 AND (SELECT count(*) FROM (SELECT DISTINCT x.k, coalesce(x.d, '0') FROM unnest(p_task_keys, p_dynamic_keys) x(k, d)) u) <> v_n THEN
        RAISE EXCEPTION 'pgflow: a batch of recorded task runs names a (task key, dynamic key) twice'
            USING ERRCODE = '22023', HINT = 'record each task run once per call';
    END IF;
    IF pgflow.is_terminal(v_state) AND EXISTS (
            SELECT 1 FROM unnest(p_task_keys, p_dynamic_keys) x(k, d)
             WHERE NOT EXISTS (SELECT 1 FROM pgflow.task_runs t
                                WHERE t.flow_run_id = p_flow_run_id AND t.task_key = x.k AND t.dynamic_key = coalesce(x.d, '0'))) THEN
        RAISE EXCEPTION 'pgflow: flow run % is %, it cannot get new task runs', p_flow_run_id, v_state
            USING ERRCODE = '55000', HINT = 'create task runs while the flow run is RUNNING';
    END IF;

    WITH x AS MATERIALIZED (
        SELECT x.ord, x.k, coalesce(x.d, '0') AS d, x.n, x.i, x.t, x.ck, x.ce, x.r, x.rd, x.rb, x.rj, x.ts, x.cr,
               -- the fast path: started, no tag limit to wait for, no cache entry to look up
               x.s IS NOT NULL AND (x.t IS NULL OR x.t = '{}') AND (x.ck IS NULL OR x.cr) AS fast,
               CASE WHEN x.s IS NOT NULL THEN greatest(x.s, x.ts) END AS s,  -- (greatest skips NULLs)
               CASE WHEN x.c IS NOT NULL THEN greatest(x.c, x.s, x.ts) END AS c, x.res, x.sid, x.cid
          FROM (SELECT x.ord, x.k, x.d, x.n, x.i, x.t, x.ck, x.ce, x.r, x.rd, x.rb, x.rj, coalesce(x.ts, p_now) AS ts,
                       coalesce(x.cr, false) AS cr, x.s, x.c, x.res, x.sid, x.cid
                  FROM unnest(p_task_keys, p_dynamic_keys, p_names, p_inputs, p_tags, p_cache_keys, p_cache_expirations,
                              p_retries, p_retry_delays, p_retry_backoffs, p_retry_jitters, p_created_at, p_cache_refresh,
                              p_started_at, p_completed_at, p_results, p_start_transition_ids, p_complete_transition_ids)
                       WITH ORDINALITY AS x(k, d, n, i, t, ck, ce, r, rd, rb, rj, ts, cr, s, c, res, sid, cid, ord)) x),
    ins AS (
        INSERT INTO pgflow.task_runs (id, flow_run_id, task_key, dynamic_key, name, inputs, tags, cache_key, cache_expiration,
                                          cache_refresh, retries, retry_delays, retry_backoff, retry_jitter, run_count,
                                          expected_start_time, start_time, end_time, total_run_time,
                                          state_type, state_name, state_timestamp, created_at)
        SELECT pgflow._uuid_beside(p_flow_run_id), p_flow_run_id, x.k, x.d, coalesce(x.n, x.k || '-' || x.d), x.i,
               CASE WHEN x.t IS NULL OR x.t = '{}' THEN '{}' ELSE pgflow._check_tags(x.t::text[]) END,
               x.ck, x.ce, x.cr, x.r, x.rd::float8[], x.rb, x.rj, CASE WHEN x.fast THEN 1 ELSE 0 END,
               x.ts, CASE WHEN x.fast THEN x.s END, CASE WHEN x.fast THEN x.c END,
               CASE WHEN x.fast AND x.c IS NOT NULL THEN x.c - x.s ELSE interval '0' END,
               CASE WHEN NOT x.fast THEN 'PENDING' WHEN x.c IS NULL THEN 'RUNNING' ELSE 'COMPLETED' END::pgflow.state_type,
               CASE WHEN NOT x.fast THEN 'Pending' WHEN x.c IS NULL THEN 'Running' ELSE 'Completed' END,
               CASE WHEN NOT x.fast THEN x.ts ELSE coalesce(x.c, x.s) END, x.ts
          FROM x ORDER BY x.ord
        ON CONFLICT (flow_run_id, task_key, dynamic_key) DO NOTHING
        RETURNING id, task_key, dynamic_key),
    made AS (SELECT x.*, i.id FROM x JOIN ins i ON i.task_key = x.k AND i.dynamic_key = x.d),
    hist AS (
        INSERT INTO pgflow.task_run_states (task_run_id, state_type, state_name, "timestamp", transition_id)
        SELECT h.id, h.type, h.name, h.at, h.tid
          FROM (SELECT m.id, m.ord, 1 AS step, 'PENDING'::pgflow.state_type AS type, 'Pending' AS name, m.ts AS at, NULL::uuid AS tid
                  FROM made m
                UNION ALL
                SELECT m.id, m.ord, 2, 'RUNNING', 'Running', m.s, m.sid FROM made m WHERE m.fast
                UNION ALL
                SELECT m.id, m.ord, 3, 'COMPLETED', 'Completed', m.c, m.cid FROM made m WHERE m.fast AND m.c IS NOT NULL) h
         ORDER BY h.ord, h.step),
    results AS (
        INSERT INTO pgflow.results (run_id, value, created_at)
        SELECT m.id, m.res, m.c FROM made m WHERE m.fast AND m.c IS NOT NULL AND m.res IS NOT NULL),
    cache AS (
        INSERT INTO pgflow.task_run_cache (cache_key, value, task_run_id, created_at, expires_at)
        SELECT m.ck, coalesce(m.res, 'null'), m.id, m.c, m.c + m.ce
          FROM made m WHERE m.fast AND m.c IS NOT NULL AND m.ck IS NOT NULL
        ON CONFLICT (cache_key) DO UPDATE SET value = excluded.value, task_run_id = excluded.task_run_id,
                                              created_at = excluded.created_at, expires_at = excluded.expires_at)
    SELECT array_agg(m.id ORDER BY x.ord), array_agg(x.ord ORDER BY x.ord) FILTER (WHERE x.s IS NOT NULL AND NOT coalesce(m.fast, false))
      INTO v_ids, v_slow
      FROM x LEFT JOIN made m ON m.ord = x.ord;

    IF array_position(v_ids, NULL) IS NOT NULL THEN  -- existing task runs (this statement sees ones a concurrent call just made)
        v_ids := ARRAY(SELECT coalesce(v_ids[x.ord], t.id)
                         FROM unnest(p_task_keys, p_dynamic_keys) WITH ORDINALITY x(k, d, ord)
                         LEFT JOIN pgflow.task_runs t
                                ON t.flow_run_id = p_flow_run_id AND t.task_key = x.k AND t.dynamic_key = coalesce(x.d, '0')
                        ORDER BY x.ord);
    END IF;

    -- the general path: Running, then Completed, by the rules of set_task_run_states
    IF cardinality(v_slow) > 0 THEN
        PERFORM 1 FROM pgflow._transition_task_runs_isolated(
            ARRAY(SELECT ROW(v_ids[o], 'RUNNING', 'Running', NULL, NULL, NULL, NULL, p_start_transition_ids[o], NULL)::pgflow._proposal
                    FROM unnest(v_slow) o ORDER BY o),
            true, p_now, ARRAY(SELECT p_started_at[o] FROM unnest(v_slow) o ORDER BY o));
        v_slow := ARRAY(SELECT o FROM unnest(v_slow) o WHERE p_completed_at[o] IS NOT NULL ORDER BY o);
        IF cardinality(v_slow) > 0 THEN
            PERFORM 1 FROM pgflow._transition_task_runs_isolated(
                ARRAY(SELECT ROW(v_ids[o], 'COMPLETED', 'Completed', NULL, p_results[o], NULL, NULL, p_complete_transition_ids[o],
                                 NULL)::pgflow._proposal
                        FROM unnest(v_slow) o ORDER BY o),
                true, p_now, ARRAY(SELECT p_completed_at[o] FROM unnest(v_slow) o ORDER BY o));
        END IF;
    END IF;
    RETURN QUERY SELECT x.id FROM unnest(v_ids) WITH ORDINALITY x(id, ord) ORDER BY x.ord;
END $$;

-- ============================================================================================
-- The claim and the fast completion (0017's bodies, at main 5e77851), one change: their lookups of the
-- runs (the locking reads and the UPDATE joins) also bound the runs' ids by the smallest and the largest
-- of the batch (plain uuid parameters). With flow_runs partitioned by week, PostgreSQL 15 prunes a
-- generic plan at executor start only by parameters: a join key alone (`r.id = l.id`) makes it set up
-- every partition's index scan on every call (at 36 day partitions: 342 against 211 µs of PostgreSQL CPU
-- per drained run), and `r.id = ANY (v_cand)` (an array variable) was not pruned either (auto_explain:
-- the Append kept every week, each probed by its primary key). 0016 joined by the batch's array
-- (`r.id = ANY (v_ids)`), which 0017 dropped: on the inner side of a nested loop the B-tree code sorts
-- the array again on every rescan; two scalar bounds cost a comparison each.
-- And one change to the claim's dequeue: `DELETE FROM run_queue … WHERE flow_run_id = ANY (ARRAY(SELECT id
-- FROM upd))` instead of a join to the updated runs. The generic plan estimates a row per partition of
-- flow_runs (an empty week's included), so with 7 partitions it took the join for 9 rows and hashed it
-- against a sequential scan of run_queue (every queued run, on every claim: a one-run claim cost 1,215
-- against main's 915 µs of backend CPU with 2,000 runs queued); the array is one index scan whatever the
-- estimates. For the same estimates the locking read of the claim ends in `LIMIT p_max`, which never cuts
-- (v_cand holds at most p_max runs) but makes the generic plan expect one run, as main's does, so the
-- UPDATE and the final joins are nested loops again (hash joins over 7 estimated rows before).
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow.claim_flow_runs(
    p_agent_id uuid,
    p_queues   text[]      DEFAULT NULL,
    p_max      integer     DEFAULT 1,
    p_start    boolean     DEFAULT false,
    p_now      timestamptz DEFAULT now()
) RETURNS TABLE (
    flow_run_id         uuid,
    flow_run_name       text,
    flow_name           text,
    deployment_id       uuid,
    deployment_name     text,
    entrypoint          text,
    parameters          jsonb,
    tags                text[],
    work_queue          text,
    state_type          pgflow.state_type,
    state_name          text,
    run_count           integer,
    expected_start_time timestamptz,
    parent_task_run_id  uuid,
    timeout_seconds     double precision
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    v_status  text;
    v_queues  text[];
    v_qids    uuid[];
    v_unknown boolean;
    v_limited boolean;
    v_cand    uuid[];
    v_lo      uuid;  -- the candidates' smallest and largest ids: they prune flow_runs' partitions
    v_hi      uuid;
BEGIN
    IF p_max > 10000 THEN
        RAISE EXCEPTION 'pgflow: claim at most 10000 runs at once, not %', p_max
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 to 10000';
    END IF;
    IF p_max IS NULL OR p_max < 1 THEN
        RAISE EXCEPTION 'pgflow: claim at least one run, not %', coalesce(p_max::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 or more';
    END IF;
    SELECT a.status, x.qs,
           ARRAY(SELECT q.id FROM pgflow.work_queues q WHERE q.name = ANY (x.qs) AND NOT q.paused),
           (SELECT count(*) FROM pgflow.work_queues q WHERE q.name = ANY (x.qs)) < cardinality(ARRAY(SELECT DISTINCT unnest(x.qs))),
           NOT p_start OR EXISTS (SELECT 1 FROM pgflow.concurrency_limits l WHERE l.active)
      INTO v_status, v_queues, v_qids, v_unknown, v_limited
      FROM pgflow.agents a CROSS JOIN LATERAL (SELECT coalesce(nullif(p_queues, '{}'), a.work_queues) AS qs) x
     WHERE a.id = p_agent_id;
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'pgflow: unknown agent %', coalesce(p_agent_id::text, 'NULL')
            USING ERRCODE = 'P0002', HINT = 'register with SELECT pgflow.register_agent(name, queues) and claim with its id';
    END IF;
    IF v_status <> 'ONLINE' THEN
        RAISE EXCEPTION 'pgflow: agent % is offline (its heartbeat lapsed or it deregistered)', p_agent_id
            USING ERRCODE = '55000', HINT = 'call pgflow.heartbeat(agent id) to come back, or register again';
    END IF;
    IF v_unknown THEN
        RAISE EXCEPTION 'pgflow: unknown work queue in %', v_queues
            USING ERRCODE = 'P0002', HINT = 'create it with pgflow.create_work_queue(name)';
    END IF;
    IF v_limited THEN
        RETURN QUERY SELECT c.*, d.timeout_seconds
                       FROM pgflow._claim_flow_runs_general(p_agent_id, p_queues, p_max, p_start, p_now) c
                       LEFT JOIN pgflow.deployments d ON d.id = c.deployment_id;
        RETURN;
    END IF;

    -- candidates, as in the general claim (no limit is active, so none is full)
    v_cand := ARRAY(
        SELECT c.flow_run_id
          FROM pgflow.work_queues q
          CROSS JOIN LATERAL (
              SELECT rq.flow_run_id, rq.scheduled_at FROM pgflow.run_queue rq
               WHERE rq.work_queue_id = q.id AND rq.scheduled_at <= p_now
               ORDER BY rq.scheduled_at
               LIMIT p_max
               FOR UPDATE SKIP LOCKED) c
         WHERE q.id = ANY (v_qids)
         ORDER BY q.priority, c.scheduled_at
         LIMIT p_max);
    IF cardinality(v_cand) = 0 THEN
        RETURN;
    END IF;
    SELECT (array_agg(c ORDER BY c))[1], (array_agg(c ORDER BY c DESC))[1] INTO v_lo, v_hi FROM unnest(v_cand) c;

    -- lock the runs, skipping any a concurrent transition holds (as the general claim does: waiting
    -- for one would deadlock with a transition that waits for this claim's run_queue row), and start
    -- them: Pending is accepted from SCHEDULED, Running (Retrying after a first attempt) from Pending
    RETURN QUERY
    WITH locked AS (
        SELECT r.id FROM pgflow.flow_runs r WHERE r.id = ANY (v_cand) AND r.id >= v_lo AND r.id <= v_hi AND r.state_type = 'SCHEDULED'
         ORDER BY r.id LIMIT p_max FOR UPDATE SKIP LOCKED),  -- (LIMIT: never cuts, see above)
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = 'RUNNING', state_name = CASE WHEN r.run_count >= 1 THEN 'Retrying' ELSE 'Running' END,
            state_timestamp = p_now, state_message = NULL, run_count = r.run_count + 1,
            start_time = coalesce(r.start_time, p_now), end_time = NULL,
            next_scheduled_start = NULL, pause_expires_at = NULL, agent_id = p_agent_id
          FROM locked l WHERE r.id = l.id AND r.id >= v_lo AND r.id <= v_hi
        RETURNING r.id, r.name, r.flow_id, r.deployment_id, r.work_queue_id, r.parameters, r.tags, r.state_name,
                  r.run_count, r.expected_start_time, r.parent_task_run_id),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
        SELECT u.id, s.state_type, CASE WHEN s.n = 1 THEN 'Pending' ELSE u.state_name END, p_now
          FROM upd u
         CROSS JOIN (VALUES (1, 'PENDING'::pgflow.state_type), (2, 'RUNNING'::pgflow.state_type)) s(n, state_type)
         ORDER BY array_position(v_cand, u.id), s.n),
    deq AS (
        DELETE FROM pgflow.run_queue q WHERE q.flow_run_id = ANY (ARRAY(SELECT u.id FROM upd u)))
    SELECT u.id, u.name, f.name, d.id, d.name, d.entrypoint, u.parameters, u.tags, wq.name,
           'RUNNING'::pgflow.state_type, u.state_name, u.run_count, u.expected_start_time, u.parent_task_run_id,
           d.timeout_seconds
      FROM upd u
      JOIN pgflow.flows f ON f.id = u.flow_id
      LEFT JOIN pgflow.deployments d ON d.id = u.deployment_id
      LEFT JOIN pgflow.work_queues wq ON wq.id = u.work_queue_id
     ORDER BY array_position(v_cand, u.id);  -- (as the state rows above: a join to the candidates here was a nested loop, each run against every candidate)
END $$;

CREATE OR REPLACE FUNCTION pgflow._complete_flow_runs(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamptz)
RETURNS pgflow.transition_result[]
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_ids uuid[] := ARRAY(SELECT p.run_id FROM unnest(p_proposals) p);
    v_ok  integer;
    v_res pgflow.transition_result[];
    v_lo  uuid;  -- the runs' smallest and largest ids: they prune the partitions of flow_runs and flow_run_states
    v_hi  uuid;
BEGIN
    SELECT (array_agg(i ORDER BY i))[1], (array_agg(i ORDER BY i DESC))[1] INTO v_lo, v_hi FROM unnest(v_ids) i;
    -- lock in id order (as the general path does) and check every run after its lock
    SELECT count(*) INTO v_ok
      FROM (SELECT r.state_type, r.agent_id FROM pgflow.flow_runs r WHERE r.id = ANY (v_ids) AND r.id >= v_lo AND r.id <= v_hi
             ORDER BY r.id FOR UPDATE) l
     WHERE l.state_type = 'RUNNING' AND (l.agent_id IS NULL OR l.agent_id = p_agent_id);
    IF v_ok <> cardinality(v_ids)
       OR EXISTS (SELECT 1 FROM unnest(p_proposals) p JOIN pgflow.flow_run_states h ON h.transition_id = p.transition_id
                                                              AND h.flow_run_id = p.run_id
                                                              AND h.flow_run_id >= v_lo AND h.flow_run_id <= v_hi
                   WHERE p.transition_id IS NOT NULL)
       OR EXISTS (SELECT 1 FROM pgflow.task_runs t WHERE t.flow_run_id = ANY (v_ids) AND NOT pgflow.is_terminal(t.state_type)) THEN
        RETURN NULL;
    END IF;
    WITH p AS (SELECT p.*, p.ordinality AS ord FROM unnest(p_proposals) WITH ORDINALITY p),
    upd AS (
        UPDATE pgflow.flow_runs r SET
            state_type = 'COMPLETED', state_name = 'Completed', state_timestamp = p_now, state_message = p.message,
            end_time = p_now, total_run_time = r.total_run_time + (p_now - r.state_timestamp),
            next_scheduled_start = NULL, pause_expires_at = NULL,
            agent_id = coalesce(p_agent_id, r.agent_id), process_id = coalesce(p.process_id, r.process_id)
          FROM p WHERE r.id = p.run_id AND r.id >= v_lo AND r.id <= v_hi
        RETURNING r.id, r.run_count),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", message, transition_id)
        SELECT p.run_id, 'COMPLETED', 'Completed', p_now, p.message, p.transition_id
          FROM p JOIN upd u ON u.id = p.run_id ORDER BY p.ord)
    SELECT array_agg(ROW(p.run_id, 'ACCEPTED', NULL, 'COMPLETED', 'Completed', p_now, NULL, u.run_count, p.result)::pgflow.transition_result
                     ORDER BY p.ord)
      INTO v_res
      FROM p JOIN upd u ON u.id = p.run_id;
    IF EXISTS (SELECT 1 FROM unnest(p_proposals) p WHERE p.result IS NOT NULL) THEN
        INSERT INTO pgflow.results (run_id, value, created_at)
        SELECT p.run_id, p.result, p_now FROM unnest(p_proposals) p WHERE p.result IS NOT NULL
        ON CONFLICT (run_id) DO UPDATE SET value = excluded.value, created_at = excluded.created_at;
    END IF;
    IF EXISTS (SELECT 1 FROM pgflow.concurrency_slots) THEN
        DELETE FROM pgflow.concurrency_slots s WHERE s.lease_id = ANY (v_ids);
    END IF;
    RETURN v_res;
END $$;

-- Privileges: only internal functions are new (delete_old_runs, granted to the scheduler since 0003,
-- runs them as the schema owner, who owns the partitions it creates and drops).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgflow FROM PUBLIC;
