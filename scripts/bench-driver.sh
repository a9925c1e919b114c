#!/usr/bin/env bash
# Driver benchmark: PGFlowPostgres versus pgbench on the same server, same statements, one connection.
#   scripts/bench-driver.sh [ROUNDS=5] [SECONDS=4]
# Prints each figure's median over ROUNDS (the rounds alternate between the two clients) and the ratio,
# and the NOTIFY → wake-up latency of a listener in a process whose pool is busy (as an agent's is).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-5}
secs=${2:-4}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench)
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench WITH (FORCE)" -c "CREATE DATABASE pgflow_bench" >/dev/null
log "building pgflow-bench (release)"
swift build -c release --product pgflow-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/pgflow-bench

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "SELECT 1;" >"$work/select1.sql"
cat >"$work/claim.sql" <<'SQL'
WITH next AS (
    SELECT id FROM bench_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE bench_jobs AS j SET state = 'claimed', claimed_at = now() FROM next WHERE j.id = next.id RETURNING j.id;
SQL

refill() {
  psql "$url" -Xq >/dev/null <<'SQL'
DROP TABLE IF EXISTS bench_jobs;
CREATE TABLE bench_jobs (id bigserial PRIMARY KEY, state text NOT NULL, payload jsonb, claimed_at timestamptz)
  WITH (autovacuum_vacuum_scale_factor = 0.01, fillfactor = 80);
CREATE INDEX bench_jobs_queued ON bench_jobs (id) WHERE state = 'queued';
INSERT INTO bench_jobs (state, payload) SELECT 'queued', '{"n":1}' FROM generate_series(1, 300000);
VACUUM ANALYZE bench_jobs;
SQL
}

pgbench_tps() { pgbench -n -M prepared -c 1 -T "$secs" -f "$1" "$url" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | cut -d. -f1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

: >"$work/results"
for r in $(seq 1 "$rounds"); do
  log "round $r/$rounds"
  echo "pgbench_select1 $(pgbench_tps "$work/select1.sql")" >>"$work/results"
  "$bench" driver-select1 "$url" "$secs" >>"$work/results"
  refill; echo "pgbench_claim $(pgbench_tps "$work/claim.sql")" >>"$work/results"
  refill; "$bench" driver-claim "$url" "$secs" >>"$work/results"
  "$bench" notify-wake "$url" "$secs" >>"$work/results"
done

m() { awk -v k="$1" '$1 == k {print $2}' "$work/results" | median; }
ps=$(m pgbench_select1); ss=$(m select1_sync_per_s); sp=$(m select1_pool_per_s)
pc=$(m pgbench_claim); sc=$(m claim_sync_per_s)
echo
echo "Driver benchmark: medians of $rounds rounds x ${secs}s, one connection, unix socket, $(date -u +%F), $(nproc) cores"
printf '%-52s %10s %8s\n' "figure" "per second" "ratio"
printf '%-52s %10s %8s\n' "pgbench -M prepared -c 1: SELECT 1" "$ps" "1.00"
printf '%-52s %10s %8s\n' "PGFlowPostgres, PostgresConnection: SELECT 1" "$ss" "$(awk -v a="$ss" -v b="$ps" 'BEGIN{printf "%.2f", a/b}')"
printf '%-52s %10s %8s\n' "PGFlowPostgres, PostgresPool (async): SELECT 1" "$sp" "$(awk -v a="$sp" -v b="$ps" 'BEGIN{printf "%.2f", a/b}')"
printf '%-52s %10s %8s\n' "pgbench -M prepared -c 1: SKIP LOCKED claim" "$pc" "1.00"
printf '%-52s %10s %8s\n' "PGFlowPostgres, PostgresConnection: SKIP LOCKED claim" "$sc" "$(awk -v a="$sc" -v b="$pc" 'BEGIN{printf "%.2f", a/b}')"
printf '%-52s %10s\n' "NOTIFY → listener wake-up, pool busy: p50 (µs)" "$(m notify_wake_p50_us)"
printf '%-52s %10s\n' "NOTIFY → listener wake-up, pool busy: p99 (µs)" "$(m notify_wake_p99_us)"
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench WITH (FORCE)" >/dev/null
