#!/usr/bin/env bash
# History at scale, measured:  scripts/bench-history.sh [DATABASE=pgflow_bench_history] [ROUNDS=3] [CALLS=200] [CLAIMS=2000] [ONLY]
#
# On a database that scripts/gen-history.sh made (10,000,000 runs by default; its shape is described
# there), prints:
#   - the claim (pgflow.claim_flow_runs with p_max 1 and p_start, one per transaction, pgbench -M
#     prepared -c 1, CLAIMS per round) against the same schema with an empty history, ROUNDS rounds
#     interleaved (empty, full, empty, …), medians and their ratio (issue 17's goal: ≤ 1.2);
#   - every listing query the CLI (`pgflow flow-run ls` and its filters: pgflow.list_flow_runs), the API
#     (GET /api/flow-runs with its filters and cursor) and the dashboard (/flow-runs: pgflow.flow_run_page)
#     run: p50 and p99 of CALLS calls (pgbench per-transaction log), ROUNDS rounds, medians over the rounds
#     (goal: p99 ≤ 20 ms). Rare values (0.01 % of the runs) are measured beside common ones, because a
#     filter without an index of its own is fast for common values and walks the history for rare ones.
# The claims leave CLAIMS × ROUNDS runs Running in the history, so the RUNNING listing has rows to find.
# Prints the machine's load average with the figures: this machine is shared. ONLY (a regular expression):
# only the listings whose label matches, and no claims.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
db=${1:-pgflow_bench_history}
rounds=${2:-3}
calls=${3:-200}
claims=${4:-2000}
only=${5:-}
[[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "DATABASE must be a plain lower-case name, got '$db'"

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" "$db")
empty=$(url_with_database "$admin" "${db}_empty")
psql "$url" -XAtqc "SELECT 1 FROM pgflow.flow_runs LIMIT 1" >/dev/null 2>&1 || die "no history in $db: run scripts/gen-history.sh first"
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS ${db}_empty WITH (FORCE)" -c "CREATE DATABASE ${db}_empty" >/dev/null
psql "$empty" -XAtq -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$admin" -XAtqc "DROP DATABASE IF EXISTS ${db}_empty WITH (FORCE)" >/dev/null 2>&1' EXIT

# the claim's deployment and agent, in both databases (kept when they exist)
for u in "$empty" "$url"; do
  psql "$u" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT pgflow.create_deployment('bench', 'claim', 'true') WHERE NOT EXISTS (SELECT 1 FROM pgflow.deployments WHERE name = 'claim');
SELECT pgflow.register_agent('bench-claims', '{default}') WHERE NOT EXISTS (SELECT 1 FROM pgflow.agents WHERE name = 'bench-claims');
SQL
done
claim_round() {  # $1 = url; prints ms per claim
  local agent
  agent=$(psql "$1" -XAtc "SELECT id FROM pgflow.agents WHERE name = 'bench-claims'")
  echo "SELECT count(*) FROM pgflow.claim_flow_runs('$agent', NULL, 1, true);" >"$work/claim.sql"
  psql "$1" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/claim', array_fill('{}'::jsonb, ARRAY[$claims]), p_scheduled_time => now() - interval '1 minute')" >/dev/null
  psql "$1" -XAtqc "VACUUM ANALYZE pgflow.run_queue" >/dev/null
  pgbench -n -M prepared -c 1 -t "$claims" -f "$work/claim.sql" "$1" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
log "claims: $rounds interleaved rounds of $claims, empty history against $db"
for r in $(seq 1 "$rounds"); do
  [ -z "$only" ] || break
  claim_round "$empty" >>"$work/empty"
  claim_round "$url" >>"$work/full"
done
loads="$(cut -d' ' -f1 /proc/loadavg)"

latency() {  # $1 = label, $2 = SQL; prints "label p50 p99", medians over the rounds
  [ -z "$only" ] || [[ $1 =~ $only ]] || return 0
  echo "$2" >"$work/q.sql"
  local r
  for r in $(seq 1 "$rounds"); do
    (cd "$work" && rm -f pgbench_log.* && pgbench -n -M prepared -c 1 -t "$calls" -l -f q.sql "$url" >/dev/null 2>&1) \
      || die "the query of '$1' failed: $(psql "$url" -XAtc "$2" 2>&1 | tail -n 1)"
    awk '{print $3 / 1000}' "$work"/pgbench_log.* | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.5)+1], a[int(NR*0.99)]}'
  done >"$work/lat"
  printf '%-66s %8.2f %8.2f\n' "$1" "$(cut -d' ' -f1 "$work/lat" | median)" "$(cut -d' ' -f2 "$work/lat" | median)"
  loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
}
page() { echo "SELECT count(*) FROM pgflow.flow_run_page($1);"; }
cli() { echo "SELECT count(*) FROM pgflow.list_flow_runs($1);"; }
cursor=$(psql "$url" -XAtc "SELECT cursor FROM pgflow.flow_run_page(p_limit => 50) OFFSET 49")
cursor_failed=$(psql "$url" -XAtc "SELECT cursor FROM pgflow.flow_run_page(p_state_type => 'FAILED', p_limit => 50) OFFSET 49")
cursor_mid=$(psql "$url" -XAtc "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || ',' || id FROM pgflow.flow_runs
                                 WHERE created_at < now() - interval '180 days' ORDER BY created_at DESC, id DESC LIMIT 1")
run=$(psql "$url" -XAtc "SELECT id FROM pgflow.flow_runs WHERE name = 'history-5000'")

echo
echo "History at scale: $db, $(date -u '+%F %H:%M') UTC, $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1), load at start $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
psql "$url" -XAtF ' ' -c "SELECT 'runs ' || (SELECT reltuples::bigint FROM pg_class WHERE oid = 'pgflow.flow_runs'::regclass)
                                  || ', state rows ' || (SELECT reltuples::bigint FROM pg_class WHERE oid = 'pgflow.flow_run_states'::regclass)
                                  || ' (estimates); flow_runs ' || pg_size_pretty((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('pgflow.flow_runs')))
                                  || ', flow_run_states ' || pg_size_pretty((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('pgflow.flow_run_states')))"
if [ -z "$only" ]; then
e=$(median <"$work/empty"); f=$(median <"$work/full")
printf '%-66s %8s\n' "claim (p_max 1, p_start), ms: empty history ($(tr '\n' ' ' <"$work/empty"))" "$e"
printf '%-66s %8s\n' "claim, ms: with the history ($(tr '\n' ' ' <"$work/full"))" "$f"
printf '%-66s %8s\n' "ratio (goal <= 1.2)" "$(awk -v a="$f" -v b="$e" 'BEGIN{printf "%.2f", a/b}')"
fi
printf '%-66s %8s %8s\n' "listing ($calls calls x $rounds rounds; medians)" "p50 ms" "p99 ms"
latency "API/dashboard flow_run_page: newest 50"                "$(page "p_limit => 50")"
latency "  page 2 (cursor)"                                     "$(page "p_limit => 50, p_cursor => '$cursor'")"
[ -z "$cursor_mid" ] || latency "  a page 180 days back (cursor)" "$(page "p_limit => 50, p_cursor => '$cursor_mid'")"
latency "  state FAILED (1.1 %)"                                "$(page "p_state_type => 'FAILED', p_limit => 50")"
latency "  state FAILED, page 2 (cursor)"                       "$(page "p_state_type => 'FAILED', p_limit => 50, p_cursor => '$cursor_failed'")"
latency "  state CRASHED (0.1 %)"                               "$(page "p_state_type => 'CRASHED', p_limit => 50")"
latency "  state RUNNING (the claims' runs)"                    "$(page "p_state_type => 'RUNNING', p_limit => 50")"
latency "  state PAUSED (none)"                                 "$(page "p_state_type => 'PAUSED', p_limit => 50")"
latency "  state SCHEDULED"                                     "$(page "p_state_type => 'SCHEDULED', p_limit => 50")"
latency "  state COMPLETED (97 %)"                              "$(page "p_state_type => 'COMPLETED', p_limit => 50")"
latency "  state name TimedOut (0.1 %)"                         "$(page "p_state_name => 'TimedOut', p_limit => 50")"
latency "  state name Late (none)"                              "$(page "p_state_name => 'Late', p_limit => 50")"
latency "  deployment f1/d1 (5 %)"                              "$(page "p_deployment => 'f1/d1', p_limit => 50")"
latency "  deployment rare/once (0.01 %)"                       "$(page "p_deployment => 'rare/once', p_limit => 50")"
latency "  flow f1 (25 %, 5 deployments)"                       "$(page "p_flow => 'f1', p_limit => 50")"
latency "  flow adhoc (0.1 %, no deployment)"                   "$(page "p_flow => 'adhoc', p_limit => 50")"
latency "  flow rare (0.01 %)"                                  "$(page "p_flow => 'rare', p_limit => 50")"
latency "  tag nightly (50 %)"                                  "$(page "p_tag => 'nightly', p_limit => 50")"
latency "  tag midtag (0.1 %)"                                  "$(page "p_tag => 'midtag', p_limit => 50")"
latency "  tag raretag (0.01 %)"                                "$(page "p_tag => 'raretag', p_limit => 50")"
latency "  work queue default (99.99 %)"                        "$(page "p_work_queue => 'default', p_limit => 50")"
latency "  work queue rareq (0.01 %)"                           "$(page "p_work_queue => 'rareq', p_limit => 50")"
latency "  time range: the last 24 h"                           "$(page "p_since => now() - interval '24 hours', p_limit => 50")"
latency "  time range: a day 180 days back"                     "$(page "p_since => now() - interval '181 days', p_until => now() - interval '180 days', p_limit => 50")"
latency "  flow f0 + state FAILED (f0 has the Failed runs)"    "$(page "p_flow => 'f0', p_state_type => 'FAILED', p_limit => 50")"
latency "  deployment f2/d2 + tag nightly"                      "$(page "p_deployment => 'f2/d2', p_tag => 'nightly', p_limit => 50")"
latency "CLI list_flow_runs (flow-run ls): newest 20"           "$(cli "p_limit => 20")"
latency "  --state failed"                                      "$(cli "p_state => 'failed'")"
latency "  --state running"                                     "$(cli "p_state => 'running'")"
latency "  --state completed"                                   "$(cli "p_state => 'completed'")"
latency "  --flow f1"                                           "$(cli "p_flow => 'f1'")"
latency "  --deployment rare/once"                              "$(cli "p_deployment => 'rare/once'")"
latency "  --tag raretag"                                       "$(cli "p_tag => 'raretag'")"
latency "  --since 1d"                                          "$(cli "p_since => now() - interval '1 day'")"
latency "  --upcoming"                                          "$(cli "p_upcoming => true")"
latency "one run's states (flow_run_state_history)"             "SELECT count(*) FROM pgflow.flow_run_state_history('$run');"
latency "get_flow_run (API run page)"                           "SELECT count(*) FROM pgflow.get_flow_run('$run');"
echo "load average (1 min) during the listings: $(tr ' ' '\n' <<<"$loads" | sort -n | sed -n '1p;$p' | tr '\n' ' ' | sed 's/ $//; s/ / to /')"
