#!/usr/bin/env bash
# Enqueue -> start latency and the CPU of one enqueue and one claim, two schemas interleaved:
#   scripts/bench-latency-ab.sh [ROUNDS=3] [RUNS=200] [A.sql] [B.sql]
#
# Per round and schema (A, then B; the order alternates), on a fresh database made from the schema file:
#   latency  an idle in-process agent (pgflow-bench-agent serve, limit 10) and RUNS runs enqueued one at a
#            time 50 ms apart (as scripts/bench-agent.sh step 2): p50/p99 from the enqueue's start (the run's
#            created_at) to the flow body's first log line, and p50 of the enqueue alone (created_at to
#            run_deployment's return, committed) and of the rest (return to the body's first line)
#   CPU      one psql session: 2,000 run_deployment calls, then 2,000 one-run claims
#            (claim_flow_runs(agent, queues, 1, true)), each its own transaction; the backend's CPU time
#            (utime + stime from /proc) per call — a figure the neighbours' load inflates far less than
#            wall time
# Then the medians. A and B default to the schema of the commit before HEAD and sql/schema.sql.
# PGFLOW_BENCH_PUSH_A / PGFLOW_BENCH_PUSH_B = 0 run that side's agent with pushes off (claims only):
# pull against push on one schema is PGFLOW_BENCH_PUSH_A=0 scripts/bench-latency-ab.sh 3 200 sql/schema.sql sql/schema.sql
# PGFLOW_BENCH_OTHER_LIMIT=N adds a deployment with a concurrency limit of N to the queue (its runs are not
# measured): before 0020 any active limit turned pushes off.
# Example: scripts/bench-latency-ab.sh 3 200 <(git show 91d300f:sql/schema.sql) sql/schema.sql
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
runs=${2:-200}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
ab_schemas "$work" "${3:-}" "${4:-}"

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_latency)
bin=$(release_binaries pgflow-bench-agent)
hz=$(getconf CLK_TCK)
bench="(SELECT id FROM pgflow.work_queues WHERE name = 'bench')"  # the runs measured (a schema file may bring a history)
calls=2000

fresh() {  # $1 = schema file
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_latency WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_latency" >/dev/null
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$1" >/dev/null 2>&1 || die "could not apply $1"
  psql "$url" -XAtq >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'stamp', 'swift:stamp', p_work_queue => 'bench');
SQL
  if [ -n "${PGFLOW_BENCH_OTHER_LIMIT:-}" ]; then  # a limit on another deployment of the queue (as run.sh's examples)
    [[ "$PGFLOW_BENCH_OTHER_LIMIT" =~ ^[0-9]+$ ]] || die "PGFLOW_BENCH_OTHER_LIMIT must be a whole number"
    psql "$url" -XAtq -v ON_ERROR_STOP=1 >/dev/null \
      -c "SELECT pgflow.create_deployment('bench', 'limited', 'swift:stamp', p_work_queue => 'bench', p_concurrency_limit => $PGFLOW_BENCH_OTHER_LIMIT)"
  fi
}

latency() {  # $1 = schema file, $2 = 0 for pushes off; prints "p50 p99 enqueue_p50 rest_p50"
  fresh "$1"
  local agent
  PGFLOW_BENCH_PUSH="$2" "$bin/pgflow-bench-agent" serve "$url" 10 & agent=$!; pids+=($agent)
  sleep 2
  "$bin/pgflow-bench-agent" enqueue "$url" bench/stamp "$runs" 50 >"$work/enq.csv"
  until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED' AND work_queue_id = $bench")" -ge "$runs" ]; do sleep 0.2; done
  kill -TERM "$agent"; wait "$agent" 2>/dev/null || true
  pids=()
  psql "$url" -XAtq -c "CREATE TEMP TABLE enq (id uuid, returned timestamptz)" -c "\\copy enq FROM '$work/enq.csv' WITH (FORMAT csv)" -F ' ' -c "
    WITH x AS (
      SELECT extract(epoch FROM s.at - r.created_at) * 1000 AS total, extract(epoch FROM e.returned - r.created_at) * 1000 AS enq,
             extract(epoch FROM s.at - e.returned) * 1000 AS rest
        FROM pgflow.flow_runs r JOIN enq e ON e.id = r.id
        CROSS JOIN LATERAL (SELECT min(l.\"timestamp\") AS at FROM pgflow.logs l WHERE l.flow_run_id = r.id AND l.name = 'flow') s)
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total)::numeric, 2),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY enq)::numeric, 2), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY rest)::numeric, 2)
      FROM x" | tail -1
}

