#!/usr/bin/env bash
# A run history to measure against:  scripts/gen-history.sh [RUNS=10000000] [DATABASE=pgflow_bench_history]
#
# Creates DATABASE (dropped first when it exists) with the current schema and RUNS finished runs, four
# states each (Scheduled, Pending, Running and the final one): test data, not orchestration — what RUNS
# runs leave behind in flow_runs and flow_run_states. Set-based: one INSERT … SELECT generate_series per
# table, the two tables filled by two sessions at once, with their secondary indexes dropped first and
# built again after (from their own definitions, so the schema's indexes whatever they are), triggers and
# foreign-key checks off for the load (session_replication_role = replica, as pg_restore does), then
# VACUUM ANALYZE. Prints the time of each step and the sizes. `scripts/bench-history.sh` measures on it.
#
# The shape, run k of RUNS (created 3 s apart, the newest now; ids ascend with k):
#   flows f0..f3 with deployments d0..d19 (run k: deployment d(k % 20) of flow f(k % 4)), except
#     1 in 10,000 runs of the rare flow's deployment rare/once, and 1 in 1,000 ad-hoc runs of flow adhoc
#     (no deployment);
#   work queue default, except 1 in 10,007 runs in work queue rareq;
#   tags: nightly on every second run, midtag on 1 in 1,000, raretag on 1 in 9,973;
#   final state: Failed 1 in 100, Crashed 1 in 1,000, Cancelled 1 in 500, TimedOut 1 in 997, Completed
#     otherwise (≈ 97 %).
# Leaves the database (drop it with: psql "$(scripts/db.sh url)" -c 'DROP DATABASE pgflow_bench_history').
#
# PGFLOW_HISTORY_SPACING=S (default 3): seconds between two runs' creation (3 s: 10,000,000 runs over 347
# days). PGFLOW_HISTORY_IDS=v7: ids are UUIDv7 of the run's creation time, as pgflow mints them since 0019,
# so the runs land in their week partitions (made first), as on an installation that ran since 0019; by
# default ids are ascending v4-style values that land in the default partition, as the history of an
# installation upgraded from before 0019 does. Example, a busy installation with 30 days of history:
#   PGFLOW_HISTORY_SPACING=0.26 PGFLOW_HISTORY_IDS=v7 scripts/gen-history.sh 10000000 pgflow_bench_weeks
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
runs=${1:-10000000}
db=${2:-pgflow_bench_history}
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || die "RUNS must be a positive number, got '$runs'"
[[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "DATABASE must be a plain lower-case name, got '$db'"

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" "$db")
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
psql "$url" -XAtq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null  # the whole schema, every migration
if [ -n "${PGFLOW_BENCH_SQL:-}" ]; then psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$PGFLOW_BENCH_SQL" >/dev/null; fi
q() { psql "$url" -XAtq -v ON_ERROR_STOP=1 "$@"; }
started=$(date +%s.%N)
step() { log "$(awk -v s="$started" -v n="$(date +%s.%N)" 'BEGIN{printf "%7.1f s", n - s}')  $*"; }

step "deployments and queues"
q >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('rareq');
SELECT pgflow.create_deployment('f' || (i % 4), 'd' || i, 'true') FROM generate_series(0, 19) i;
SELECT pgflow.create_deployment('rare', 'once', 'true');
SELECT pgflow.create_deployment('adhoc', 'unused', 'true');
SQL
# slot 0..19: d0..d19; 20: rare/once; 21: adhoc without a deployment
q >/dev/null <<'SQL'
CREATE TABLE public.gen_slots AS
SELECT i AS slot, d.flow_id, d.id AS deployment_id, d.work_queue_id
  FROM generate_series(0, 19) i JOIN pgflow.deployments d ON d.name = 'd' || i
UNION ALL SELECT 20, d.flow_id, d.id, d.work_queue_id FROM pgflow.deployments d WHERE d.name = 'once'
UNION ALL SELECT 21, d.flow_id, NULL, d.work_queue_id FROM pgflow.deployments d WHERE d.name = 'unused';
CREATE TABLE public.gen_queue AS SELECT id FROM pgflow.work_queues WHERE name = 'rareq';
SQL

spacing=${PGFLOW_HISTORY_SPACING:-3}
ids=${PGFLOW_HISTORY_IDS:-v4}
case "$ids" in v4|v7) ;; *) die "PGFLOW_HISTORY_IDS is v4 or v7, not $ids" ;; esac
awk -v s="$spacing" 'BEGIN { exit !(s + 0 > 0) }' || die "PGFLOW_HISTORY_SPACING is a number of seconds above 0, not $spacing"
if [ "$ids" = v7 ]; then
  step "week partitions for $(awk -v r="$runs" -v s="$spacing" 'BEGIN { printf "%.1f", r * s / 86400 }') days"
  q -c "SELECT count(*) FILTER (WHERE pgflow._ensure_history_week(d::date))
          FROM generate_series(now() - $runs * interval '$spacing s' - interval '7 days', now(), interval '7 days') d" >/dev/null
