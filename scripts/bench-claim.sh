#!/usr/bin/env bash
# Claim cost versus history size: single-run claims (pgflow.claim_flow_runs, p_max 1) with an empty
# history, then with 1,000,000 finished runs (and their 4 states each) in history.
#   scripts/bench-claim.sh [ROUNDS=3] [CLAIMS=3000]
# Each round enqueues CLAIMS runs, then pgbench claims them one per transaction on one connection.
# The history fixture is bulk-inserted with plain INSERTs (test data, not orchestration): it is what
# a million runs leave behind in flow_runs and flow_run_states.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
claims=${2:-3000}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_claim)
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_claim WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_claim" >/dev/null
scripts/apply-schema.sh "$url" 2>/dev/null
agent=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'claim', 'true')" -c "SELECT pgflow.register_agent('bench', '{default}')" | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', NULL, 1);" >"$work/claim.sql"

round() {
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/claim', array_fill('{}'::jsonb, ARRAY[$claims]), p_scheduled_time => now() - interval '1 minute')" >/dev/null
  psql "$url" -XAtqc "VACUUM ANALYZE pgflow.run_queue" >/dev/null
  pgbench -n -M prepared -c 1 -t "$claims" -f "$work/claim.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}

log "empty history: $rounds rounds of $claims claims"
for r in $(seq 1 "$rounds"); do round; done >"$work/empty"
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
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT r.id, s.type::pgflow.state_type, s.name, r.created_at + s.offs
  FROM pgflow.flow_runs r
  CROSS JOIN (VALUES ('SCHEDULED', 'Scheduled', interval '0'), ('PENDING', 'Pending', interval '0.5 s'),
                     ('RUNNING', 'Running', interval '1 s'), ('COMPLETED', 'Completed', interval '2 s')) AS s(type, name, offs)
 WHERE r.name LIKE 'history-%';
VACUUM ANALYZE;
SQL
log "1M-run history: $rounds rounds of $claims claims"
for r in $(seq 1 "$rounds"); do round; done >"$work/full"
e=$(median <"$work/empty"); f=$(median <"$work/full")
echo
echo "Claim latency (pgbench -M prepared -c 1, one claim_flow_runs(p_max 1) per transaction), medians of $rounds rounds x $claims claims, $(date -u +%F), $(nproc) cores"
printf '%-40s %12s\n' "history" "ms/claim"
printf '%-40s %12s\n' "empty" "$e"
printf '%-40s %12s\n' "1,000,000 finished runs" "$f"
printf '%-40s %12s\n' "ratio (goal <= 1.2)" "$(awk -v a="$f" -v b="$e" 'BEGIN{printf "%.2f", a/b}')"
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_claim WITH (FORCE)" >/dev/null
