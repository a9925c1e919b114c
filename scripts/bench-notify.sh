#!/usr/bin/env bash
# What the followers' and the stream's NOTIFYs cost concurrent claims:  scripts/bench-notify.sh [ROUNDS=3] [CLAIMS=100]
#
# Since 0027 the state and log notifications (`pgflow_flow_run_states`, `pgflow_logs`, and the API stream's
# `pgflow_stream_*`) are sent only while a watcher holds a lease (pgflow.renew_stream_listener). A
# transaction that has sent a NOTIFY takes, at its commit, one lock for the whole cluster and holds it
# through its WAL flush, so notifying transactions commit one at a time: a cost one session cannot show
# (this script measured "no cost" that way until 2026-12-05) and concurrent ones do. Each round: 4 sessions
# (pgbench -M prepared -c 4 -j 2), CLAIMS transactions each, each claiming and starting 50 runs
# (claim_flow_runs(agent, NULL, 50, true)), once without a lease and once with one (notifications on);
# rounds alternate which goes first. Prints runs/s per round and the medians.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
claims=${2:-100}
per=50

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_notify)
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_notify WITH (FORCE)" >/dev/null' EXIT

round() {  # round lease|none: prints runs/s
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_notify WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_notify" >/dev/null
  scripts/apply-schema.sh "$url" 2>/dev/null
  local agent
  agent=$(psql "$url" -XAtqc "SELECT pgflow.create_deployment('bench', 'notify', 'true')" -c "SELECT pgflow.register_agent('bench', '{default}')" | tail -n 1)
  echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', NULL, $per, true);" >"$work/claim.sql"
  psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/notify', array_fill('{}'::jsonb, ARRAY[$((4 * claims * per))]), p_scheduled_time => now() - interval '1 minute')" \
    -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
  if [ "$1" = lease ]; then psql "$url" -XAtqc "SELECT pgflow.renew_stream_listener(gen_random_uuid(), interval '1 hour')" >/dev/null; fi
  pgbench -n -M prepared -c 4 -j 2 -t "$claims" -f "$work/claim.sql" "$url" 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | awk -v per="$per" '{ printf "%.0f\n", $1 * per }'
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then a=none b=lease; else a=lease b=none; fi
  x=$(round $a); y=$(round $b)
  echo "$x" >>"$work/$a"; echo "$y" >>"$work/$b"
  log "round $r: $a $x runs/s, $b $y runs/s"
done
none=$(median <"$work/none"); lease=$(median <"$work/lease")
echo
echo "Concurrent claims (4 sessions x $claims x $per runs, claim and start), medians of $rounds rounds, $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-44s %10s\n' "no watcher (no NOTIFY, since 0027), runs/s" "$none" "a watcher's lease (NOTIFY per commit), runs/s" "$lease"
printf '%-44s %10s\n' "ratio lease / none" "$(awk -v a="$lease" -v b="$none" 'BEGIN{printf "%.2f", a/b}')"
