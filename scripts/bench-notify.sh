#!/usr/bin/env bash
# Cost of the followers' NOTIFY (0004: pgflow_flow_run_states on every state, one per transaction) on
# the hot path: single-run claims that start the run (Pending and Running, one transaction each, as an
# agent's claim), with the trigger on and off, alternating rounds.
#   scripts/bench-notify.sh [ROUNDS=3] [CLAIMS=3000]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
claims=${2:-3000}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_notify)
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_notify WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_notify" >/dev/null
scripts/apply-schema.sh "$url" 2>/dev/null
agent=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'notify', 'true')" -c "SELECT pgflow.register_agent('bench', '{default}')" | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_notify WITH (FORCE)" >/dev/null' EXIT
echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', NULL, 1, true);" >"$work/claim.sql"

round() {  # round on|off
  psql "$url" -XAtqc "ALTER TABLE pgflow.flow_run_states $([ "$1" = on ] && echo ENABLE || echo DISABLE) TRIGGER flow_run_states_notify" >/dev/null
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/notify', array_fill('{}'::jsonb, ARRAY[$claims]), p_scheduled_time => now() - interval '1 minute')" >/dev/null
  psql "$url" -XAtqc "VACUUM ANALYZE pgflow.run_queue" >/dev/null
  pgbench -n -M prepared -c 1 -t "$claims" -f "$work/claim.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}

for r in $(seq 1 "$rounds"); do
  round off >>"$work/off"
  round on >>"$work/on"
done
off=$(median <"$work/off"); on=$(median <"$work/on")
echo "Claim-and-start latency (pgbench -M prepared -c 1, claim_flow_runs(p_max 1, p_start)), medians of $rounds rounds x $claims, $(date -u +%F), $(nproc) cores"
printf '%-34s %10s\n' "state NOTIFY" "ms/claim" "off" "$off" "on" "$on"
printf '%-34s %10s\n' "ratio" "$(awk -v a="$on" -v b="$off" 'BEGIN{printf "%.2f", a/b}')"
