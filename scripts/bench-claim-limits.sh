#!/usr/bin/env bash
# The claim of runs a concurrency limit applies to (the general claim), two schemas interleaved:
#   scripts/bench-claim-limits.sh [ROUNDS=3] [BATCH=1] [CLAIMS=2000] [A.sql] [B.sql]
#
# Each round, for schema A then B (alternating which goes first): a fresh database, a deployment with a
# concurrency limit that never fills (100,000), BATCH × CLAIMS + 200 runs enqueued, then CLAIMS calls of
# `pgflow.claim_flow_runs(agent, NULL, BATCH, true)` through `pgbench -M prepared -c 1` (after 2 warm-up
# calls); prints the server's execution time per claimed run (pg_stat_statements, the top-level claim) and
# pgbench's latency per call, then the medians. A and B default to the schema of the commit before HEAD
# and sql/schema.sql. The private cluster of scripts/db.sh gets pg_stat_statements preloaded (a restart, once).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
batch=${2:-1}
claims=${3:-2000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ab_schemas "$work" "${4:-}" "${5:-}"
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
ensure_pg_stat_statements "$admin"
url=$(url_with_database "$admin" pgflow_bench_claim_limits)

one() {  # $1 = schema file; prints "us_per_run ms_per_call"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_claim_limits WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_claim_limits" >/dev/null
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$1" >/dev/null 2>&1 || die "could not apply $1"
  psql "$url" -XAtq >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'capped', './c.sh', p_work_queue => 'bench', p_concurrency_limit => 100000);
SELECT count(*) FROM pgflow.run_deployments('bench/capped', array_fill('{}'::jsonb, ARRAY[$((batch * claims + 2 * batch + 200))]));
SQL
  local agent
  agent=$(psql "$url" -XAtc "SELECT pgflow.register_agent('bench', ARRAY['bench'])")
  echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', NULL, $batch, true);" >"$work/claim.sql"
  (
    eval "$(url_to_pg_env "$url")"
    pgbench -n -M prepared -c 1 -t 2 -f "$work/claim.sql" >/dev/null 2>&1
    psql "$url" -XAtqc "SELECT pg_stat_statements_reset()" >/dev/null
    pgbench -n -M prepared -c 1 -t "$claims" -f "$work/claim.sql" 2>&1 | awk '/latency average/ { print $4 }' >"$work/latency"
  )
  local us
  us=$(psql "$url" -XAtc "SELECT round((sum(s.total_exec_time) * 1000 / ($claims * $batch))::numeric, 1)
                            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                           WHERE d.datname = 'pgflow_bench_claim_limits' AND s.toplevel AND s.query LIKE '%claim_flow_runs%'")
  echo "$us $(cat "$work/latency")"
}

a_us=() b_us=() a_ms=() b_ms=()
for r in $(seq 1 "$rounds"); do
  order="a b"; [ $((r % 2)) -eq 0 ] && order="b a"
  for v in $order; do
    read -r us ms < <(one "$work/$v.sql")
    log "round $r, ${v^^}: $us µs per claimed run, $ms ms per call (load $(cut -d' ' -f1 /proc/loadavg))"
    if [ "$v" = a ]; then a_us+=("$us"); a_ms+=("$ms"); else b_us+=("$us"); b_ms+=("$ms"); fi
  done
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_claim_limits WITH (FORCE)" >/dev/null
echo
echo "General claim (a deployment limit that never fills), batches of $batch, $claims claims, $rounds interleaved rounds, $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A: $(printf '%s\n' "${a_us[@]}" | median) µs per claimed run (rounds ${a_us[*]}), $(printf '%s\n' "${a_ms[@]}" | median) ms per call (medians)"
echo "B: $(printf '%s\n' "${b_us[@]}" | median) µs per claimed run (rounds ${b_us[*]}), $(printf '%s\n' "${b_ms[@]}" | median) ms per call (medians)"
