#!/usr/bin/env bash
# Reading events, two schemas:  scripts/bench-event-reads.sh [RUNS=50000] [EVENTS=20000] [REPEATS=21] [A.sql] [B.sql]
#
# For each schema file (A, B; defaults as scripts/bench-drain-cpu.sh: HEAD~1's sql/schema.sql and
# sql/schema.sql) a fresh database with RUNS runs taken through Scheduled, Pending, Running and Completed
# by the drain's own functions (claim_flow_runs, set_flow_run_states, batches of 400, a transaction
# each: 4 state events per run) and EVENTS
# events of one's own (emit_event); then, in one session, the median over REPEATS calls in ms of:
# the newest page of the feed (event_page, 50), the newest 50 flow-run events (pattern), one run's events
# (p_resource_id), the feed after a recent seq (--follow), an evaluator pass with nothing to evaluate,
# and an evaluator pass over a backlog (1,000 events, the cursors put back at 0; rolled back). Prints one
# line per figure: name, A, B. Uses the private cluster of scripts/db.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
runs=${1:-50000}
events=${2:-20000}
repeats=${3:-21}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ab_schemas "$work" "${4:-}" "${5:-}"

scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_event_reads)

one() {  # $1 = schema file; prints "name ms" lines
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_event_reads WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_event_reads" >/dev/null
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$1" >/dev/null 2>&1 || die "could not apply $1"
  psql "$url" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'noop', 'swift:noop', p_work_queue => 'bench');
SELECT set_config('bench.agent', pgflow.register_agent('bench-reader', ARRAY['bench'])::text, false);
SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[$runs]));
CREATE PROCEDURE pg_temp.drain() LANGUAGE plpgsql AS \$\$
DECLARE v_ids uuid[];
BEGIN  -- a transaction per batch, as the agents do (each batch's states get that transaction's time)
    LOOP
        v_ids := ARRAY(SELECT flow_run_id FROM pgflow.claim_flow_runs(current_setting('bench.agent')::uuid, NULL, 400, true));
        COMMIT;
        EXIT WHEN cardinality(v_ids) = 0;
        PERFORM pgflow.set_flow_run_states(v_ids, array_fill('COMPLETED'::text, ARRAY[cardinality(v_ids)]),
                                           p_agent_id => current_setting('bench.agent')::uuid);
        COMMIT;
    END LOOP;
END \$\$;
CALL pg_temp.drain();
SELECT count(*) FROM (SELECT pgflow.emit_event('acme.file.arrived', jsonb_build_object('id', 'f' || g, 'kind', 'file')) FROM generate_series(1, $events) g) e;
DO \$\$ DECLARE r record; BEGIN LOOP SELECT * INTO r FROM pgflow.evaluate_events(10000, 8, now()); EXIT WHEN r.events = 0; END LOOP; END \$\$;
VACUUM ANALYZE;
SQL
  [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'")" = "$runs" ] || die "not every run completed"
  psql "$url" -XAtq -v ON_ERROR_STOP=1 <<SQL
CREATE FUNCTION pg_temp.ms(p_sql text, p_n integer) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t timestamptz; a numeric[] := '{}';
BEGIN
    FOR i IN 1 .. p_n LOOP
        t := clock_timestamp();
        EXECUTE p_sql;
        a := a || (extract(epoch FROM clock_timestamp() - t) * 1000)::numeric;
    END LOOP;
    RETURN round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(a) x)::numeric, 2);
END \$\$;
SELECT (SELECT id::text FROM pgflow.flow_runs ORDER BY id LIMIT 1 OFFSET ($runs / 2)) AS run,
       (SELECT max(seq) - 100 FROM pgflow.event_page(p_limit => 1)) AS recent \gset
SELECT 'page_newest_50', pg_temp.ms('SELECT count(*) FROM pgflow.event_page(p_limit => 50)', $repeats);
SELECT 'page_flow_run_events_50', pg_temp.ms('SELECT count(*) FROM pgflow.event_page(''pgflow.flow-run.*'', p_limit => 50)', $repeats);
SELECT 'page_one_run', pg_temp.ms(format('SELECT count(*) FROM pgflow.event_page(p_resource_id => %L)', :'run'), $repeats);
SELECT 'page_follow_after_seq', pg_temp.ms('SELECT count(*) FROM pgflow.event_page(p_after_seq => ' || :recent || ', p_limit => 50)', $repeats);
SELECT 'evaluate_idle_pass', pg_temp.ms('SELECT pgflow.evaluate_events(1000, 8, now())', $repeats);
BEGIN;
UPDATE pgflow.event_cursors SET xid = '0', seq = 0;
SELECT 'evaluate_backlog_1000', pg_temp.ms('SELECT pgflow.evaluate_events(1000, 8, now())', least($repeats, 10));
ROLLBACK;
SQL
}

one "$work/a.sql" | tr '|' ' ' >"$work/A"
one "$work/b.sql" | tr '|' ' ' >"$work/B"
printf '%-26s %10s %10s\n' "median ms ($repeats calls)" A B
join "$work/A" "$work/B" | awk '{printf "%-26s %10s %10s\n", $1, $2, $3}'
