-- 0001: the pgflow schema, its migration ledger, and variables.
CREATE SCHEMA pgflow;

CREATE TABLE pgflow.schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgflow.variables (
    key        text PRIMARY KEY CHECK (key ~ '^[a-z0-9_./-]{1,255}$'),
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
