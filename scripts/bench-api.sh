#!/usr/bin/env bash
# HTTP API benchmark with wrk:   scripts/bench-api.sh [SECONDS=15] [CONNECTIONS=100]
#
# A release pgflow-api over a database with 1,000,000 finished runs in history (bulk-inserted with plain
# INSERTs: test data, what a million runs leave in flow_runs), then:
#   1. GET /api/flow-runs?limit=50 (newest first, keyset index) at CONNECTIONS connections: p50 / p99;
#   2. POST /api/deployments/bench/api/runs (wrk + Lua): runs created per second (each is
#      pgflow.run_deployment + its audit row in one transaction, plus the token check);
#   3. resident memory (VmRSS) of the API process at rest and the most seen under load.
# Needs wrk (apt-get install wrk) and a release build (`swift build -c release --product pgflow-api`).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
seconds=${1:-15}
connections=${2:-100}

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
ensure_system_packages
scripts/db.sh up >/dev/null
swift build -c release --product pgflow-api 2>&1 | grep -E 'error' >&2 || true
bin=$(swift build -c release --show-bin-path)
admin=$(cat "$PGFLOW_STATE/admin-url")
db=pgflow_bench_api
url=$(url_with_database "$admin" "$db")
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'api', 'true')" >/dev/null
log "inserting 1,000,000 finished runs into the history"
psql "$url" -Xq >/dev/null <<'SQL'
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, parameters, run_count,
                              expected_start_time, start_time, end_time, total_run_time,
                              state_type, state_name, state_timestamp, agent_id, created_at)
SELECT gen_random_uuid(), 'history-' || g, d.flow_id, d.id, d.work_queue_id, '{}', 1,
       t, t + interval '1 second', t + interval '2 seconds', interval '1 second',
       'COMPLETED', 'Completed', t + interval '2 seconds', NULL, t
  FROM pgflow.deployments d, generate_series(1, 1000000) g,
       LATERAL (SELECT timestamptz '2026-01-01' + g * interval '10 seconds') AS x(t);
-- each run's ending (the ended-run reads read the terminal state rows since 0024)
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT r.id, r.state_type, r.state_name, r.end_time FROM pgflow.flow_runs r ORDER BY r.end_time;
VACUUM ANALYZE;
SQL
token=$(psql "$url" -XAtqc "SELECT pgflow.create_api_token('bench', 'admin')")
work=$(mktemp -d)
"$bin/pgflow-api" --host 127.0.0.1 --port 0 --database-url "$url" >"$work/api.log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null; wait $api 2>/dev/null; rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's#^pgflow-api: listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$work/api.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || die "pgflow-api did not start: $(cat "$work/api.log")"
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$api/status"; }
curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/flow-runs?limit=50" >/dev/null  # warm up
rest=$(rss)
sampler() { local max=0; while kill -0 "$api" 2>/dev/null; do local r; r=$(rss); max=$(awk -v a="$r" -v b="$max" 'BEGIN{print (a > b) ? a : b}'); echo "$max" >"$work/maxrss"; sleep 0.2; done; }
sampler & sampler_pid=$!

log "GET /api/flow-runs?limit=50: ${seconds}s at $connections connections"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/flow-runs?limit=50" >"$work/get.txt"
log "GET /api/flow-runs?limit=50: ${seconds}s at 1 connection (the cost of one request)"
wrk -t1 -c1 -d"${seconds}s" --latency -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/flow-runs?limit=50" >"$work/get1.txt"
echo "SELECT count(*) FROM pgflow.list_flow_runs(p_limit => 50);" >"$work/list.sql"
sql_ms=$(pgbench -n -M prepared -c 1 -T "$seconds" -f "$work/list.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"parameters": {"n": 1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
log "POST /api/deployments/bench/api/runs: ${seconds}s at $connections connections"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" \
  "http://127.0.0.1:$port/api/deployments/bench/api/runs" >"$work/post.txt"
kill "$sampler_pid" 2>/dev/null || true
peak=$(cat "$work/maxrss")
created=$(psql "$url" -XAtqc "SELECT count(*) FROM pgflow.flow_runs WHERE name NOT LIKE 'history-%'")

pct() { awk -v p="$2" '$1 == p {print $2}' "$1"; }
rate() { awk '/^Requests\/sec/ {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {n = $5} END {print n + 0}' "$1"; }
echo
echo "pgflow-api, $(date -u +%F), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machine), wrk -t2 -c$connections -d${seconds}s"
printf '%-58s %s\n' "GET /api/flow-runs?limit=50, 1,000,000 runs: p50 / p99" "$(pct "$work/get.txt" 50%) / $(pct "$work/get.txt" 99%) (goal p99 <= 20 ms)"
printf '%-58s %s\n' "GET /api/flow-runs?limit=50 at 1 connection: p50 / p99" "$(pct "$work/get1.txt" 50%) / $(pct "$work/get1.txt" 99%)"
printf '%-58s %s\n' "pgflow.list_flow_runs(p_limit => 50) alone (pgbench -c1)" "$sql_ms ms average"
printf '%-58s %s\n' "GET /api/flow-runs?limit=50: requests/s" "$(rate "$work/get.txt") (non-2xx: $(errors "$work/get.txt"))"
printf '%-58s %s\n' "POST .../runs: runs created/s" "$(rate "$work/post.txt") (non-2xx: $(errors "$work/post.txt"); $created runs in the table; goal >= 2,000/s)"
printf '%-58s %s\n' "POST .../runs: p50 / p99" "$(pct "$work/post.txt" 50%) / $(pct "$work/post.txt" 99%)"
printf '%-58s %s\n' "RSS at rest / peak under load" "$rest MiB / $peak MiB (goal <= 50 MiB)"