fi

step "dropping the secondary indexes of flow_runs and flow_run_states"
# (ON ONLY: since 0019 the tables are partitioned, and an index made ON ONLY the parent is invalid and
# has no partition's index under it: made ON the parent, it is built on every partition)
q -c "SELECT replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') || ';' FROM pg_index i
       WHERE i.indrelid IN ('pgflow.flow_runs'::regclass, 'pgflow.flow_run_states'::regclass)
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
       ORDER BY i.indrelid::regclass::text, i.indexrelid::regclass::text" >"$PGFLOW_STATE/gen-history-$db-indexes.sql"
q -c "SELECT 'DROP INDEX ' || i.indexrelid::regclass || ';' FROM pg_index i
       WHERE i.indrelid IN ('pgflow.flow_runs'::regclass, 'pgflow.flow_run_states'::regclass)
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)" | q >/dev/null

# autovacuum would start on the loaded tables while their indexes are built (and wait or be cancelled)
# (since 0019 both tables are partitioned by week: these v4 ids land in their DEFAULT partitions, which hold
# the storage settings)
fr=pgflow.flow_runs frs=pgflow.flow_run_states
if [ "$(q -c "SELECT to_regclass('pgflow.flow_runs_default') IS NOT NULL")" = t ]; then
  fr=pgflow.flow_runs_default frs=pgflow.flow_run_states_default
fi
q -c "ALTER TABLE $fr SET (autovacuum_enabled = false)" -c "ALTER TABLE $frs SET (autovacuum_enabled = false)"

step "inserting $runs runs and $((runs * 4)) states (two sessions)"
# the run's id from k: ascending, so the primary keys grow at their right edge
base=$(q -c "SELECT now()")  # one instant for both sessions: a v7 id is made from the run's time
t="('$base'::timestamptz - ($runs - k) * interval '$spacing s')"
if [ "$ids" = v7 ]; then  # the creation time's milliseconds, version 7, then k (unique, ascending)
  id="(lpad(to_hex(floor(extract(epoch FROM $t) * 1000)::bigint), 12, '0') || '78' || lpad(to_hex(k), 18, '0'))::uuid"
else
  id="('00000000-0000-4000-8000-' || lpad(to_hex(k), 12, '0'))::uuid"
fi
final="CASE WHEN k % 100 = 0 THEN 'FAILED:Failed' WHEN k % 1000 = 1 THEN 'CRASHED:Crashed'
            WHEN k % 500 = 2 THEN 'CANCELLED:Cancelled' WHEN k % 997 = 4 THEN 'FAILED:TimedOut'
            ELSE 'COMPLETED:Completed' END"
q >/dev/null <<SQL &
SET session_replication_role = replica;
SET synchronous_commit = off;
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, parameters, tags, run_count,
                              expected_start_time, start_time, end_time, total_run_time,
                              state_type, state_name, state_timestamp, created_at)
