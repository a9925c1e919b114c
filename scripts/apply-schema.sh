#!/usr/bin/env bash
# Brings a database up to the current pgflow schema:  scripts/apply-schema.sh [DATABASE_URL]
#
# A database without pgflow gets sql/schema.sql (which records every migration version it contains);
# a database with an older pgflow gets the numbered files in sql/migrations/ that it lacks, in order.
# Everything runs in one transaction under an advisory lock, so two concurrent upgrades are safe and a
# failing migration changes nothing. `pgflow db upgrade` does the same from the CLI.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

url=${1:-${PGFLOW_DATABASE_URL:-}}
[ -n "$url" ] || die "no database: pass a URL or set PGFLOW_DATABASE_URL (scripts/db.sh up prints one)"

script=$(mktemp)
trap 'rm -f "$script"' EXIT
{
  echo '\set ON_ERROR_STOP on'
  echo 'BEGIN;'
  echo "SELECT pg_advisory_xact_lock(7286550214002711)"  # the same key as `pgflow db upgrade`
  echo '\g /dev/null'
  echo "SELECT to_regclass('pgflow.schema_migrations') IS NULL AS pgflow_fresh \\gset"
  echo '\if :pgflow_fresh'
  echo "\\i $PGFLOW_ROOT/sql/schema.sql"
  echo '\else'
  for f in "$PGFLOW_ROOT"/sql/migrations/[0-9]*.sql; do
    base=$(basename "$f" .sql)
    version=$((10#${base%%_*}))
    name=${base#*_}
    echo "SELECT NOT EXISTS (SELECT 1 FROM pgflow.schema_migrations WHERE version = $version) AS pgflow_need \\gset"
    echo '\if :pgflow_need'
    echo "\\echo applying migration $base"
    echo "\\i $f"
    echo "INSERT INTO pgflow.schema_migrations (version, name) VALUES ($version, '$name');"
    echo '\endif'
  done
  echo '\endif'
  echo 'COMMIT;'
} >"$script"

psql "$url" -X -q -v ON_ERROR_STOP=1 -f "$script" >/dev/null \
  || die "applying the schema failed (error above); nothing was changed"
log "schema is current ($(psql "$url" -XAtc 'SELECT max(version) FROM pgflow.schema_migrations') migrations)"
