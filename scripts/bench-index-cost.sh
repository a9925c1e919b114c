#!/usr/bin/env bash
# What 0011's listing indexes cost the hot path:  scripts/bench-index-cost.sh [ROUNDS=3] [RUNS=20000] [BATCH=100]
#
# Two databases with the current schema; in "without", 0011's index changes are undone (flow_runs_queue,
# flow_runs_tags and flow_runs_active_created dropped, flow_runs_deployment and flow_runs_failed back to 0002's shapes). Each round,
# in each database in turn: RUNS runs enqueued with pgflow.run_deployments (one statement), then drained
# in SQL the way the agent does it — claim BATCH with p_start (pgflow.claim_flow_runs), complete them with
# one pgflow.set_flow_run_states, one transaction each, one psql session — and measured: WAL bytes per run
# (pg_current_wal_lsn before and after) of the enqueue and of the drain, and the drain's runs/s. Each
# round starts with a CHECKPOINT, so the WAL includes a full-page image of every page first touched.
# PGFLOW_INDEX_DROP=pgflow.flow_runs_tags: "without" lacks only that index (one index's cost).
# Medians over ROUNDS; no Swift build needed. The machine is shared: compare the two columns, which ran
# interleaved, not their absolute values.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
runs=${2:-20000}
batch=${3:-100}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for v in without with; do
  url=$(url_with_database "$admin" "pgflow_bench_idx_$v")
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_idx_$v WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_idx_$v" >/dev/null
  psql "$url" -Xq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
  if [ "$v" = without ]; then
    if [ -n "${PGFLOW_INDEX_DROP:-}" ]; then  # one index's cost: "without" lacks only these (comma-separated)
      psql "$url" -Xq -v ON_ERROR_STOP=1 -c "DROP INDEX $PGFLOW_INDEX_DROP" >/dev/null
    else
    psql "$url" -Xq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DROP INDEX pgflow.flow_runs_queue, pgflow.flow_runs_tags, pgflow.flow_runs_active_created, pgflow.flow_runs_deployment, pgflow.flow_runs_failed;
CREATE INDEX flow_runs_deployment ON pgflow.flow_runs (deployment_id, created_at);
CREATE INDEX flow_runs_failed ON pgflow.flow_runs (end_time) WHERE state_type IN ('FAILED', 'CRASHED');
SQL
    fi
  fi
  agent=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'noop', 'true')" -c "SELECT pgflow.register_agent('bench', '{default}')" | tail -n 1)
  {
    for _ in $(seq 1 $(((runs + batch - 1) / batch))); do
      echo "SELECT coalesce(array_agg(flow_run_id), '{}') AS ids, count(*) AS n FROM pgflow.claim_flow_runs('$agent', NULL, $batch, true) \\gset"
      echo "SELECT count(*) FROM pgflow.set_flow_run_states(:'ids'::uuid[], array_fill('COMPLETED'::text, ARRAY[:n::int]), p_agent_id => '$agent');"
    done
  } >"$work/drain-$v.sql"
done
lsn() { psql "$1" -XAtc "SELECT pg_current_wal_lsn()"; }
bytes() { psql "$admin" -XAtc "SELECT pg_wal_lsn_diff('$2', '$1')"; }
round() {  # $1 = without|with; prints "enqueue-WAL/run drain-WAL/run runs/s"
  local url a b c t0 t1
  url=$(url_with_database "$admin" "pgflow_bench_idx_$1")
  psql "$url" -XAtqc "CHECKPOINT" >/dev/null 2>&1 || true
  a=$(lsn "$url")
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[$runs]), p_scheduled_time => now() - interval '1 minute')" >/dev/null
  b=$(lsn "$url")
  t0=$(date +%s.%N)
  psql "$url" -Xq -v ON_ERROR_STOP=1 -f "$work/drain-$1.sql" >/dev/null
  t1=$(date +%s.%N)
  c=$(lsn "$url")
  [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.run_queue")" = 0 ] || die "the drain left runs in the queue"
  echo "$(( $(bytes "$a" "$b") / runs )) $(( $(bytes "$b" "$c") / runs )) $(awk -v n="$runs" -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", n / (b - a)}')"
}
for i in $(seq "$rounds"); do
  for v in without with; do echo "$v $(round $v) $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/results" >&2; done
done
echo "Index cost of 0011, $(date -u '+%F %H:%M') UTC, $runs runs per round, batches of $batch, medians of $rounds rounds (load 1-min: $(cut -d' ' -f5 "$work/results" | tr '\n' ' '))"
printf '%-10s %22s %22s %14s\n' "" "enqueue WAL B/run" "drain WAL B/run" "drain runs/s"
for v in without with; do
  printf '%-10s %22s %22s %14s\n' "$v" "$(grep "^$v " "$work/results" | cut -d' ' -f2 | median)" \
    "$(grep "^$v " "$work/results" | cut -d' ' -f3 | median)" "$(grep "^$v " "$work/results" | cut -d' ' -f4 | median)"
done
for v in without with; do psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_idx_$v WITH (FORCE)" >/dev/null; done