cpu() {  # $1 = schema file; prints "enqueue_us claim_us"
  fresh "$1"
  local agent i
  agent=$(psql "$url" -XAtc "SELECT pgflow.register_agent('bench-cpu', ARRAY['bench'])")
  {
    echo "SELECT pg_backend_pid() AS pid \\gset"
    echo "\\setenv PGFLOW_BENCH_PID :pid"
    for i in $(seq 50); do
      echo "SELECT pgflow.run_deployment('bench/stamp') IS NULL;"
      echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', ARRAY['bench'], 1, true);"
    done
    echo "\\! echo ticks \$(awk '{print \$14 + \$15}' /proc/\$PGFLOW_BENCH_PID/stat)"
    for i in $(seq $calls); do echo "SELECT pgflow.run_deployment('bench/stamp') IS NULL;"; done
    echo "\\! echo ticks \$(awk '{print \$14 + \$15}' /proc/\$PGFLOW_BENCH_PID/stat)"
    for i in $(seq $calls); do echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', ARRAY['bench'], 1, true);"; done
    echo "\\! echo ticks \$(awk '{print \$14 + \$15}' /proc/\$PGFLOW_BENCH_PID/stat)"
  } | psql "$url" -XAtq -v ON_ERROR_STOP=1 | sed -n 's/^ticks //p' >"$work/ticks"
  [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'RUNNING' AND work_queue_id = $bench")" = $((calls + 50)) ] \
    || die "the CPU pass did not start every run it enqueued"
  awk -v hz="$hz" -v n="$calls" 'NR == 1 {a = $1} NR == 2 {b = $1} NR == 3 {c = $1}
    END {printf "%.0f %.0f\n", (b - a) / hz / n * 1e6, (c - b) / hz / n * 1e6}' "$work/ticks"
}

: >"$work/A"; : >"$work/B"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="a b"; else order="b a"; fi
  for x in $order; do
    X=$(echo "$x" | tr ab AB)
    push_var="PGFLOW_BENCH_PUSH_$X"
    read -r p50 p99 e50 r50 <<<"$(latency "$work/$x.sql" "${!push_var:-1}")"
    read -r ecpu ccpu <<<"$(cpu "$work/$x.sql")"
    echo "$p50 $p99 $e50 $r50 $ecpu $ccpu" >>"$work/$X"
    log "round $r, $X: enqueue -> start p50 $p50 p99 $p99 ms (enqueue $e50, rest $r50); CPU enqueue $ecpu µs, claim $ccpu µs (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_latency WITH (FORCE)" >/dev/null
echo
echo "Enqueue -> in-process start and CPU per call ($runs runs per latency pass, $calls calls per CPU pass, $rounds interleaved rounds), $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for X in A B; do
  col() { awk -v c="$1" '{print $c}' "$work/$X"; }
  printf '%s: p50 %s ms (rounds %s), p99 %s ms, enqueue p50 %s ms, rest p50 %s ms; CPU run_deployment %s µs, one-run claim %s µs (medians)\n' "$X" \
    "$(col 1 | median)" "$(col 1 | paste -sd/)" "$(col 2 | median)" "$(col 3 | median)" "$(col 4 | median)" "$(col 5 | median)" "$(col 6 | median)"
done
