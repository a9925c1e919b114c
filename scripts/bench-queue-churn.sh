#!/usr/bin/env bash
# Queue tables after churn:  scripts/bench-queue-churn.sh [RUNS=1000000] [BATCH=100000] [CLAIMS=3000]
#
# Does the work queue stay fast after RUNS runs went through it, with autovacuum as configured and no
# manual VACUUM? On a fresh database (release builds, 2 pgflow-bench-agent processes serving in-process
# no-op flows), prints before and after the churn:
#   - the claim: CLAIMS runs enqueued, then claimed one per transaction by pgbench (claim_flow_runs with
#     p_max 1 and p_start, -M prepared, one connection): average ms per claim;
#   - the sizes of run_queue (heap and indexes) and its live/dead tuples and autovacuum count.
# The churn (queue bench, the one pgflow-bench-agent serves): RUNS no-op runs enqueued BATCH at a time (pgflow.run_deployments), each batch drained by the
# agents before the next; every run ends Completed (checked). The history tables grow by design; the
# queue table is the one that must not.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
runs=${1:-1000000}
batch=${2:-100000}
claims=${3:-3000}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_churn)
bin=$(release_binaries pgflow-bench-agent)
pids=()
work=$(mktemp -d)
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_churn WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_churn" >/dev/null
scripts/apply-schema.sh "$url" 2>/dev/null
psql "$url" -XAtq >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_work_queue('probe');
SELECT pgflow.create_deployment('churn', 'noop', 'swift:noop', p_work_queue => 'bench');
SELECT pgflow.create_deployment('churn', 'probe', 'swift:noop', p_work_queue => 'probe');
SQL
agent=$(psql "$url" -XAtc "SELECT pgflow.register_agent('claim-probe', ARRAY['probe'])")
echo "SELECT * FROM pgflow.claim_flow_runs('$agent', ARRAY['probe'], 1, true);" >"$work/claim.sql"

queue_figures() {  # $1 = label
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('churn/probe', array_fill('{}'::jsonb, ARRAY[$claims]))" >/dev/null
  local ms
  ms=$(pgbench -n -M prepared -c 1 -t "$claims" -f "$work/claim.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  psql "$url" -XAtF ' ' -c "
    SELECT '$1', '$ms', (pg_relation_size('pgflow.run_queue') / 1024) || 'kB', (pg_indexes_size('pgflow.run_queue') / 1024) || 'kB',
           s.n_live_tup, s.n_dead_tup, s.autovacuum_count, (pg_total_relation_size('pgflow.flow_runs') / 1048576) || 'MB'
      FROM pg_stat_user_tables s WHERE s.relid = 'pgflow.run_queue'::regclass" >>"$work/figures"
}

log "before: $claims claims on a fresh queue"
queue_figures before
"$bin/pgflow-bench-agent" serve "$url" 400 & pids+=($!)
"$bin/pgflow-bench-agent" serve "$url" 400 & pids+=($!)
done_runs=0
start=$(date +%s)
while [ "$done_runs" -lt "$runs" ]; do
  n=$(( runs - done_runs < batch ? runs - done_runs : batch ))
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('churn/noop', array_fill('{}'::jsonb, ARRAY[$n]))" >/dev/null
  done_runs=$((done_runs + n))
  until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.run_queue")" = 0 ]; do sleep 0.5; done
  log "churn: $done_runs of $runs runs through the queue ($(( $(date +%s) - start )) s)"
done
until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id
                                WHERE d.name = 'noop' AND r.state_type <> 'COMPLETED'")" = 0 ]; do sleep 0.5; done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()
log "after: $claims claims on the same queue"
queue_figures after

echo
echo "Queue after churn: $runs runs in batches of $batch, 2 agents, autovacuum as configured, no manual VACUUM;"
echo "$(date -u '+%F %H:%M') UTC, $(nproc) cores, PostgreSQL $(psql "$url" -XAtc 'SHOW server_version' | cut -d' ' -f1), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %14s %12s %12s %10s %10s %12s %14s\n' "" "claim ms/avg" "run_queue" "its indexes" "live" "dead" "autovacuums" "flow_runs"
while read -r label ms heap idx live dead av hist; do
  printf '%-8s %14s %12s %12s %10s %10s %12s %14s\n' "$label" "$ms" "$heap" "$idx" "$live" "$dead" "$av" "$hist"
done <"$work/figures"
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_churn WITH (FORCE)" >/dev/null
