#!/usr/bin/env bash
# Dashboard page benchmark:   scripts/bench-dashboard.sh [REQUESTS=200] [ROUNDS=3]
#
# A pgflow-api (release build, or the one in $PGFLOW_API_BIN) over a database with 1,000,000 runs in history, bulk-
# inserted set-based with plain INSERTs (bench data only: what a million runs leave in flow_runs, spread
# over 30 days, 20 deployments, mixed final states, and each one's terminal state row; plus 200 waiting
# runs, some Late),
# then VACUUM ANALYZE. Each page is requested REQUESTS times in a row over one keep-alive connection,
# ROUNDS times; it prints per page the median over rounds of p50 and p99 server time (request sent to
# last byte, on loopback) and the page weight (HTML, plus the one CSS and one JS file every page loads).
# Goals: p99 <= 100 ms, weight <= 200 KB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
requests=${1:-200}
rounds=${2:-3}

ensure_system_packages
scripts/db.sh up >/dev/null
if [ -z "${PGFLOW_API_BIN:-}" ]; then
  swift build -c release --product pgflow-api 2>&1 | grep -E 'error' >&2 || true
  bin=$(swift build -c release --show-bin-path)
else
  bin=$PGFLOW_API_BIN
fi
admin=$(cat "$PGFLOW_STATE/admin-url")
db=pgflow_bench_dashboard
url=$(url_with_database "$admin" "$db")
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
log "creating 20 deployments and 1,000,000 runs in history (set-based INSERTs)"
psql "$url" -Xq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('q' || q) FROM generate_series(1, 3) q;
SELECT pgflow.create_deployment('flow' || (d % 4), 'dep' || d, 'true', '{"day": "2026-12-01", "n": 3}', 'q' || (d % 3 + 1))
  FROM generate_series(1, 20) d;
SELECT pgflow.create_concurrency_limit('external-api', 5);
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, parameters, tags, run_count,
                              expected_start_time, start_time, end_time, total_run_time,
                              state_type, state_name, state_timestamp, created_at)
SELECT gen_random_uuid(), 'history-' || g, d.flow_id, d.id, d.work_queue_id, '{"day": "2026-12-01"}', ARRAY['nightly'], 1,
       t, t + interval '1 second', t + interval '1 second' + dur, dur,
       s.type::pgflow.state_type, s.name, t + interval '1 second' + dur, t
  FROM generate_series(1, 1000000) g
  JOIN LATERAL (SELECT * FROM pgflow.deployments ORDER BY name OFFSET g % 20 LIMIT 1) d ON true
  CROSS JOIN LATERAL (SELECT now() - interval '30 days' + (g * interval '30 days' / 1000000) AS t,
                             make_interval(secs => 1 + (g % 97)) AS dur, (g::bigint * 7919) % 100 AS pick) x
  CROSS JOIN LATERAL (SELECT CASE WHEN pick < 85 THEN 'COMPLETED' WHEN pick < 93 THEN 'FAILED' WHEN pick < 97 THEN 'CANCELLED' ELSE 'CRASHED' END,
                             CASE WHEN pick < 85 THEN 'Completed' WHEN pick < 93 THEN 'Failed' WHEN pick < 97 THEN 'Cancelled' ELSE 'Crashed' END) s(type, name);
-- each run's ending in its history (since 0024 the ended-run reads, the home page's among them, read the
-- terminal state rows), and the side tables the listings read (pgflow._fill_run_sides: what a loader that
-- writes flow_runs itself calls)
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", deployment_id)
SELECT r.id, r.state_type, r.state_name, r.end_time, r.deployment_id FROM pgflow.flow_runs r ORDER BY r.end_time;
SELECT pgflow._fill_run_sides();
SELECT pgflow.run_deployment(f.name || '/' || d.name, p_scheduled_time => now() + (g - 20) * interval '1 minute')
  FROM generate_series(1, 200) g
  JOIN LATERAL (SELECT * FROM pgflow.deployments ORDER BY name OFFSET g % 20 LIMIT 1) d ON true
  JOIN pgflow.flows f ON f.id = d.flow_id;
SELECT pgflow.mark_late_runs(interval '1 minute');
VACUUM ANALYZE;
SQL
runs=$(psql "$url" -XAtqc "SELECT count(*) FROM pgflow.flow_runs")
log "$runs runs in history"
token=$(psql "$url" -XAtqc "SELECT pgflow.create_api_token('bench', 'admin')")
run_id=$(psql "$url" -XAtqc "SELECT id FROM pgflow.flow_runs WHERE state_name = 'Failed' ORDER BY created_at DESC LIMIT 1")
work=$(mktemp -d)
"$bin/pgflow-api" --host 127.0.0.1 --port 0 --database-url "$url" >"$work/api.log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null; wait $api 2>/dev/null; rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
port=""
for _ in $(seq 1 300); do
  port=$(sed -n 's#^pgflow-api: listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$work/api.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || die "pgflow-api did not start: $(cat "$work/api.log")"

log "$requests requests per page, $rounds rounds, pgflow-api from $bin"
python3 - "$port" "$token" "$requests" "$rounds" "$run_id" <<'PY'
import http.client, statistics, sys, time
port, token, n, rounds, run_id = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pages = ["/", "/?window=7d", "/flow-runs", "/flow-runs?state=Failed", "/flow-runs?deployment=flow1/dep1&range=24h",
         "/flow-runs?tag=nightly&state=Crashed", "/flow-runs/" + run_id, "/deployments", "/deployments/flow1/dep1",
         "/work-queues", "/concurrency-limits", "/agents", "/flows"]
headers = {"Authorization": "Bearer " + token}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def get(path):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"{path}: HTTP {r.status}: {body[:300]!r}")
    return body
assets = len(get("/ui/app.css")) + len(get("/ui/app.js"))
print(f"{'page':45} {'p50 ms':>8} {'p99 ms':>8} {'HTML KB':>8} {'+CSS+JS KB':>10}")
for page in pages:
    get(page)  # warm
    p50s, p99s = [], []
    for _ in range(rounds):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            size = len(get(page))
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p50s.append(statistics.median(times))
        p99s.append(times[min(len(times) - 1, int(len(times) * 0.99))])
    print(f"{page[:45]:45} {statistics.median(p50s):8.1f} {statistics.median(p99s):8.1f} {size / 1024:8.1f} {(size + assets) / 1024:10.1f}")
PY
