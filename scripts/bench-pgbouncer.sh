#!/usr/bin/env bash
# The drain through a transaction-mode PgBouncer against the drain straight to PostgreSQL (release builds):
#   scripts/bench-pgbouncer.sh [ROUNDS=3] [DRAIN=20000] [AGENTS=2] [POOL=8]
#
# Installs pgbouncer with apt (Debian bookworm: 1.18, which has no prepared-statement support in
# transaction mode) and starts one as the cluster's owner on 127.0.0.1 (pool_mode = transaction,
# default_pool_size = POOL server connections). Then:
#  1. a probe: 2 agents through PgBouncer with prepared statements on (pgflow's default) drain 2,000
#     runs for at most 30 s through a pool of 2 server connections (their 8 client connections then
#     share servers); prints how many completed, how many "prepared statement … does not exist"
#     errors they logged, and the first one.
#  2. ROUNDS interleaved rounds of scripts/bench-agent.sh's drain (DRAIN no-op in-process runs, AGENTS
#     agents of limit 400, every state checked), three ways: direct (prepared statements, the default),
#     direct with PGFLOW_PREPARED_STATEMENTS=off, and through PgBouncer (PGFLOW_PREPARED_STATEMENTS=off,
#     each agent's pool through PgBouncer, its LISTEN connection straight to PostgreSQL with
#     PGFLOW_LISTEN_DATABASE_URL). Medians and `uptime` per round; server connections per way.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
drain=${2:-20000}
agents=${3:-2}
poolsize=${4:-8}

PGFLOW_WITH_PGBOUNCER=1 ensure_system_packages
[ -z "${PGFLOW_DATABASE_URL:-}" ] || die "bench-pgbouncer.sh runs against the private cluster only (unset PGFLOW_DATABASE_URL)"
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
dir=$(cat "$PGFLOW_STATE/cluster-dir")
pgport=$(psql "$admin" -XAtc "SHOW port")
bin=$(release_binaries pgflow-bench-agent)
direct=$(url_with_database "$admin" pgflow_bench_agent)

# PgBouncer in a folder the cluster's owner can write.
pgb=$(mktemp -d /tmp/pgflow-pgbouncer-XXXXXX)
pgbport=6432
while (exec 3<>"/dev/tcp/127.0.0.1/$pgbport") 2>/dev/null; do pgbport=$((pgbport + 1)); done
cat >"$pgb/pgbouncer.ini" <<EOF
[databases]
pgflow_bench_agent = host=$dir port=$pgport dbname=pgflow_bench_agent user=postgres
pgflow_bench_probe = host=$dir port=$pgport dbname=pgflow_bench_agent user=postgres pool_size=2
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbport
unix_socket_dir =
auth_type = trust
auth_file = $pgb/users.txt
pool_mode = transaction
default_pool_size = $poolsize
max_client_conn = 2000
server_reset_query =
logfile = $pgb/pgbouncer.log
pidfile = $pgb/pgbouncer.pid
EOF
echo '"postgres" ""' >"$pgb/users.txt"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$pgb"
as_pg_owner pgbouncer -d "$pgb/pgbouncer.ini"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$pgb/pgbouncer.pid" ] && kill "$(cat "$pgb/pgbouncer.pid")" 2>/dev/null; rm -rf "$pgb"' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$pgbport") 2>/dev/null && break; sleep 0.1; done
bouncer="postgresql:///pgflow_bench_agent?host=127.0.0.1&port=$pgbport&user=postgres"
version=$(pgbouncer --version | head -n 1)

# 1. The probe: prepared statements through a transaction-mode PgBouncer.
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_agent WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_agent" >/dev/null
scripts/apply-schema.sh "$direct" 2>/dev/null
psql "$direct" -XAtq >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'noop', 'swift:noop', p_work_queue => 'bench');
SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[2000]));
SQL
for i in 1 2; do
  PGFLOW_LISTEN_DATABASE_URL="$direct" "$bin/pgflow-bench-agent" serve "${bouncer/pgflow_bench_agent/pgflow_bench_probe}" 400 \
    2>>"$pgb/probe.log" & pids+=($!)
done
for _ in $(seq 1 150); do
  [ "$(psql "$direct" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'")" -ge 2000 ] && break
  sleep 0.2
done
probe_done=$(psql "$direct" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'")
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()
probe_errors=$(grep -c 'prepared statement' "$pgb/probe.log" || true)
probe_first=$(grep -m 1 'prepared statement' "$pgb/probe.log" | cut -c1-200 || true)

# 2. Interleaved drains.
out=$pgb
drain_way() {  # $1 = way; prints runs/s
  case $1 in
    direct) PGFLOW_BENCH_NO_BUILD=1 PGFLOW_BENCH_AGENTS=$agents scripts/bench-agent.sh drain "$drain" ;;
    direct-unprepared) PGFLOW_PREPARED_STATEMENTS=off PGFLOW_BENCH_NO_BUILD=1 PGFLOW_BENCH_AGENTS=$agents \
      scripts/bench-agent.sh drain "$drain" ;;
    pgbouncer) PGFLOW_PREPARED_STATEMENTS=off PGFLOW_BENCH_NO_BUILD=1 PGFLOW_BENCH_AGENTS=$agents \
      PGFLOW_BENCH_AGENT_URL="$bouncer" PGFLOW_LISTEN_DATABASE_URL="$direct" scripts/bench-agent.sh drain "$drain" ;;
  esac | cut -d' ' -f1
}
echo "PgBouncer benchmark, $(date -u '+%F %H:%M UTC'), $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1), $version"
echo "probe (prepared statements on, through PgBouncer with 2 server connections, 30 s at most): $probe_done of 2000 runs completed, $probe_errors 'prepared statement' errors logged"
[ -z "$probe_first" ] || echo "  first: $probe_first"
for r in $(seq 1 "$rounds"); do
  for way in direct direct-unprepared pgbouncer; do
    load=$(uptime | sed 's/.*average: //')
    rate=$(drain_way $way)
    echo "round $r, $way: $rate runs/s (load before: $load)"
    echo "$rate" >>"$out/rate-$way"
  done
done
echo
echo "Medians of $rounds rounds, $agents agents, drain of $drain (load at the end: $(uptime | sed 's/.*average: //')):"
for way in direct direct-unprepared pgbouncer; do printf '  %-18s %s runs/s\n' "$way" "$(median <"$out/rate-$way")"; done
