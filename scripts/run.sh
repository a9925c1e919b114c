#!/usr/bin/env bash
# Sets up and runs pgflow locally:   scripts/run.sh        (scripts/run.sh stop  stops it all)
#
# 1. installs what is missing (libpq-dev, libcurl4-openssl-dev, pkg-config, postgresql) with apt;
# 2. starts a private PostgreSQL in .pgflow/ unless PGFLOW_DATABASE_URL names one;
# 3. builds the pgflow executables (release) and applies the schema (`pgflow db upgrade`);
# 4. registers the demo deployments (scripts/demo/pgflow.yaml.in; demo/hello runs every minute);
# 5. starts one pgflow-scheduler, two pgflow-agent processes and one pgflow-api (port $PGFLOW_API_PORT,
#    default 4200; an admin token is printed) in the background (logs in .pgflow/logs);
# 6. enqueues a few runs and shows them flowing; then tells you where to look.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
logs="$PGFLOW_STATE/logs"
pids="$PGFLOW_STATE/pids"

stop_processes() {
  [ -f "$pids" ] || return 0
  while read -r pid name; do
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      log "stopped $name ($pid)"
    fi
  done <"$pids"
  rm -f "$pids"
}

if [ "${1:-}" = stop ]; then
  stop_processes
  [ -n "${PGFLOW_DATABASE_URL:-}" ] || scripts/db.sh stop
  exit 0
fi

ensure_system_packages
url=$(PGFLOW_SKIP_SCHEMA=1 scripts/db.sh up)  # the schema comes with `pgflow db upgrade` below
export PGFLOW_DATABASE_URL="$url"
log "building pgflow (release; a first build takes several minutes)"
for product in pgflow pgflow-agent pgflow-scheduler pgflow-api pgflow-examples; do
  swift build -c release --product "$product" 2>&1 | grep -E 'error|Compiling|Build' | grep -v '^\[' >&2 || true
done
bin=$(swift build -c release --show-bin-path)
for product in pgflow pgflow-agent pgflow-scheduler pgflow-api pgflow-examples; do
  [ -x "$bin/$product" ] || die "$product did not build: run \`swift build -c release --product $product\` to see why"
done
export PATH="$bin:$PATH"
mkdir -p "$logs"

stop_processes  # a second run restarts them
pgflow db upgrade >/dev/null
sed -e "s#@ROOT@#$PGFLOW_ROOT#g" -e "s#@BIN@#$bin#g" scripts/demo/pgflow.yaml.in >"$PGFLOW_STATE/pgflow.yaml"
pgflow deploy -f "$PGFLOW_STATE/pgflow.yaml"

nohup pgflow-scheduler >"$logs/scheduler.log" 2>&1 &
echo "$! pgflow-scheduler" >>"$pids"
for n in 1 2; do
  nohup pgflow-agent --queue default --name "agent-$n" >"$logs/agent-$n.log" 2>&1 &
  echo "$! pgflow-agent-$n" >>"$pids"
done
api_port="${PGFLOW_API_PORT:-4200}"
nohup pgflow-api --host 127.0.0.1 --port "$api_port" >"$logs/api.log" 2>&1 &
echo "$! pgflow-api" >>"$pids"
api_token=$(pgflow api token create --name "run-sh-$(date +%Y%m%d%H%M%S)-$$" --scope admin)
for _ in $(seq 1 100); do grep -q '^pgflow-api: listening' "$logs/api.log" && break; sleep 0.1; done
grep -q '^pgflow-api: listening' "$logs/api.log" || log "pgflow-api did not start (see $logs/api.log; is port $api_port taken? set PGFLOW_API_PORT)"
log "started a scheduler, two agents and the API (logs in $logs)"

ids=()
ids+=("$(pgflow deployment run demo/hello --param name=pgflow)")
for _ in 1 2 3; do ids+=("$(pgflow deployment run demo/flaky)"); done
ids+=("$(pgflow deployment run examples/seed)")
ids+=("$(pgflow deployment run examples/fan-out)")
log "enqueued ${#ids[@]} runs; waiting for them to finish (flaky ones retry)"
list=$(printf "'%s'," "${ids[@]}"); list="{${list%,}}"; list=${list//\'/}
for _ in $(seq 1 120); do
  open=$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE id = ANY ('$list'::uuid[]) AND NOT pgflow.is_terminal(state_type)")
  [ "$open" = 0 ] && break
  sleep 0.5
done
psql "$url" -Xc "SELECT name, deployment, state_name, run_count, round(extract(epoch FROM total_run_time)::numeric, 2) AS seconds
                   FROM pgflow.flow_run_history WHERE start_time IS NOT NULL ORDER BY start_time DESC LIMIT 12"

cat <<MSG

pgflow is running: PostgreSQL, a scheduler, two agents, the API; demo/hello runs every minute.
  Dashboard: http://127.0.0.1:$api_port/  (log in with the admin token below)
  API: http://127.0.0.1:$api_port  (OpenAPI: /api/openapi.json, live: /api/stream, metrics: /metrics)
  admin token (shown once): $api_token
  curl -H "Authorization: Bearer $api_token" http://127.0.0.1:$api_port/api/flow-runs?limit=5
  export PATH="$bin:\$PATH" PGFLOW_DATABASE_URL='$url'
  pgflow flow-run ls                       # runs, newest first (--state FAILED, --json, ...)
  pgflow flow-run logs <run id>            # a run's output
  pgflow deployment run demo/hello --param name=you --watch
  psql "\$PGFLOW_DATABASE_URL" -c "SELECT name, deployment, state_name, run_count, start_time FROM pgflow.flow_run_history ORDER BY created_at DESC LIMIT 10"
  scripts/run.sh stop                      # stops the agents, the scheduler, the API and PostgreSQL
MSG