SELECT $id, 'history-' || k, s.flow_id, s.deployment_id,
       CASE WHEN k % 10007 = 3 THEN (SELECT id FROM public.gen_queue) ELSE s.work_queue_id END,
       '{}', ARRAY_REMOVE(ARRAY[CASE WHEN k % 2 = 0 THEN 'nightly' END, CASE WHEN k % 1000 = 11 THEN 'midtag' END,
                                CASE WHEN k % 9973 = 5 THEN 'raretag' END], NULL),
       1, $t, $t + interval '1 s', $t + interval '2 s', interval '1 s',
       split_part(f, ':', 1)::pgflow.state_type, split_part(f, ':', 2), $t + interval '2 s', $t
  FROM generate_series(1, $runs) k
 CROSS JOIN LATERAL (SELECT $final AS f) fin
  JOIN public.gen_slots s ON s.slot = CASE WHEN k % 10000 = 0 THEN 20 WHEN k % 1000 = 7 THEN 21 ELSE k % 20 END;
-- the tags' rows (0016; the trigger that writes them is off in this session)
INSERT INTO pgflow.flow_run_tags (tag, created_at, flow_run_id)
SELECT t, r.created_at, r.id FROM pgflow.flow_runs r CROSS JOIN LATERAL unnest(r.tags) t
 WHERE r.name LIKE 'history-%';
SQL
p1=$!
q >/dev/null <<SQL &
SET session_replication_role = replica;
SET synchronous_commit = off;
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT $id, split_part(s.f, ':', 1)::pgflow.state_type, split_part(s.f, ':', 2), $t + s.offs
  FROM generate_series(1, $runs) k
 CROSS JOIN LATERAL (VALUES ('SCHEDULED:Scheduled', interval '0'), ('PENDING:Pending', interval '0.5 s'),
                            ('RUNNING:Running', interval '1 s'), ($final, interval '2 s')) AS s(f, offs);
SQL
p2=$!
wait $p1 || die "inserting the runs failed"
wait $p2 || die "inserting the states failed"

step "building the indexes again ($(grep -c . "$PGFLOW_STATE/gen-history-$db-indexes.sql"))"
# two sessions: flow_runs' indexes in one, flow_run_states' in the other
grep 'ON pgflow.flow_runs ' "$PGFLOW_STATE/gen-history-$db-indexes.sql" >"$PGFLOW_STATE/gen-history-$db-idx1.sql" || true
grep -v 'ON pgflow.flow_runs ' "$PGFLOW_STATE/gen-history-$db-indexes.sql" >"$PGFLOW_STATE/gen-history-$db-idx2.sql" || true
pids=()
for f in idx1 idx2; do
  (echo "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 0;"; cat "$PGFLOW_STATE/gen-history-$db-$f.sql") | q >/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "building the indexes failed"; done
q -c "DROP TABLE public.gen_slots, public.gen_queue" >/dev/null

# the side tables that the listings and readers of runs in progress, failed runs and endings use (0024),
# derived from the rows just written (the triggers and functions that keep them were off)
if [ "$(q -c "SELECT to_regproc('pgflow._fill_run_sides') IS NOT NULL")" = t ]; then
  step "the side tables (pgflow._fill_run_sides)"
  q -c "SELECT pgflow._fill_run_sides()" >/dev/null
fi

step "VACUUM ANALYZE (two sessions)"
q -c "VACUUM (ANALYZE) pgflow.flow_runs" >/dev/null & p1=$!
q -c "VACUUM (ANALYZE) pgflow.flow_run_states" >/dev/null & p2=$!
wait $p1 && wait $p2 || die "VACUUM failed"
q -c "VACUUM ANALYZE" >/dev/null
q -c "ALTER TABLE $fr RESET (autovacuum_enabled)" -c "ALTER TABLE $frs RESET (autovacuum_enabled)"
step "done"
q -F ' ' -c "SELECT 'runs ' || (SELECT count(*) FROM pgflow.flow_runs) || ', states ' || (SELECT count(*) FROM pgflow.flow_run_states)
                    || '; flow_runs ' || pg_size_pretty((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('pgflow.flow_runs')))
                    || ', flow_run_states ' || pg_size_pretty((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('pgflow.flow_run_states')))"
echo "database: $url"
