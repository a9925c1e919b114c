#!/usr/bin/env bash
# Scheduler benchmark (release build):   scripts/bench-scheduler.sh [DEPLOYMENTS=10000] [LATENCY_SECONDS=60]
#  1. DEPLOYMENTS deployments, each with an hourly cron schedule (minutes spread): the time of one full
#     scheduler pass (`pgflow-scheduler --once`) that materialises a day ahead (24 runs each), then of
#     a second, steady-state pass.
#  2. Start latency of scheduled runs with an idle agent: 20 deployments with 2-second interval
#     schedules, one scheduler, one agent (entrypoint `true`), for LATENCY_SECONDS; prints p50/p90/p99/max
#     of start_time - scheduled time over the runs due after a 5 s warm-up; then again with the
#     scheduler's due-run NOTIFY off (--no-wake: agents find due runs by their ~1 s poll).
# PGFLOW_SCRATCH_PATH picks the build folder (default .build).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
n=${1:-10000}
secs=${2:-60}
scratch=${PGFLOW_SCRATCH_PATH:-.build}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
log "building (release)"
swift build -c release --scratch-path "$scratch" >/dev/null
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
export PGFLOW_SQL_DIR="$PGFLOW_ROOT/sql" PGFLOW_LOG_LEVEL=warning
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fresh() {
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_sched WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_sched" >/dev/null 2>&1
  PGFLOW_DATABASE_URL=$(url_with_database "$admin" pgflow_bench_sched)
  export PGFLOW_DATABASE_URL
  "$bin/pgflow" db upgrade >/dev/null
}

log "1. $n deployments with an hourly cron schedule"
fresh
psql "$PGFLOW_DATABASE_URL" -Xq >/dev/null <<SQL
SELECT count(pgflow.create_deployment('bench', 'd' || i, 'true')) FROM generate_series(1, $n) i;
SELECT count(pgflow.create_deployment_schedule('bench/d' || i, 'cron', (i % 60) || ' * * * *')) FROM generate_series(1, $n) i;
VACUUM ANALYZE;
SQL
echo "first pass (materialise 24 h ahead):"
"$bin/pgflow-scheduler" --once --retention-days 0 | sed 's/^/  /'
echo "second pass (steady state):"
"$bin/pgflow-scheduler" --once --retention-days 0 | sed 's/^/  /'
psql "$PGFLOW_DATABASE_URL" -XAtc "SELECT '  scheduled runs in the database: ' || count(*) FROM pgflow.flow_runs"

for mode in wake no-wake; do
  log "2. start latency of scheduled runs, idle agent, ${secs}s, scheduler $mode"
  fresh
  psql "$PGFLOW_DATABASE_URL" -Xq >/dev/null <<SQL
SELECT count(pgflow.create_deployment('lat', 'd' || i, 'true')) FROM generate_series(1, 20) i;
SELECT count(pgflow.create_deployment_schedule('lat/d' || i, 'interval', '2 seconds',
                                               p_anchor_date => '2026-01-01'::timestamptz + i * interval '100 ms'))
  FROM generate_series(1, 20) i;
SQL
  "$bin/pgflow-agent" --queue default --limit 40 --name bench-agent 2>"$work/agent.log" &
  agent=$!
  flags=(--horizon 120 --schedule-interval 5)
  [ "$mode" = no-wake ] && flags+=(--no-wake)
  "$bin/pgflow-scheduler" "${flags[@]}" 2>"$work/scheduler.log" &
  scheduler=$!
  t0=$(date +%s)
  sleep "$secs"
  kill -TERM "$scheduler" "$agent"
  wait "$scheduler" "$agent" || true
  psql "$PGFLOW_DATABASE_URL" -XAt <<SQL
WITH l AS (SELECT extract(epoch FROM start_time - expected_start_time) * 1000 AS ms FROM pgflow.flow_runs
            WHERE start_time IS NOT NULL AND expected_start_time > to_timestamp($t0) + interval '5 seconds')
SELECT format('  $mode: %s runs, start latency p50 %s ms, p90 %s ms, p99 %s ms, max %s ms', count(*),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(max(ms)::numeric, 1)) FROM l;
SQL
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_sched WITH (FORCE)" >/dev/null
