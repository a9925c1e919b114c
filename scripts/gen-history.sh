#!/usr/bin/env bash
# History at scale:  scripts/gen-history.sh [RUNS=10000000] [ROUNDS=3] [CLAIMS=2000]
#
# In a database of its own (pgflow_bench_history): measures the claim (pgflow.claim_flow_runs with
# p_max 1 and p_start, one per transaction, pgbench -M prepared -c 1) with an empty history, then
# generates RUNS finished runs with 4 states each (Scheduled, Pending, Running, Completed; 1 in 100
# Failed), 1,000,000 per transaction with plain INSERTs (test data, not orchestration: what RUNS runs
# leave behind in flow_runs and flow_run_states), VACUUM ANALYZE, and measures again: the claim, and the
# listing queries the CLI, the API and the dashboard use (p50 / p99 over 200 calls each, pgbench
# per-transaction log). Prints the table sizes too. Leaves the database for further queries
# (drop it with: psql "$(scripts/db.sh url)" -c 'DROP DATABASE pgflow_bench_history').
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
runs=${1:-10000000}
rounds=${2:-3}
claims=${3:-2000}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_history)
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_history WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_history" >/dev/null
scripts/apply-schema.sh "$url" 2>/dev/null
if [ -n "${PGFLOW_BENCH_SQL:-}" ]; then psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$PGFLOW_BENCH_SQL" >/dev/null; fi
agent=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'claim', 'true')" -c "SELECT pgflow.register_agent('bench', '{default}')" | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', NULL, 1, true);" >"$work/claim.sql"
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

claim_round() {  # prints ms per claim
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/claim', array_fill('{}'::jsonb, ARRAY[$claims]), p_scheduled_time => now() - interval '1 minute')" >/dev/null
  psql "$url" -XAtqc "VACUUM ANALYZE pgflow.run_queue" >/dev/null
  pgbench -n -M prepared -c 1 -t "$claims" -f "$work/claim.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
latency() {  # $1 = label, $2 = SQL; prints "label p50 p99" over 200 calls
  echo "$2" >"$work/q.sql"
  (cd "$work" && rm -f pgbench_log.* && pgbench -n -M prepared -c 1 -t 200 -l -f q.sql "$url" >/dev/null 2>&1)
  awk '{print $3 / 1000}' "$work"/pgbench_log.* | sort -n |
    awk -v l="$1" '{a[NR]=$1} END {printf "%-58s %8.2f %8.2f\n", l, a[int(NR*0.5)+1], a[int(NR*0.99)]}'
}

log "empty history: $rounds rounds of $claims claims"
for r in $(seq 1 "$rounds"); do claim_round; done >"$work/empty"

log "generating $runs finished runs with 4 states each"
done_runs=0
while [ "$done_runs" -lt "$runs" ]; do
  n=$((runs - done_runs < 1000000 ? runs - done_runs : 1000000))
  psql "$url" -Xq -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TEMP TABLE batch AS
SELECT gen_random_uuid() AS id, g AS k, timestamptz '2026-01-01' + g * interval '2 seconds' AS t
  FROM generate_series($done_runs + 1, $done_runs + $n) g;
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, parameters, run_count,
                              expected_start_time, start_time, end_time, total_run_time,
                              state_type, state_name, state_timestamp, created_at)
SELECT b.id, 'history-' || b.k, d.flow_id, d.id, d.work_queue_id, '{}', 1,
       b.t, b.t + interval '1 second', b.t + interval '2 seconds', interval '1 second',
       CASE WHEN b.k % 100 = 0 THEN 'FAILED' ELSE 'COMPLETED' END::pgflow.state_type,
       CASE WHEN b.k % 100 = 0 THEN 'Failed' ELSE 'Completed' END, b.t + interval '2 seconds', b.t
  FROM batch b, pgflow.deployments d;
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT b.id, s.type::pgflow.state_type, CASE WHEN s.n = 4 AND b.k % 100 = 0 THEN 'Failed' ELSE s.name END, b.t + s.offs
  FROM batch b
 CROSS JOIN (VALUES (1, 'SCHEDULED', 'Scheduled', interval '0'), (2, 'PENDING', 'Pending', interval '0.5 s'),
                    (3, 'RUNNING', 'Running', interval '1 s'), (4, 'COMPLETED', 'Completed', interval '2 s')) AS s(n, type, name, offs)
 WHERE s.n < 4 OR b.k % 100 <> 0
UNION ALL
SELECT b.id, 'FAILED', 'Failed', b.t + interval '2 s' FROM batch b WHERE b.k % 100 = 0
 ORDER BY 1;
SQL
  done_runs=$((done_runs + n))
  log "  $done_runs runs"
done
log "VACUUM ANALYZE"
psql "$url" -XAtqc "VACUUM ANALYZE" >/dev/null

log "full history: $rounds rounds of $claims claims"
for r in $(seq 1 "$rounds"); do claim_round; done >"$work/full"
e=$(median <"$work/empty"); f=$(median <"$work/full")
run=$(psql "$url" -XAtc "SELECT id FROM pgflow.flow_runs WHERE name = 'history-5000'")

echo
echo "History at scale: $runs finished runs, $(date -u '+%F %H:%M') UTC, $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1), load $(cut -d' ' -f1-3 /proc/loadavg)"
psql "$url" -XAtF ' ' -c "SELECT 'sizes: flow_runs ' || pg_size_pretty(pg_total_relation_size('pgflow.flow_runs')) || ', flow_run_states '
                                  || pg_size_pretty(pg_total_relation_size('pgflow.flow_run_states')) || ', run_queue '
                                  || pg_size_pretty(pg_total_relation_size('pgflow.run_queue')) || '; state rows '
                                  || (SELECT count(*) FROM pgflow.flow_run_states)"
printf '%-58s %8s\n' "claim (p_max 1, p_start), ms: empty history" "$e"
printf '%-58s %8s\n' "claim, ms: with the history" "$f"
printf '%-58s %8s\n' "ratio (goal <= 1.2)" "$(awk -v a="$f" -v b="$e" 'BEGIN{printf "%.2f", a/b}')"
printf '%-58s %8s %8s\n' "listing (200 calls each)" "p50 ms" "p99 ms"
latency "flow_run_page, newest 50 (API, dashboard)" "SELECT count(*) FROM pgflow.flow_run_page(p_limit => 50);"
latency "flow_run_page, state FAILED (1 in 100)" "SELECT count(*) FROM pgflow.flow_run_page(p_state_type => 'FAILED', p_limit => 50);"
latency "flow_run_page, state RUNNING (none in history)" "SELECT count(*) FROM pgflow.flow_run_page(p_state_type => 'RUNNING', p_limit => 50);"
latency "flow_run_page, deployment bench/claim" "SELECT count(*) FROM pgflow.flow_run_page(p_deployment => 'bench/claim', p_limit => 50);"
latency "list_flow_runs, newest 50 (CLI flow-run ls)" "SELECT count(*) FROM pgflow.list_flow_runs(p_limit => 50);"
latency "list_flow_runs --state failed (CLI)" "SELECT count(*) FROM pgflow.list_flow_runs(p_state => 'failed', p_limit => 50);"
latency "one run's states (flow_run_state_history)" "SELECT count(*) FROM pgflow.flow_run_state_history('$run');"
latency "get_flow_run (API run page)" "SELECT count(*) FROM pgflow.get_flow_run('$run');"
