#!/usr/bin/env bash
# Fuzzes pgflow-api against its own OpenAPI document with schemathesis:   scripts/api-schemathesis.sh
#
# Needs a built pgflow-api ($PGFLOW_BIN, else `swift build --show-bin-path`) and the test server
# (`scripts/db.sh up`; $PGFLOW_TEST_ADMIN_URL overrides). Creates schemathesis in .pgflow/venv (PyPI) once,
# a throwaway database with a deployment and an admin token, starts pgflow-api on a free port, and runs
# `schemathesis run` twice (generated path parameters, then ones naming existing objects) with a
# bounded number of examples per operation (PGFLOW_SCHEMATHESIS_EXAMPLES, default 20; seed
# PGFLOW_SCHEMATHESIS_SEED, default 1). Checks: no 5xx, status codes, content types and bodies as documented. Exit 0 when clean.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT" || exit 1

venv="$PGFLOW_STATE/venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  log "installing schemathesis into $venv (once)"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q schemathesis >/dev/null || die "pip install schemathesis failed"
fi
bin="${PGFLOW_BIN:-$(swift build --show-bin-path)}"
[ -x "$bin/pgflow-api" ] || die "no pgflow-api in $bin: run swift build first"
admin="${PGFLOW_TEST_ADMIN_URL:-$(cat "$PGFLOW_STATE/admin-url")}"

db="pgflow_test_schemathesis_$$"
psql "$admin" -Xqc "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
url=$(url_with_database "$admin" "$db")
work=$(mktemp -d)
cleanup() {
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  psql "$admin" -Xqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null || die "schema did not apply"
psql "$url" -Xq -c "SELECT pgflow.create_deployment('etl', 'daily', 'true')" >/dev/null
token=$(psql "$url" -XAtc "SELECT pgflow.create_api_token('schemathesis', 'admin')")
# objects that exist, for the second pass (so operations get past 404 to their real work)
run_id=$(psql "$url" -XAtqc "SELECT pgflow.run_deployment('etl/daily')")
schedule_id=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment_schedule('etl/daily', 'cron', '0 6 * * *')")
psql "$url" -Xqc "SELECT pgflow.create_concurrency_limit('db', 2)" -c "SELECT pgflow.set_variable('k', '1')" >/dev/null
cat >"$work/known.toml" <<TOML
[parameters]
"path.flow" = "etl"
"path.deployment" = "daily"
"path.id" = "$run_id"
"path.schedule" = "$schedule_id"
"path.name" = "db"
"path.key" = "k"
TOML

"$bin/pgflow-api" --host 127.0.0.1 --port 0 --database-url "$url" >"$work/api.log" 2>&1 &
api_pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(sed -n 's#^pgflow-api: listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$work/api.log")
  [ -n "$port" ] && break
  kill -0 "$api_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/api.log" >&2; die "pgflow-api did not start"; }

status=0
fuzz_once() {  # in $work: schemathesis keeps a cache folder in its working directory
  (cd "$work" && "$venv/bin/schemathesis" "$@" run "http://127.0.0.1:$port/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${PGFLOW_SCHEMATHESIS_EXAMPLES:-20}" --exclude-path /api/stream --workers 2 \
    --no-color --seed "${PGFLOW_SCHEMATHESIS_SEED:-1}" --generation-database none --request-timeout 10)
}
# A pass is run again once, and only, when schemathesis itself crashed on CPython 3.11's AST recursion
# bug ("SystemError: AST constructor recursion depth mismatch", seen once in a fresh CI clone) and reported
# no failing check: that is the tool failing, not the API. Any check failure counts at once.
fuzz() {
  local rc=0
  fuzz_once "$@" 2>&1 | tee "$work/pass.log" || rc=$?
  if [ "$rc" -ne 0 ] && grep -q 'AST constructor recursion depth mismatch' "$work/pass.log" \
     && ! grep -q '^=* FAILURES =*$' "$work/pass.log"; then
    log "schemathesis crashed on a CPython bug (not an API failure): running this pass once more"
    rc=0
    fuzz_once "$@" || rc=$?
  fi
  return "$rc"
}
log "schemathesis, pass 1: generated path parameters (mostly unknown objects)"
fuzz || status=$?
log "schemathesis, pass 2: path parameters naming objects that exist"
fuzz --config-file "$work/known.toml" || status=$?
if grep -E '\] (error|critical)' "$work/api.log" >&2; then :; fi
exit $status
