#!/usr/bin/env bash
# Removing one week of history, the old way (row by row) and the new way (0019: the week's partitions
# dropped):   scripts/bench-retention.sh [RUNS=30000] [ROUNDS=3]
#
# Each round builds two databases afresh: `old` with every migration before the retention one, `new` with
# the whole schema. Both get the same history: two UTC weeks (Monday to Monday) of RUNS finished runs
# each, spread over the week (the old week: the one of 44 days ago, wholly older than 37 days; a younger
# one: the week of 20 days ago, not yet over a 30-day age), every run with 4 states, 2 log lines and a
# result, ids UUIDv7 of their creation time (the new schema's default; random v4 ids would not change the
# old way's cost). Loaded set-based with triggers off, then VACUUM ANALYZE. Then retention with a 30-day
# age removes the old week:
#   old: `SELECT pgflow.delete_old_runs('30 days', 1000)` until a batch comes back short (what the
#        scheduler's RetentionService does), each batch its own transaction;
#   new: the same calls (the first drops the week's partitions; the rest find nothing).
# Prints per round and way: wall time, calls, WAL written; then the medians. `uptime` before and after.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
runs=${1:-30000}
rounds=${2:-3}
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || die "RUNS must be a positive number, got '$runs'"

ensure_system_packages
PGFLOW_SKIP_SCHEMA=1 scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
now() { date +%s.%N; }
echo "load before: $(uptime)"

# load URL: two weeks of history (the week of day -44 is removed, the week of day -20 stays)
load() {
  psql "$1" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT pgflow.create_deployment('bench', 'dep', 'true');
SET session_replication_role = replica;
CREATE TEMP TABLE gen AS
SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
        || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid AS id, k, t
  FROM generate_series(1, 2 * $runs) k,
       LATERAL (SELECT date_trunc('week', now() AT TIME ZONE 'UTC' - CASE WHEN k <= $runs THEN interval '44 days' ELSE interval '20 days' END)
                       AT TIME ZONE 'UTC' + (k % $runs) * (interval '7 days' / ($runs + 1)) AS t) x;
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, run_count, expected_start_time, start_time,
                              end_time, total_run_time, state_type, state_name, state_timestamp, created_at)
SELECT g.id, 'run-' || g.k, d.flow_id, d.id, d.work_queue_id, 1, g.t, g.t + interval '1 s', g.t + interval '2 s', interval '1 s',
       'COMPLETED', 'Completed', g.t + interval '2 s', g.t
  FROM gen g, pgflow.deployments d;
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT g.id, s.type::pgflow.state_type, s.name, g.t + s.offs
  FROM gen g, (VALUES ('SCHEDULED', 'Scheduled', interval '0'), ('PENDING', 'Pending', interval '0.5 s'),
                      ('RUNNING', 'Running', interval '1 s'), ('COMPLETED', 'Completed', interval '2 s')) s(type, name, offs);
INSERT INTO pgflow.logs (flow_run_id, level, name, message, "timestamp")
SELECT g.id, 20, 'flow', 'line ' || n || ' of run ' || g.k, g.t + interval '1 s' FROM gen g, generate_series(1, 2) n;
INSERT INTO pgflow.results (run_id, value, created_at) SELECT g.id, '{"ok": true}', g.t + interval '2 s' FROM gen g;
RESET session_replication_role;
SQL
  psql "$1" -XAtq -c "VACUUM ANALYZE" >/dev/null
}

# retain URL: delete_old_runs(30 days, 1000) until a short batch; prints "seconds calls wal_bytes runs"
retain() {
  local url=$1 t0 t1 calls=0 n total=0 lsn0 lsn1
  lsn0=$(psql "$admin" -XAtc "SELECT pg_current_wal_lsn()")
  t0=$(now)
  while true; do
    n=$(psql "$url" -XAtqc "SELECT pgflow.delete_old_runs('30 days', 1000)")
    calls=$((calls + 1)) total=$((total + n))
    [ "$n" -ge 1000 ] || break
  done
  t1=$(now)
  lsn1=$(psql "$admin" -XAtc "SELECT pg_current_wal_lsn()")
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}') $calls $(psql "$admin" -XAtc "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint") $total"
}

declare -a old_s new_s old_w new_w
for r in $(seq 1 "$rounds"); do
  for way in old new; do
    db="pgflow_bench_retention_$way"
    url=$(url_with_database "$admin" "$db")
    psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
    if [ $way = old ]; then
      cat $(ls sql/migrations/0*.sql | sort | sed '/_retention\.sql$/,$d') | psql "$url" -XAtq -v ON_ERROR_STOP=1 >/dev/null
    else
      psql "$url" -XAtq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
      # the two weeks' partitions (the scheduler would have made them then)
      psql "$url" -XAtqc "SELECT pgflow._ensure_history_week((now() AT TIME ZONE 'UTC')::date - k) FROM unnest(ARRAY[44, 20]) k" >/dev/null
    fi
    load "$url"
    read -r secs calls wal removed < <(retain "$url")
    left=$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs")
    printf 'round %d  %-3s  %8.3f s  %3d call(s)  %12d WAL bytes  %6d runs removed, %6d left\n' "$r" "$way" "$secs" "$calls" "$wal" "$removed" "$left"
    [ "$removed" -eq "$runs" ] && [ "$left" -eq "$runs" ] || die "the $way way removed $removed runs and left $left (expected $runs and $runs)"
    if [ $way = old ]; then old_s+=("$secs"); old_w+=("$wal"); else new_s+=("$secs"); new_w+=("$wal"); fi
    psql "$admin" -XAtqc "DROP DATABASE $db WITH (FORCE)" >/dev/null
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "one week of $runs runs (4 states, 2 log lines, 1 result each), medians of $rounds rounds, $(date -u '+%F %H:%M UTC'), $(nproc) cores:"
echo "  old (rows deleted):      $(median "${old_s[@]}") s, $(median "${old_w[@]}") WAL bytes"
echo "  new (partitions dropped): $(median "${new_s[@]}") s, $(median "${new_w[@]}") WAL bytes"
echo "load after: $(uptime)"
