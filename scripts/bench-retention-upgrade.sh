#!/usr/bin/env bash
# Making a week's partitions on a database upgraded with history, while claims run:
#   scripts/bench-retention-upgrade.sh [RUNS=200000] [WEEKS=3] [MIGRATION=sql/migrations/*_retention.sql]
#
# Builds a database with every migration before the retention one, loads RUNS finished runs made by that
# schema (random v4 ids; 4 states, 2 log lines, a result and a tag each; set-based with triggers off, then
# VACUUM ANALYZE), applies MIGRATION (the retention migration; pass another version of it to compare, e.g.
# a file from `git show COMMIT:sql/migrations/0017_retention.sql`) and prints its time. Then a pgbench
# client enqueues and claims in a loop (every 25 ms: run_deployment, then claim_flow_runs, each its own
# transaction; per-transaction latencies logged) while `pgflow._ensure_history_week` makes WEEKS new weeks
# (the weeks 14, 21, … days ahead), one a second, each timed. Prints each week's time, the claims'
# latencies during the run (median, p99, max) and how many took more than 100 ms. Claims wait when a week's ATTACH PARTITION
# holds the default partition in ACCESS EXCLUSIVE mode; how long it holds it is what this measures.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
runs=${1:-200000}
weeks=${2:-3}
migration=${3:-$(ls sql/migrations/*_retention.sql)}
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || die "RUNS must be a positive number, got '$runs'"
[[ $weeks =~ ^[0-9]+$ && $weeks -ge 1 ]] || die "WEEKS must be a positive number, got '$weeks'"
[ -f "$migration" ] || die "no migration file $migration"

ensure_system_packages
PGFLOW_SKIP_SCHEMA=1 scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
db=pgflow_bench_upgrade
url=$(url_with_database "$admin" "$db")
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
now() { date +%s.%N; }
echo "load before: $(uptime)"

psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
for f in $(ls sql/migrations/0*.sql | sort | sed '/_retention\.sql$/,$d'); do
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$f" >/dev/null
done
log "loading $runs old runs"
psql "$url" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT pgflow.create_deployment('bench', 'stamp', 'true');
SET session_replication_role = replica;
CREATE TEMP TABLE gen AS
SELECT gen_random_uuid() AS id, k, now() - interval '10 days' + k * (interval '9 days' / $runs) AS t FROM generate_series(1, $runs) k;
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, run_count, expected_start_time, start_time,
                              end_time, total_run_time, state_type, state_name, state_timestamp, created_at, tags)
SELECT g.id, 'run-' || g.k, d.flow_id, d.id, d.work_queue_id, 1, g.t, g.t + interval '1 s', g.t + interval '2 s', interval '1 s',
       'COMPLETED', 'Completed', g.t + interval '2 s', g.t, ARRAY['nightly']
  FROM gen g, pgflow.deployments d;
INSERT INTO pgflow.flow_run_tags (tag, created_at, flow_run_id) SELECT 'nightly', g.t, g.id FROM gen g;
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT g.id, s.type::pgflow.state_type, s.name, g.t + s.offs
  FROM gen g, (VALUES ('SCHEDULED', 'Scheduled', interval '0'), ('PENDING', 'Pending', interval '0.5 s'),
                      ('RUNNING', 'Running', interval '1 s'), ('COMPLETED', 'Completed', interval '2 s')) s(type, name, offs);
INSERT INTO pgflow.logs (flow_run_id, level, name, message, "timestamp")
SELECT g.id, 20, 'flow', 'line ' || n || ' of run ' || g.k, g.t + interval '1 s' FROM gen g, generate_series(1, 2) n;
INSERT INTO pgflow.results (run_id, value, created_at) SELECT g.id, '{"ok": true}', g.t + interval '2 s' FROM gen g;
RESET session_replication_role;
SQL
psql "$url" -XAtq -c "VACUUM ANALYZE" >/dev/null

t0=$(now)
psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$migration" >/dev/null
t1=$(now)
psql "$url" -XAtq -c "VACUUM ANALYZE" >/dev/null
upgrade=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
split=$(psql "$url" -XAtc "SELECT coalesce(string_agg(relname || ' ' || n_live_tup, ', ' ORDER BY relname), 'none')
                           FROM pg_stat_user_tables WHERE schemaname = 'pgflow' AND n_live_tup > 0
                            AND relname ~ '^(flow_runs|flow_run_states|task_run_states|results|logs|flow_run_tags)_(default|legacy|legacy_lo)$'")

agent=$(psql "$url" -XAtqc "SELECT pgflow.register_agent('bench-agent', ARRAY['default'])")
cat >"$work/claim.sql" <<SQL
\sleep 25 ms
BEGIN;
SELECT pgflow.run_deployment('bench/stamp');
COMMIT;
\sleep 25 ms
BEGIN;
SELECT count(*) FROM pgflow.claim_flow_runs('$agent', ARRAY['default'], 10, true);
COMMIT;
SQL
seconds=$((weeks + 3))
(cd "$work" && pgbench -n -M prepared -c1 -T "$seconds" -l --log-prefix=claims -f claim.sql "$url" >pgbench.out 2>&1) &
bench=$!
sleep 1.5
: >"$work/weeks"
for k in $(seq 2 $((1 + weeks))); do
  a=$(now)
  made=$(psql "$url" -XAtqc "SELECT pgflow._ensure_history_week((now() AT TIME ZONE 'UTC')::date + 7 * $k)")
  b=$(now)
  echo "$((7 * k)) $made $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", (b - a) * 1000}')" >>"$work/weeks"
  sleep 1
done
wait "$bench" || die "pgbench failed: $(cat "$work/pgbench.out")"

echo
echo "Retention migration on a database with history: $runs old runs (v4 ids), $(date -u '+%F %H:%M UTC'), $(nproc) cores"
echo "migration: $migration, applied in $upgrade s; old rows per table: $split"
while read -r k made ms; do echo "week of day +$k made ($made) in $ms ms"; done <"$work/weeks"
# pgbench -l lines: client transaction latency_us script_no epoch epoch_us (a transaction = the whole script)
awk '{print $3 / 1000}' "$work"/claims.* | sort -n >"$work/lat"
awk '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1
  printf "enqueue+claim loops during the run: %d, latency (two 25 ms sleeps included) median %.1f ms, p99 %.1f ms, max %.1f ms; over 100 ms: ", NR, a[int((NR + 1) / 2)], a[i], a[NR]}' "$work/lat"
awk '$1 > 100' "$work/lat" | wc -l
echo "load after: $(uptime)"
