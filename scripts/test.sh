#!/usr/bin/env bash
# Runs every pgflow test against a real PostgreSQL:   scripts/test.sh
#
# Installs what is missing (libpq-dev, pkg-config, postgresql, pgTAP), builds, starts the private cluster
# unless PGFLOW_DATABASE_URL names a server (then that server's user must be allowed to CREATE DATABASE),
# and runs every phase even when an earlier one fails: generated files up to date, SQL tests (pgTAP,
# Tests/sql/*.sql), Swift tests, Swift tests with real processes, the HTTP API fuzzed with schemathesis
# (scripts/api-schemathesis.sh; PyPI, into .pgflow/venv once), the dashboard in headless Chromium
# (scripts/browser-test.sh). It ends with each phase's result and
# one line "tests: N passed, M failed"; the exit status is 1 when any phase failed. Extra arguments go to
# both `swift test` runs.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT" || exit 1

export PGFLOW_WITH_PGTAP=1
ensure_system_packages
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0 failed=0 summary=()

# record PHASE STATUS PASSED FAILED: adds a phase's counts to the totals and the summary.
record() {
  passed=$((passed + $3)) failed=$((failed + $4))
  local verdict=ok
  [ "$2" -eq 0 ] || verdict="FAILED (exit $2)"
  summary+=("$(printf '%-34s %-16s %5d passed, %d failed' "$1" "$verdict" "$3" "$4")")
}

# A phase that fails without counting any test still counts as one failure.
at_least_one() { if [ "$1" -ne 0 ] && [ "$2" -eq 0 ]; then echo 1; else echo "$2"; fi; }

log "generated SQL files"
status=0
scripts/gen-sql.sh --check || status=$?
record "generated files (gen-sql --check)" $status $((status == 0 ? 1 : 0)) $((status == 0 ? 0 : 1))

log "building (a first build takes a few minutes)"
if ! swift build --build-tests >"$out/build.log" 2>&1; then
  grep -E 'error:' "$out/build.log" | head -50 >&2
  record "build" 1 0 1
  printf '%s\n' "${summary[@]}"
  echo "tests: $passed passed, $failed failed"
  exit 1
fi

PGFLOW_BIN="$(swift build --show-bin-path)" "$PGFLOW_ROOT/scripts/db.sh" up >/dev/null || die "the test database server did not start"
admin=$(cat "$PGFLOW_STATE/admin-url")
export PGFLOW_TEST_ADMIN_URL="$admin"
export PGFLOW_BIN="$(swift build --show-bin-path)"

# Databases left behind by an interrupted run.
for db in $(psql "$admin" -XAtc "SELECT datname FROM pg_database WHERE datname LIKE 'pgflow\_test\_%' OR datname LIKE 'pgflow\_template\_%'"); do
  psql "$admin" -Xqc "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done

if compgen -G "Tests/sql/*.sql" >/dev/null; then
  log "SQL tests (pgTAP)"
  sqldb="pgflow_test_sql_$$"
  psql "$admin" -Xqc "CREATE DATABASE $sqldb" >/dev/null
  sqlurl=$(url_with_database "$admin" "$sqldb")
  psql "$sqlurl" -Xqc "CREATE EXTENSION pgtap" >/dev/null
  "$PGFLOW_ROOT/scripts/apply-schema.sh" "$sqlurl" 2>/dev/null
  status=0
  (eval "$(url_to_pg_env "$sqlurl")"; pg_prove --failures Tests/sql/*.sql) 2>&1 | tee "$out/sql.log" || status=$?
  psql "$admin" -Xqc "DROP DATABASE $sqldb WITH (FORCE)" >/dev/null
  total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$out/sql.log" | tail -n 1)
  bad=$(sed -n 's/^Failed \([0-9]*\)\/[0-9]* subtests.*/\1/p' "$out/sql.log" | awk '{s += $1} END {print s + 0}')
  total=${total:-0}
  record "SQL tests (pgTAP)" $status $((total - bad)) "$(at_least_one $status "$bad")"
fi

# swift_phase NAME ARGS…: one `swift test` run, its tests counted from Swift Testing's per-test lines.
swift_phase() {
  local name=$1 status=0
  shift
  log "$name"
  swift test --skip-build "$@" 2>&1 | tee "$out/swift.log" || status=$?
  local ok bad
  ok=$(grep -E '^✔ Test .* passed after' "$out/swift.log" | grep -vc '^✔ Test run with')
  bad=$(grep -E '^✘ Test .* failed after' "$out/swift.log" | grep -vc '^✘ Test run with')
  record "$name" $status "$ok" "$(at_least_one $status "$bad")"
}

# Suites named *ProcessTests start many real processes (agents, CLIs): they run after the others, so the
# in-process suites keep both cores to themselves.
swift_phase "Swift tests" --skip 'ProcessTests' "$@"
swift_phase "Swift tests with real processes" --filter 'ProcessTests' "$@"

# The HTTP API fuzzed against its own OpenAPI document: no 5xx, every response as documented.
log "API fuzzing (schemathesis against /api/openapi.json)"
status=0
scripts/api-schemathesis.sh 2>&1 | tee "$out/schemathesis.log" || status=$?
record "API fuzzing (schemathesis)" $status $((status == 0 ? 1 : 0)) $((status == 0 ? 0 : 1))

# The dashboard in a real headless Chromium (scripts/browser-test.sh; Debian's chromium, selenium from PyPI).
log "dashboard in a browser (headless Chromium)"
status=0
scripts/browser-test.sh 2>&1 | tee "$out/browser.log" || status=$?
ok=$(grep -E '^=+ .*(passed|failed).* in [0-9.]+s' "$out/browser.log" | tail -n 1 | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
bad=$(grep -E '^=+ .*(passed|failed).* in [0-9.]+s' "$out/browser.log" | tail -n 1 | grep -oE '[0-9]+ (failed|error)' | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
record "Dashboard in a browser (Chromium)" $status "${ok:-0}" "$(at_least_one $status "${bad:-0}")"

echo
echo "pgflow test phases:"
printf '  %s\n' "${summary[@]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
