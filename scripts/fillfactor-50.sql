-- Experiment (not a migration): flow_runs' partitions at fillfactor 50 with every index kept, so that a
-- transition's new row version finds room on its page (no HOT: indexed columns change). Measured to see
-- whether keeping the version on its page (no second lock record, one page dirtied) saves anything alone:
--   scripts/bench-drain-cpu.sh 5 20000 sql/schema.sql <(cat sql/schema.sql scripts/fillfactor-50.sql)
DO $$
DECLARE
    p text;
BEGIN
    FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'pgflow.flow_runs'::regclass AND c.relkind = 'r' LOOP
        EXECUTE format('ALTER TABLE pgflow.%I SET (fillfactor = 50)', p);
    END LOOP;
END $$;
