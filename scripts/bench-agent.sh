#!/usr/bin/env bash
# Agent benchmarks, all against one local PostgreSQL (release builds):
#   scripts/bench-agent.sh [RUNS=200] [DRAIN=20000]
#   scripts/bench-agent.sh drain [DRAIN=20000]   the drain alone (3.), one line: runs/s seconds state-rows
#                                                (scripts/bench-peers.sh and bench-cost.sh call this)
# 1. enqueue (psql-style run_deployment) -> subprocess started, idle pgflow-agent: p50/p99 over RUNS runs
# 2. enqueue -> in-process Swift flow body started, idle agent: p50/p99 over RUNS runs
#    (runs are enqueued one at a time, 50 ms apart; "started" is the timestamp of the agent's
#    "started … as pid" log line, or of the flow's first log line; enqueue is the run's created_at, the
#    start of the enqueueing transaction; also shown from when run_deployment returned, i.e. committed)
#    Printed with them: one commit's latency on this cluster (the floor: an enqueue and a claim are two
#    commits) and run_deployment's own, both pgbench averages taken just before.
# 3. drain: DRAIN no-op in-process runs enqueued up front, then 2 agents drain them; runs/s from the first
#    Pending to the last Completed state, with every state transition recorded (checked)
#    (PGFLOW_BENCH_AGENTS: how many agent processes, default 2; PGFLOW_BENCH_LIMIT: each one's --limit,
#    default 10000, i.e. no cap on the runs in flight, as PgQueuer's workers have none in bench-peers.sh
#    (its max_concurrent_tasks defaults to None); 400 until 2026-12-05, which held each agent's claims
#    back until earlier completions had committed (−9 % drain rate on this machine, BENCHMARKS.md); PGFLOW_BENCH_AGENT_URL: the URL they use, default the database's own, e.g. a PgBouncer's;
#    agent i sets application_name=pgflow-bench-agent-i. scripts/bench-scale.sh and bench-pgbouncer.sh
#    use these.)
# 4. idle cost: transactions/s that 10 idle pgflow-agent processes cause (pg_stat_database, 20 s)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
mode=all
if [ "${1:-}" = drain ]; then mode=drain; shift; runs=0; drain=${1:-20000}; else runs=${1:-200}; drain=${2:-20000}; fi

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_agent)
if [ -z "${PGFLOW_BENCH_NO_BUILD:-}" ]; then
  log "building release binaries"
  swift build -c release --product pgflow-agent >/dev/null
  swift build -c release --product pgflow-bench-agent >/dev/null
fi
bin=$(swift build -c release --show-bin-path)
pids=()
work=$(mktemp -d)
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

fresh() {
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_agent WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_agent" >/dev/null
  scripts/apply-schema.sh "$url" 2>/dev/null
  # PGFLOW_BENCH_SQL: a SQL file applied on top (to measure a schema change before it is a migration)
  if [ -n "${PGFLOW_BENCH_SQL:-}" ]; then psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$PGFLOW_BENCH_SQL" >/dev/null; fi
  psql "$url" -XAtq >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'cmd', 'true', p_work_queue => 'bench');
