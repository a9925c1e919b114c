#!/usr/bin/env bash
# CPU per drained run, two schemas interleaved:  scripts/bench-drain-cpu.sh [ROUNDS=3] [JOBS=20000] [A.sql] [B.sql]
#
# On a shared machine runs/s mostly measure the neighbours; CPU seconds do not. Each round drains JOBS
# in-process no-op runs with 2 pgflow-bench-agent processes (as scripts/bench-agent.sh drain does) on a
# fresh database made from schema file A, then from B (alternating which goes first), and prints the CPU
# time PostgreSQL's processes spent (utime + stime of the postmaster and its children, exited ones
# included, from /proc) per run, the agents' CPU per run, and runs/s; then the medians. A and B default to
# the schema of the commit before HEAD (`git show HEAD~1:sql/schema.sql`) and sql/schema.sql; with only
# the private cluster of scripts/db.sh (it reads the postmaster's pid from the data directory).
# Example: scripts/bench-drain-cpu.sh 3 20000 <(git show bd19ea3:sql/schema.sql) sql/schema.sql
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
jobs=${2:-20000}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
ab_schemas "$work" "${3:-}" "${4:-}"

[ -z "${PGFLOW_DATABASE_URL:-}" ] || die "bench-drain-cpu.sh reads the private cluster's processes: unset PGFLOW_DATABASE_URL"
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_cpu)
bin=$(release_binaries pgflow-bench-agent)
hz=$(getconf CLK_TCK)
bench="(SELECT id FROM pgflow.work_queues WHERE name = 'bench')"  # the runs drained (a schema file may bring a history)

one() {  # $1 = schema file; prints "pg_us agent_us runs_per_s"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_cpu WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_cpu" >/dev/null
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$1" >/dev/null 2>&1 || die "could not apply $1"
  psql "$url" -XAtq >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'noop', 'swift:noop', p_work_queue => 'bench');
SQL
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[$jobs]))" -c CHECKPOINT >/dev/null
  local c0 c1 a1 a2 ag rate
  c0=$(postgres_cpu_ticks)
  "$bin/pgflow-bench-agent" serve "$url" 400 & a1=$!; pids+=($a1)
  "$bin/pgflow-bench-agent" serve "$url" 400 & a2=$!; pids+=($a2)
  until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED' AND work_queue_id = $bench")" -ge "$jobs" ]; do sleep 0.1; done
  c1=$(postgres_cpu_ticks)
  ag=$(( $(awk '{print $14 + $15}' "/proc/$a1/stat") + $(awk '{print $14 + $15}' "/proc/$a2/stat") ))
  kill -TERM "$a1" "$a2"; wait "$a1" "$a2" 2>/dev/null || true
  pids=()
  rate=$(psql "$url" -XAt -c "SELECT round(($jobs / extract(epoch FROM max(\"timestamp\") FILTER (WHERE state_type = 'COMPLETED')
                                      - min(\"timestamp\") FILTER (WHERE state_type = 'PENDING')))::numeric) FROM pgflow.flow_run_states
                                WHERE flow_run_id IN (SELECT id FROM pgflow.flow_runs WHERE work_queue_id = $bench)")
  [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_run_states WHERE flow_run_id IN (SELECT id FROM pgflow.flow_runs WHERE work_queue_id = $bench)")" = $((4 * jobs)) ] \
    || die "a run lacks one of its four states"
  awk -v c=$((c1 - c0)) -v a="$ag" -v hz="$hz" -v n="$jobs" -v r="$rate" 'BEGIN { printf "%.0f %.0f %s\n", c / hz / n * 1e6, a / hz / n * 1e6, r }'
}

: >"$work/A"; : >"$work/B"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="a b"; else order="b a"; fi
  for x in $order; do
    read -r pg ag rate <<<"$(one "$work/$x.sql")"
    X=$(echo "$x" | tr ab AB)
    echo "$pg $ag $rate" >>"$work/$X"
    log "round $r, $X: PostgreSQL $pg µs/run, agents $ag µs/run, $rate runs/s (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_cpu WITH (FORCE)" >/dev/null
echo
echo "CPU per drained run ($jobs no-op runs, 2 agents, $rounds interleaved rounds), $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for X in A B; do
  printf '%s: PostgreSQL %s µs/run (rounds %s), agents %s µs/run, %s runs/s (medians)\n' "$X" \
    "$(awk '{print $1}' "$work/$X" | median)" "$(awk '{print $1}' "$work/$X" | paste -sd/)" \
    "$(awk '{print $2}' "$work/$X" | median)" "$(awk '{print $3}' "$work/$X" | median)"
done
