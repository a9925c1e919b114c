#!/usr/bin/env bash
# Runs every pgflow test against a real PostgreSQL:   scripts/test.sh
#
# Installs what is missing (libpq-dev, pkg-config, postgresql, pgTAP), starts the private cluster unless
# PGFLOW_DATABASE_URL names a server (then that server's user must be allowed to CREATE DATABASE), runs
# the SQL tests (pgTAP, Tests/sql/*.sql) and then the Swift tests (swift test). Extra arguments go to
# both `swift test` runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"

export PGFLOW_WITH_PGTAP=1
ensure_system_packages
PGFLOW_SKIP_SCHEMA=0 "$PGFLOW_ROOT/scripts/db.sh" up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
export PGFLOW_TEST_ADMIN_URL="$admin"

# Databases left behind by an interrupted run.
for db in $(psql "$admin" -XAtc "SELECT datname FROM pg_database WHERE datname LIKE 'pgflow\_test\_%' OR datname LIKE 'pgflow\_template\_%'"); do
  psql "$admin" -Xqc "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done

log "building (a first build takes a few minutes)"
swift build --build-tests 2>&1 | grep -E 'error|warning: unre|Compiling|Build complete' | grep -v '^\[' || true
swift build --build-tests >/dev/null 2>&1 || { swift build --build-tests; die "the build failed (errors above)"; }

if compgen -G "Tests/sql/*.sql" >/dev/null; then
  log "SQL tests (pgTAP)"
  sqldb="pgflow_test_sql_$$"
  psql "$admin" -Xqc "CREATE DATABASE $sqldb" >/dev/null
  sqlurl=$(url_with_database "$admin" "$sqldb")
  psql "$sqlurl" -Xqc "CREATE EXTENSION pgtap" >/dev/null
  "$PGFLOW_ROOT/scripts/apply-schema.sh" "$sqlurl" 2>/dev/null
  status=0
  (eval "$(url_to_pg_env "$sqlurl")"; pg_prove --failures Tests/sql/*.sql) || status=$?
  psql "$admin" -Xqc "DROP DATABASE $sqldb WITH (FORCE)" >/dev/null
  [ $status -eq 0 ] || die "SQL tests failed (above)"
fi

# Suites named *ProcessTests start many real processes (agents, CLIs) and load both cores: they run
# after the others, so timing-sensitive tests are not measured on a saturated machine.
log "Swift tests"
swift test --skip-build --skip 'ProcessTests' "$@"
log "Swift tests with real agent/CLI processes"
swift test --skip-build --filter 'ProcessTests' "$@"
