#!/usr/bin/env bash
# The cost of 0003's hardening on the agent's hot path: claim one run (p_start) and complete it with
# pgflow.set_flow_run_states, once per transaction through pgbench on one connection, on a schema with
# migrations 0001-0002 only and on the full schema, alternating, medians of ROUNDS rounds.
#   scripts/bench-transition.sh [ROUNDS=3] [RUNS=2000]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
runs=${2:-2000}

ensure_system_packages
PGFLOW_SKIP_SCHEMA=1 scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for schema in before after; do
  url=$(url_with_database "$admin" "pgflow_bench_$schema")
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_$schema WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_$schema" >/dev/null
  if [ "$schema" = before ]; then
    psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/migrations/0001_initial.sql -f sql/migrations/0002_engine.sql >/dev/null
  else
    psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
  fi
  agent=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'cycle', 'true')" -c "SELECT pgflow.register_agent('bench', '{default}')" | tail -n 1)
  cat >"$work/$schema.sql" <<SQL
SELECT flow_run_id AS id FROM pgflow.claim_flow_runs('$agent', NULL, 1, true) \gset
SELECT count(*) FROM pgflow.set_flow_run_states(ARRAY[:id]::uuid[], ARRAY['COMPLETED'], p_agent_id => '$agent');
SQL
done
round() {
  local url
  url=$(url_with_database "$admin" "pgflow_bench_$1")
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/cycle', array_fill('{}'::jsonb, ARRAY[$runs]), p_scheduled_time => now() - interval '1 minute')" >/dev/null
  psql "$url" -XAtqc "VACUUM ANALYZE pgflow.run_queue" >/dev/null
  pgbench -n -M prepared -c 1 -t "$runs" -f "$work/$1.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
for i in $(seq "$rounds"); do
  echo "before $(round before)" >>"$work/results"
  echo "after $(round after)" >>"$work/results"
done
for schema in before after; do
  printf '%-7s %s ms per claim+complete (median of %s rounds of %s)\n' "$schema" "$(grep "^$schema " "$work/results" | cut -d' ' -f2 | median)" "$rounds" "$runs"
done
