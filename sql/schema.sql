-- pgflow: PostgreSQL is the orchestrator.
--
-- This file is the whole current schema, readable top to bottom: schema and ledger, tables, indexes,
-- functions, views. Apply it to a database without pgflow (`psql -f sql/schema.sql`, or
-- `scripts/apply-schema.sh URL`, or `pgflow db upgrade`). Databases with an older pgflow are upgraded by
-- the numbered files in sql/migrations/; a test proves both paths give the same catalog.

-- ============================================================================================
-- Schema and migration ledger
-- ============================================================================================
CREATE SCHEMA pgflow;

CREATE TABLE pgflow.schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- ============================================================================================
-- Variables: small named JSON values flows read at run time
-- ============================================================================================
CREATE TABLE pgflow.variables (
    key        text PRIMARY KEY CHECK (key ~ '^[a-z0-9_./-]{1,255}$'),
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- ============================================================================================
-- Ledger: the migrations this file contains (keep in step with sql/migrations/)
-- ============================================================================================
INSERT INTO pgflow.schema_migrations (version, name) VALUES
    (1, 'initial');
