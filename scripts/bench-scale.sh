#!/usr/bin/env bash
# Many agent processes on one PostgreSQL (release builds):
#   scripts/bench-scale.sh [COUNTS="50 200"] [ROUNDS=3] [IDLE_SECONDS=30] [DRAIN=20000]
#
# For each agent count N, ROUNDS interleaved rounds (N = 50, 200, 50, 200, …) of:
#  idle: N `pgflow-agent` processes (default flags: poll 1 s, heartbeat 5 s, limit 10) serving an empty
#        queue; after all N registered and 5 s of settling, IDLE_SECONDS of: transactions/s
#        (pg_stat_database) and top-level statements/s (pg_stat_statements) in the benchmark database,
#        and connections per process (pg_stat_activity by application_name, one per agent).
#  busy: the drain of scripts/bench-agent.sh (DRAIN no-op in-process runs, every state checked) with N
#        `pgflow-bench-agent` processes (limit 400 each, pool of 4) instead of 2: runs/s, and connections
#        per process at the end of the drain.
# Prints one line per round and the medians; `uptime` before each phase.
# The private cluster's max_connections is raised to 6 × max(COUNTS) + 50 (a restart): each agent
# process holds up to 4 pool connections and 1 LISTEN connection.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
counts=${1:-"50 200"}
rounds=${2:-3}
idle_seconds=${3:-30}
drain=${4:-20000}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
max=$(printf '%s\n' $counts | sort -n | tail -n 1)
ensure_max_connections "$admin" $((6 * max + 50))
ensure_pg_stat_statements "$admin"
bin=$(release_binaries pgflow-agent pgflow-bench-agent)
db=pgflow_bench_scale
url=$(url_with_database "$admin" $db)
pids=()
out=$(mktemp -d)
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT

# "min/median/max" of the connections per agent process (application_name LIKE $2, in database $1).
connections_per_process() {
  psql "$admin" -XAtc "
    SELECT min(n) || '/' || percentile_disc(0.5) WITHIN GROUP (ORDER BY n) || '/' || max(n) || ' (' || count(*) || ' processes)'
      FROM (SELECT application_name, count(*) AS n FROM pg_stat_activity
             WHERE datname = '$1' AND application_name LIKE '$2' GROUP BY 1) x"
}

idle_round() {  # $1 = N; prints "transactions/s statements/s connections"
  local n=$1 i x0 x1 s0 s1
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  scripts/apply-schema.sh "$url" 2>/dev/null
  psql "$url" -XAtqc "SELECT pgflow.create_work_queue('scale')" >/dev/null
  for i in $(seq 1 "$n"); do
    PGFLOW_DATABASE_URL="$(url_with_param "$url" application_name "pgflow-agent-$i")" \
      "$bin/pgflow-agent" --queue scale 2>>"$out/agents.log" & pids+=($!)
  done
  until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.agents")" -ge "$n" ]; do sleep 0.5; done
  sleep 5
  x0=$(psql "$admin" -XAtc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'")
  s0=$(psql "$admin" -XAtc "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$db' AND s.toplevel")
  sleep "$idle_seconds"
  x1=$(psql "$admin" -XAtc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'")
  s1=$(psql "$admin" -XAtc "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$db' AND s.toplevel")
  local conns
  conns=$(connections_per_process $db 'pgflow-agent-%')
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  # the script's own reads are in another database (admin): nothing to subtract
  echo "$(awk -v a="$x0" -v b="$x1" -v t="$idle_seconds" 'BEGIN{printf "%.1f", (b-a)/t}') $(awk -v a="$s0" -v b="$s1" -v t="$idle_seconds" 'BEGIN{printf "%.1f", (b-a)/t}') $conns"
}

busy_round() {  # $1 = N; prints "runs/s seconds connections-at-the-end"
  local n=$1 result
  cat >"$out/conns.sql" <<SQL
SELECT min(n) || '/' || percentile_disc(0.5) WITHIN GROUP (ORDER BY n) || '/' || max(n) || ' (' || count(*) || ' processes)'
  FROM (SELECT application_name, count(*) AS n FROM pg_stat_activity
         WHERE datname = 'pgflow_bench_agent' AND application_name LIKE 'pgflow-bench-agent-%' GROUP BY 1) x
SQL
  export PGFLOW_SCALE_OUT="$out" PGFLOW_SCALE_ADMIN="$admin"
  result=$(PGFLOW_BENCH_NO_BUILD=1 PGFLOW_BENCH_AGENTS=$n \
    PGFLOW_BENCH_AFTER='psql "$PGFLOW_SCALE_ADMIN" -XAt -f "$PGFLOW_SCALE_OUT/conns.sql" >"$PGFLOW_SCALE_OUT/conns"' \
    scripts/bench-agent.sh drain "$drain")
  echo "$(echo "$result" | cut -d' ' -f1,2) $(cat "$out/conns")"
}


echo "Scale benchmark, $(date -u '+%F %H:%M UTC'), $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1), max_connections $(psql "$admin" -XAtc 'SHOW max_connections')"
for r in $(seq 1 "$rounds"); do
  for n in $counts; do
    echo "round $r, $n agents, idle ($idle_seconds s): load $(uptime | sed 's/.*average: //')"
    read -r xps sps conns <<<"$(idle_round "$n")"
    echo "  idle: $xps transactions/s, $sps statements/s, connections per process min/median/max $conns"
    echo "$xps" >>"$out/idle-x-$n"; echo "$sps" >>"$out/idle-s-$n"
    echo "round $r, $n agents, drain $drain: load $(uptime | sed 's/.*average: //')"
    read -r rate seconds bconns <<<"$(busy_round "$n")"
    echo "  busy: $rate runs/s ($seconds s), connections per process at the end min/median/max $bconns"
    echo "$rate" >>"$out/busy-$n"
  done
done
echo
echo "Medians of $rounds rounds (load at the end: $(uptime | sed 's/.*average: //')):"
for n in $counts; do
  printf '  %4d agents: idle %s transactions/s, %s statements/s; drain %s runs/s\n' "$n" \
    "$(median <"$out/idle-x-$n")" "$(median <"$out/idle-s-$n")" "$(median <"$out/busy-$n")"
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
