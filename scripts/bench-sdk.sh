#!/usr/bin/env bash
# SDK benchmark: tracked task overhead of the Swift SDK (PGFlow) in local mode.
#   scripts/bench-sdk.sh [TASKS=10000] [ROUNDS=3]
# Runs a flow of TASKS sequential no-op tasks and one of TASKS submitted no-op tasks, ROUNDS times each in a
# fresh database, checks that every task run, state and result was recorded, and prints the medians.
# PGFLOW_SCRATCH_PATH picks SwiftPM's build folder (default .build).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
tasks=${1:-10000}
rounds=${2:-3}
scratch=${PGFLOW_SCRATCH_PATH:-.build}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_sdk)
log "building pgflow-bench-sdk (release)"
swift build -c release --scratch-path "$scratch" --product pgflow-bench-sdk >/dev/null \
  || die "the release build failed: run swift build -c release --product pgflow-bench-sdk to see why"
bench=$(swift build -c release --scratch-path "$scratch" --show-bin-path)/pgflow-bench-sdk

work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_sdk WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
: >"$work/results"
for r in $(seq 1 "$rounds"); do
  log "round $r/$rounds"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_sdk WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_sdk" >/dev/null
  scripts/apply-schema.sh "$url" >/dev/null 2>&1
  # PGFLOW_BENCH_SQL: a SQL file applied on top (to measure a schema change before it is a migration)
  if [ -n "${PGFLOW_BENCH_SQL:-}" ]; then psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$PGFLOW_BENCH_SQL" >/dev/null; fi
  "$bench" "$url" "$tasks" >>"$work/results"
done

m() { awk -v k="$1" '$1 == k {print $2}' "$work/results" | median; }
echo
echo "SDK benchmark: $tasks no-op tasks per flow, medians of $rounds rounds, local mode, every task run, state and result recorded, $(date -u +%F), $(nproc) cores"
printf '%-40s %10s %10s\n' "flow" "tasks/s" "us/task"
printf '%-40s %10s %10s\n' "sequential (await task(i))" "$(m sequential_tasks_per_s)" "$(m sequential_us_per_task)"
printf '%-40s %10s %10s\n' "submitted (task.submit(i), wait)" "$(m submitted_tasks_per_s)" "$(m submitted_us_per_task)"
