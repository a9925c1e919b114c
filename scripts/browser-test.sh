#!/usr/bin/env bash
# The dashboard in a real headless Chromium:   scripts/browser-test.sh [pytest arguments]
#
# Installs Debian's chromium and chromium-driver (apt-get) and selenium and pytest (PyPI, into
# .pgflow/venv, the venv scripts/api-schemathesis.sh uses) once; needs built pgflow-api and pgflow-agent
# ($PGFLOW_BIN, else `swift build --show-bin-path`) and the test server (`scripts/db.sh up`;
# $PGFLOW_TEST_ADMIN_URL overrides). Creates a throwaway database with demo deployments and two tokens
# (admin, read), starts pgflow-api on a free port and one pgflow-agent on the default queue, and runs
# Tests/browser/test_dashboard.py. Screenshots of every page go to .pgflow/screenshots/<time>/ (printed).
# Ends with pytest's "N passed, M failed" line; exit 0 when every test passed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT" || exit 1

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing chromium and chromium-driver with apt-get (once)"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null || die "apt-get install chromium chromium-driver failed"
fi
venv="$PGFLOW_STATE/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed"
if ! "$venv/bin/python" -c "import selenium, pytest" 2>/dev/null; then
  log "installing selenium and pytest into $venv (once)"
  "$venv/bin/pip" install -q selenium pytest >/dev/null || die "pip install selenium pytest failed"
fi
bin="${PGFLOW_BIN:-$(swift build --show-bin-path)}"
for b in pgflow-api pgflow-agent; do [ -x "$bin/$b" ] || die "no $b in $bin: run swift build first"; done
admin="${PGFLOW_TEST_ADMIN_URL:-$(cat "$PGFLOW_STATE/admin-url")}"

db="pgflow_test_browser_$$"
psql "$admin" -Xqc "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
url=$(url_with_database "$admin" "$db")
work=$(mktemp -d)
cleanup() {
  for pid in ${agent_pid:-} ${api_pid:-}; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  psql "$admin" -Xqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null || die "schema did not apply"
psql "$url" -Xq -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || die "the demo objects were not created"
SELECT pgflow.create_work_queue('counting');
SELECT pgflow.create_deployment('demo', 'quick', 'echo quick-run-done', '{"greeting": "hi", "times": 2, "loud": false}');
SELECT pgflow.create_deployment('demo', 'sleep', 'sleep 60');
SELECT pgflow.create_deployment('demo', 'logs', 'sh -c ''for i in 1 2 3 4 5 6; do echo line-$i; sleep 1; done''');
SELECT pgflow.create_deployment('demo', 'count', 'true', p_work_queue => 'counting');
SELECT pgflow.create_deployment_schedule('demo/quick', 'cron', '0 6 * * *');
SELECT pgflow.create_concurrency_limit('external-api', 2);
-- hostile names: they must show as text, never run
SELECT pgflow.create_deployment('<script>alert(1)<script>', 'x"><img src=x onerror=alert(2)>', 'true', p_work_queue => 'counting');
SELECT pgflow.run_deployment('<script>alert(1)<script>/x"><img src=x onerror=alert(2)>', p_flow_run_name => '</script><script>alert(3)</script>');
SQL
admin_token=$(psql "$url" -XAtc "SELECT pgflow.create_api_token('browser-admin', 'admin')")
read_token=$(psql "$url" -XAtc "SELECT pgflow.create_api_token('browser-reader', 'read')")

"$bin/pgflow-api" --host 127.0.0.1 --port 0 --database-url "$url" >"$work/api.log" 2>&1 &
api_pid=$!
PGFLOW_DATABASE_URL="$url" "$bin/pgflow-agent" --queue default >"$work/agent.log" 2>&1 &
agent_pid=$!
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's#^pgflow-api: listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$work/api.log")
  [ -n "$port" ] && break
  kill -0 "$api_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/api.log" >&2; die "pgflow-api did not start"; }

shots="$PGFLOW_STATE/screenshots/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$shots"
log "screenshots: $shots"
status=0
PGFLOW_UI_URL="http://127.0.0.1:$port" PGFLOW_UI_DATABASE_URL="$url" PGFLOW_UI_ADMIN_TOKEN="$admin_token" \
  PGFLOW_UI_READ_TOKEN="$read_token" PGFLOW_UI_AGENT_PID="$agent_pid" PGFLOW_UI_SCREENSHOTS="$shots" \
  "$venv/bin/python" -m pytest -p no:cacheprovider -v -s "$@" Tests/browser/test_dashboard.py || status=$?
if [ "$status" -ne 0 ]; then
  log "pgflow-api log (last 40 lines):"; tail -n 40 "$work/api.log" >&2
  log "pgflow-agent log (last 40 lines):"; tail -n 40 "$work/agent.log" >&2
fi
log "screenshots: $shots"
exit $status
