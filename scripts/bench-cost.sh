#!/usr/bin/env bash
# What one run of pgflow's drain costs PostgreSQL, by statement:  scripts/bench-cost.sh [JOBS=20000]
#
# Runs `scripts/bench-agent.sh drain JOBS` (2 agents, in-process no-op runs) with pg_stat_statements
# (track = all, so statements inside the SQL functions are counted too) and pg_stat_wal reset just before
# the agents start and read just after the last run completed, and prints per run: WAL bytes, records and
# full-page images (pg_stat_wal); then per statement: calls, execution time, WAL bytes, shared buffers
# touched (hit + read) and dirtied. "top" marks the statements the agents send; the others run inside
# them (their cost is included in the top-level figures). The private cluster of scripts/db.sh gets
# pg_stat_statements preloaded (a restart, once).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
jobs=${1:-20000}

scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
ensure_pg_stat_statements "$admin"
psql "$admin" -XAtqc "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "ALTER SYSTEM SET track_io_timing = on" \
  -c "SELECT pg_reload_conf()"
out=$(mktemp -d)
# put the settings back when done: left on (as until 2026-12-05), track = 'all' slowed every later benchmark
# on the cluster, pgflow's more than PgQueuer's (its functions' nested statements are each tracked)
trap 'rm -rf "$out"; psql "$admin" -XAtqc "ALTER SYSTEM RESET pg_stat_statements.track" -c "ALTER SYSTEM RESET track_io_timing" -c "SELECT pg_reload_conf()" >/dev/null' EXIT

export PGFLOW_STATE PGFLOW_COST_ADMIN="$admin" PGFLOW_COST_OUT="$out" PGFLOW_COST_JOBS="$jobs"
export PGFLOW_BENCH_BEFORE='psql "$PGFLOW_COST_ADMIN" -XAtqc "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('"'"'wal'"'"')" >/dev/null; psql "$PGFLOW_COST_ADMIN" -XAtc "SELECT pg_current_wal_lsn()" >"$PGFLOW_COST_OUT/lsn0"'
export PGFLOW_BENCH_AFTER='psql "$PGFLOW_COST_ADMIN" -XAtc "SELECT pg_current_wal_lsn()" >"$PGFLOW_COST_OUT/lsn1"; bench_cost_report >"$PGFLOW_COST_OUT/report"'
bench_cost_report() {
  local n=$PGFLOW_COST_JOBS
  psql "$PGFLOW_COST_ADMIN" -XAt -F ' | ' <<SQL
-- (from the LSNs: pg_stat_wal lags, backends report to it at most once a second, and read right after a
-- 0.7 s drain it showed 10 bytes per run; records by type are pg_waldump's, below)
SELECT 'WAL per run: ' || round(pg_wal_lsn_diff('$(cat "$PGFLOW_COST_OUT/lsn1")', '$(cat "$PGFLOW_COST_OUT/lsn0")') / $n) || ' bytes';
SELECT 'top-level statements per run: ' || round(sum(calls)::numeric / $n, 3) || ' calls, '
       || round((sum(total_exec_time) * 1000 / $n)::numeric, 1) || ' µs, '
       || round(sum(wal_bytes) / $n) || ' WAL bytes, '
       || round(sum(shared_blks_hit + shared_blks_read)::numeric / $n, 1) || ' buffers, '
       || round(sum(shared_blks_dirtied)::numeric / $n, 2) || ' dirtied'
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = 'pgflow_bench_agent' AND s.toplevel;
SELECT '';
SELECT 'level | calls/run | µs/run | WAL B/run | buffers/run | dirtied/run | statement';
SELECT CASE WHEN toplevel THEN 'top' ELSE 'nested' END,
       round(calls::numeric / $n, 3), round((total_exec_time * 1000 / $n)::numeric, 1),
       round(wal_bytes / $n), round((shared_blks_hit + shared_blks_read)::numeric / $n, 1),
       round(shared_blks_dirtied::numeric / $n, 2),
       left(regexp_replace(query, '\s+', ' ', 'g'), 110)
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = 'pgflow_bench_agent' AND (total_exec_time * 1000 / $n > 0.5 OR wal_bytes / $n >= 1)
 ORDER BY toplevel DESC, total_exec_time DESC LIMIT 40;
SQL
  # the WAL of the drain by record type (read now: dropping the database checkpoints and recycles it)
  if [ -z "${PGFLOW_DATABASE_URL:-}" ]; then
    echo
    echo "WAL of the drain by record type (pg_waldump --stats=record), per run:"
    as_pg_owner "$(pg_bindir)/pg_waldump" -p "$(cat "$PGFLOW_STATE/cluster-dir")/data/pg_wal" \
        -s "$(cat "$PGFLOW_COST_OUT/lsn0")" -e "$(cat "$PGFLOW_COST_OUT/lsn1")" --stats=record 2>&1 |
      awk -v n="$n" '{ gsub(/[()]/, " ") } NR > 3 && $2 ~ /^[0-9]+$/ && $2 / n >= 0.05 {
        printf "  %-36s %6.2f records %7.1f bytes\n", $1, $2 / n, $8 / n }'
  fi
}
export -f bench_cost_report as_pg_owner pg_bindir pg_server_major

read -r rate seconds states <<<"$(PGFLOW_BENCH_NO_BUILD=${PGFLOW_BENCH_NO_BUILD:-} scripts/bench-agent.sh drain "$jobs")"
echo "Per-run cost of the drain: $jobs no-op runs, 2 agents, $(date -u '+%F %H:%M') UTC, $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1)"
echo "drain: $rate runs/s ($seconds s, $states state rows)"
cat "$out/report"

