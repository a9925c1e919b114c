#!/usr/bin/env bash
# The drain's two statements, measured by the CPU of the one backend that runs them:
#   scripts/bench-hot-path.sh [ROUNDS=5] [RUNS=20000] [A.sql] [B.sql]
#
# scripts/bench-drain-cpu.sh measures a real drain (2 agents, every PostgreSQL process); on a busy machine
# its medians move by ±30 µs per run between rounds, more than most changes to a function. This one takes
# the agents' place with one psql session that claims (`claim_and_offer`, batches of 200, as the agents
# call it) and completes (`set_flow_run_states` with transition ids, as the agents send it) RUNS queued
# no-op runs, each statement its own transaction, and reads that backend's own CPU time (utime + stime from
# /proc) around every statement: the claim's and the completion's CPU per run, without the agents, the
# checkpointer or other sessions. Schemas A and B (default: the commit before HEAD's and sql/schema.sql)
# are measured on fresh databases in interleaved rounds; prints each round and the medians. The private
# cluster of scripts/db.sh only (it reads the backend's /proc entry; the admin role must be a superuser).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-5}
runs=${2:-20000}
batch=200
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ab_schemas "$work" "${3:-}" "${4:-}"

[ -z "${PGFLOW_DATABASE_URL:-}" ] || die "bench-hot-path.sh reads the private cluster's processes: unset PGFLOW_DATABASE_URL"
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_hot_path)

# the session's script: claim and complete until nothing is left, logging the backend's CPU per statement
{
  cat <<'SQL'
\set ON_ERROR_STOP 1
SELECT pgflow.register_agent('bench-hot-path', ARRAY['bench']) AS agent \gset
CREATE TEMP TABLE cost (claim_us bigint, claimed int, complete_us bigint);
SQL
  for _ in $(seq 1 $((runs / batch))); do
    cat <<SQL
SELECT public.bench_cpu_us() AS t0 \\gset
SELECT coalesce(array_agg(flow_run_id), '{}')::text AS ids, count(*) AS n
  FROM pgflow.claim_and_offer(:'agent', NULL, $batch, '{}'::uuid[], NULL) \\gset
SELECT public.bench_cpu_us() AS t1 \\gset
SELECT count(*) FROM pgflow.set_flow_run_states(:'ids'::uuid[], array_fill('COMPLETED'::text, ARRAY[:n]), NULL, NULL, NULL,
                                                ARRAY(SELECT gen_random_uuid() FROM generate_series(1, :n)), :'agent') \\g /dev/null
SELECT public.bench_cpu_us() AS t2 \\gset
INSERT INTO cost VALUES (:t1 - :t0, :n, :t2 - :t1);
SQL
  done
  cat <<'SQL'
SELECT round(sum(claim_us)::numeric / sum(claimed), 1), round(sum(complete_us)::numeric / sum(claimed), 1), sum(claimed) FROM cost;
SQL
} >"$work/session.sql"

one() {  # $1 = schema file; prints "claim_us complete_us"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_hot_path WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_hot_path" >/dev/null
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$1" >/dev/null 2>&1 || die "could not apply $1"
  psql "$url" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'noop', 'swift:noop', p_work_queue => 'bench');
SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[$runs]));
-- the backend's own CPU time in µs (utime + stime, fields 14 and 15 of /proc/PID/stat)
CREATE FUNCTION public.bench_cpu_us() RETURNS bigint LANGUAGE plpgsql AS \$f\$
DECLARE
    f text[] := string_to_array(split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ') ', 2), ' ');
BEGIN
    RETURN (f[12]::bigint + f[13]::bigint) * (1000000 / $(getconf CLK_TCK));
END \$f\$;
CHECKPOINT;
VACUUM ANALYZE;
SQL
  local out
  out=$(psql "$url" -XAtq -F ' ' -f "$work/session.sql" | tail -n 1)
  [ "$(awk '{print $3}' <<<"$out")" = "$runs" ] || die "the session completed $(awk '{print $3}' <<<"$out") of $runs runs"
  [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_run_states")" = $((4 * runs)) ] || die "a run lacks one of its four states"
  awk '{print $1, $2}' <<<"$out"
}

: >"$work/A"; : >"$work/B"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="a b"; else order="b a"; fi
  for x in $order; do
    read -r claim complete <<<"$(one "$work/$x.sql")"
    X=$(echo "$x" | tr ab AB)
    echo "$claim $complete" >>"$work/$X"
    log "round $r, $X: claim $claim µs/run, completion $complete µs/run (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_hot_path WITH (FORCE)" >/dev/null
echo
echo "Backend CPU per run ($runs runs, batches of $batch, one session, $rounds interleaved rounds), $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for X in A B; do
  printf '%s: claim %s µs/run (rounds %s), completion %s µs/run (rounds %s), sum %s (medians)\n' "$X" \
    "$(awk '{print $1}' "$work/$X" | median)" "$(awk '{print $1}' "$work/$X" | paste -sd/)" \
    "$(awk '{print $2}' "$work/$X" | median)" "$(awk '{print $2}' "$work/$X" | paste -sd/)" \
    "$(awk '{print $1 + $2}' "$work/$X" | median)"
done