SELECT pgflow.create_deployment('bench', 'noop', 'swift:noop', p_work_queue => 'bench');
SELECT pgflow.create_deployment('bench', 'stamp', 'swift:stamp', p_work_queue => 'bench');
SQL
}
stop_all() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
# Waits through one psql session that counts every 0.5 s (each count its own transaction: a DO loop's
# snapshot would hold back pruning during the whole drain). A psql started every 0.2 s, as until 2026-12-05,
# cost ~8 % of the 2 cores during a drain (perf: psql start-up and a new backend each time), CPU taken from
# the agents and PostgreSQL under measurement; the rates come from the state rows' timestamps, not this wait.
wait_completed() {  # $1 = expected count
  local n
  coproc WAITER { psql "$url" -XAtq; }
  while :; do
    echo "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED';" >&"${WAITER[1]}"
    read -r n <&"${WAITER[0]}" || die "wait_completed: psql ended"
    [ "$n" -ge "$1" ] && break
    sleep 0.5
  done
  eval "exec ${WAITER[1]}>&-"
  wait "$WAITER_PID" 2>/dev/null || true
}
latency() {  # $1 = log filter, $2 = file of "run id,enqueue returned" lines
  psql "$url" -Xq -c "CREATE TEMP TABLE enq (id uuid, returned timestamptz)" -c "\\copy enq FROM '$2' WITH (FORMAT csv)" -AtF ' ' -c "
    SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 2),
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 2), count(*),
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY after_commit))::numeric, 2),
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY after_commit))::numeric, 2)
      FROM (SELECT DISTINCT ON (r.id) extract(epoch FROM l.\"timestamp\" - r.created_at) * 1000 AS ms,
                   extract(epoch FROM l.\"timestamp\" - e.returned) * 1000 AS after_commit
              FROM pgflow.flow_runs r JOIN pgflow.logs l ON l.flow_run_id = r.id JOIN enq e ON e.id = r.id
             WHERE $1 ORDER BY r.id, l.id) x"
}

# The drain: $drain no-op in-process runs enqueued up front, 2 agent processes; sets seconds, rate, states.
# Every run must be Completed with its four states recorded (Scheduled, Pending, Running, Completed).
# PGFLOW_BENCH_BEFORE / PGFLOW_BENCH_AFTER, when set, are commands run just before the agents start and
# just after the last run completed (bench-cost.sh reads PostgreSQL's statistics with them).
drain_once() {
  fresh
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[$drain]))" >/dev/null
  psql "$url" -XAtqc "CHECKPOINT" >/dev/null
  [ -n "${PGFLOW_BENCH_BEFORE:-}" ] && eval "$PGFLOW_BENCH_BEFORE"
  local i agent_url=${PGFLOW_BENCH_AGENT_URL:-$url}
  for i in $(seq 1 "${PGFLOW_BENCH_AGENTS:-2}"); do
    "$bin/pgflow-bench-agent" serve "$(url_with_param "$agent_url" application_name "pgflow-bench-agent-$i")" "${PGFLOW_BENCH_LIMIT:-10000}" & pids+=($!)
  done
  wait_completed "$drain"
  [ -n "${PGFLOW_BENCH_AFTER:-}" ] && eval "$PGFLOW_BENCH_AFTER"
  read -r seconds rate states <<<"$(psql "$url" -XAtF ' ' -c "
    SELECT round(extract(epoch FROM max(\"timestamp\") FILTER (WHERE state_type = 'COMPLETED') - min(\"timestamp\") FILTER (WHERE state_type = 'PENDING'))::numeric, 3),
           round(($drain / extract(epoch FROM max(\"timestamp\") FILTER (WHERE state_type = 'COMPLETED') - min(\"timestamp\") FILTER (WHERE state_type = 'PENDING')))::numeric),
           count(*) FROM pgflow.flow_run_states")"
  local bad
  bad=$(psql "$url" -XAtc "
    SELECT count(*) FROM pgflow.flow_runs r
     WHERE r.state_name <> 'Completed'
        OR (SELECT array_agg(s.state_name ORDER BY s.id) FROM pgflow.flow_run_states s WHERE s.flow_run_id = r.id)
           IS DISTINCT FROM ARRAY['Scheduled', 'Pending', 'Running', 'Completed']")
  [ "$bad" = 0 ] && [ "$states" = $((4 * drain)) ] \
    || die "drain: $bad runs lack a state of Scheduled, Pending, Running, Completed ($states state rows for $drain runs)"
  # the agents' own CPU (utime + stime of their whole lives, start-up included), on standard error
  local p ticks=0
  for p in "${pids[@]}"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  log "drain: the agents' CPU $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$drain" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }') µs per run"
  stop_all
}

if [ "$mode" = drain ]; then
  drain_once
  echo "$rate $seconds $states"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_agent WITH (FORCE)" >/dev/null
  exit 0
fi

log "1/4 command latency ($runs runs)"
fresh
PGFLOW_DATABASE_URL="$url" "$bin/pgflow-agent" --queue bench --limit 10 2>/dev/null & pids+=($!)
sleep 2
"$bin/pgflow-bench-agent" enqueue "$url" bench/cmd "$runs" 50 >"$work/cmd.csv"
wait_completed "$runs"
read -r cmd50 cmd99 cmdn cmdc50 cmdc99 <<<"$(latency "l.name = 'pgflow.agent' AND l.message LIKE 'started %'" "$work/cmd.csv")"
stop_all

log "2/4 in-process flow latency ($runs runs)"
fresh
# The floor under both latencies: an enqueue and a claim are two commits, each waiting for its WAL
# flush. Measured here, on the same cluster, just before: a one-row UPDATE per transaction, and
# run_deployment alone (pgbench -M prepared, one connection, 300 transactions each).
psql "$url" -XAtqc "CREATE TABLE bench_tick (id int PRIMARY KEY, n bigint); INSERT INTO bench_tick VALUES (1, 0)"
echo "UPDATE bench_tick SET n = n + 1 WHERE id = 1;" >"$work/tick.sql"
echo "SELECT pgflow.run_deployment('bench/cmd', p_scheduled_time => now() + interval '1 day');" >"$work/enq.sql"
commit_ms=$(pgbench -n -M prepared -c 1 -t 300 -f "$work/tick.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
enqueue_ms=$(pgbench -n -M prepared -c 1 -t 300 -f "$work/enq.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
"$bin/pgflow-bench-agent" serve "$url" 10 & pids+=($!)
sleep 2
"$bin/pgflow-bench-agent" enqueue "$url" bench/stamp "$runs" 50 >"$work/swift.csv"
wait_completed "$runs"
read -r swift50 swift99 swiftn swiftc50 swiftc99 <<<"$(latency "l.name = 'flow'" "$work/swift.csv")"
stop_all

log "3/4 drain of $drain in-process no-op runs by 2 agents"
drain_once

log "4/4 idle cost of 10 agents"
fresh
for i in $(seq 1 10); do PGFLOW_DATABASE_URL="$url" "$bin/pgflow-agent" --queue bench 2>/dev/null & pids+=($!); done
sleep 3
x0=$(psql "$url" -XAtc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
sleep 20
x1=$(psql "$url" -XAtc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
stop_all
idle=$(awk -v a="$x0" -v b="$x1" 'BEGIN{printf "%.1f", (b-a-2)/20}')  # minus this script's own two reads

echo
echo "Agent benchmarks, $(date -u +%F), $(nproc) cores, PostgreSQL $(psql "$url" -XAtc 'SHOW server_version' | cut -d' ' -f1), release build"
printf '%-62s %s\n' "enqueue -> subprocess started (idle agent, $cmdn runs)" "p50 $cmd50 ms, p99 $cmd99 ms (from the enqueue's commit: p50 $cmdc50 ms, p99 $cmdc99 ms)"
printf '%-62s %s\n' "enqueue -> in-process flow started (idle agent, $swiftn runs)" "p50 $swift50 ms, p99 $swift99 ms (from the enqueue's commit: p50 $swiftc50 ms, p99 $swiftc99 ms)"
printf '%-62s %s\n' "one commit (a one-row UPDATE, pgbench -c1 average)" "$commit_ms ms: the floor of enqueue -> start is two of these"
printf '%-62s %s\n' "run_deployment alone, committed (pgbench -c1 average)" "$enqueue_ms ms"
printf '%-62s %s\n' "drain $drain no-op in-process runs, 2 agents" "$rate runs/s ($seconds s, $states state rows = 4 per run)"
printf '%-62s %s\n' "idle cost, 10 agents" "$idle transactions/s"
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_agent WITH (FORCE)" >/dev/null
