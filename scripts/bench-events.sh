#!/usr/bin/env bash
# Event benchmarks, against one local PostgreSQL (release builds):
#   scripts/bench-events.sh [PINGS=300] [DRAIN=20000] [REPEATS=3] [PARTS=123]   (PARTS: which of 1, 2, 3 to run)
# 1. event -> action started: PINGS events emitted one per transaction, 20 ms apart, with one
#    `pgflow-scheduler --events-only` running and an automation whose action emits an event; latency is
#    the firing's fired_at (clock time when the action started) minus the event's occurred (the start of
#    the emitting transaction); p50/p99
# 2. events/s emitted through SQL: 100,000 pgflow.emit_event calls in one statement; and pgbench, 4
#    clients, one emit per transaction, 10 s
# 3. drain: DRAIN no-op in-process runs enqueued up front, 2 agents drain them (as scripts/bench-agent.sh
#    does), with the state-event trigger on and off (ALTER TABLE … DISABLE TRIGGER), REPEATS times each,
#    alternating; medians of runs/s
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
pings=${1:-300}
drain=${2:-20000}
repeats=${3:-3}
parts=${4:-123}
lat50=- lat99=- latn=0 bulk=- ms=- tps=- on_median=- off_median=- on=() off=()

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_events)
log "building release binaries"
swift build -c release --product pgflow-scheduler >/dev/null
swift build -c release --product pgflow-bench-agent >/dev/null
bin=$(swift build -c release --show-bin-path)
pids=()
work=$(mktemp -d)
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

fresh() {
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_events WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_events" >/dev/null
  scripts/apply-schema.sh "$url" 2>/dev/null
  psql "$url" -XAtq >/dev/null <<'SQL'
SELECT pgflow.create_work_queue('bench');
SELECT pgflow.create_deployment('bench', 'noop', 'swift:noop', p_work_queue => 'bench');
SQL
}
stop_all() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }

if [[ $parts == *1* ]]; then
log "1/3 event -> action started ($pings events)"
fresh
psql "$url" -XAtqc "SELECT pgflow.create_automation('ping-pong', '{\"match\": \"bench.ping\"}', '[{\"type\": \"emit-event\", \"event\": \"bench.pong\"}]')" >/dev/null
PGFLOW_DATABASE_URL="$url" "$bin/pgflow-scheduler" --events-only 2>"$work/scheduler.log" & pids+=($!)
sleep 2
for i in $(seq 1 "$pings"); do
  echo "SELECT pgflow.emit_event('bench.ping', '{\"id\": \"$i\"}');"
  echo "SELECT pg_sleep(0.02);"
done | psql "$url" -Xq >/dev/null
until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.automation_firings")" -ge "$pings" ]; do sleep 0.2; done
read -r lat50 lat99 latn <<<"$(psql "$url" -XAtF ' ' -c "
  SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 2),
         round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 2), count(*)
    FROM (SELECT extract(epoch FROM fired_at - event_occurred) * 1000 AS ms FROM pgflow.automation_firings) x")"
stop_all
fi

if [[ $parts == *2* ]]; then
log "2/3 events/s through SQL"
fresh
psql "$url" -XAtqc "SELECT count(pgflow.emit_event('bench.warm', '{}')) FROM generate_series(1, 1000)" >/dev/null
ms=$(psql "$url" -XAt -c '\timing on' -c "SELECT count(pgflow.emit_event('bench.bulk', jsonb_build_object('id', g::text), '{\"n\": 1}')) FROM generate_series(1, 100000) g" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
bulk=$(awk -v ms="$ms" 'BEGIN{printf "%d", 100000 / (ms / 1000)}')
echo "SELECT pgflow.emit_event('bench.tx', '{\"id\": \"x\"}', '{\"n\": 1}');" >"$work/emit.sql"
eval "$(url_to_pg_env "$url")"
tps=$(pgbench -n -c 4 -j 2 -T 10 -f "$work/emit.sql" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
fi

if [[ $parts == *3* ]]; then

log "3/3 drain of $drain no-op runs by 2 agents, state events on and off, $repeats times each"
for r in $(seq 1 "$repeats"); do
  for mode in on off; do
    fresh
    if [ "$mode" = off ]; then psql "$url" -XAtqc "ALTER TABLE pgflow.flow_run_states DISABLE TRIGGER flow_run_states_events" >/dev/null; fi
    psql "$url" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('bench/noop', array_fill('{}'::jsonb, ARRAY[$drain]))" >/dev/null
    "$bin/pgflow-bench-agent" serve "$url" 400 & pids+=($!)
    "$bin/pgflow-bench-agent" serve "$url" 400 & pids+=($!)
    until [ "$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'")" -ge "$drain" ]; do sleep 0.2; done
    rate=$(psql "$url" -XAtc "
      SELECT round(($drain / extract(epoch FROM max(\"timestamp\") FILTER (WHERE state_type = 'COMPLETED') - min(\"timestamp\") FILTER (WHERE state_type = 'PENDING')))::numeric)
        FROM pgflow.flow_run_states")
    events=$(psql "$url" -XAtc "SELECT count(*) FROM pgflow.events")
    stop_all
    log "  drain, events $mode: $rate runs/s ($events events)"
    if [ "$mode" = on ]; then on+=("$rate"); else off+=("$rate"); fi
  done
done
on_median=$(printf '%s\n' "${on[@]}" | median)
off_median=$(printf '%s\n' "${off[@]}" | median)
fi

echo
echo "Event benchmarks, $(date -u +%F), $(nproc) cores, PostgreSQL $(psql "$url" -XAtc 'SHOW server_version' | cut -d' ' -f1), release build"
printf '%-58s %s\n' "event -> action started (1 evaluator, $latn events)" "p50 $lat50 ms, p99 $lat99 ms"
printf '%-58s %s\n' "events emitted through SQL, one statement" "$bulk events/s (100,000 in $ms ms)"
printf '%-58s %s\n' "events emitted through SQL, 1 per transaction, 4 clients" "$tps events/s"
printf '%-58s %s\n' "drain $drain no-op runs, 2 agents, state events on" "$on_median runs/s (median of ${on[*]})"
printf '%-58s %s\n' "drain $drain no-op runs, 2 agents, state events off" "$off_median runs/s (median of ${off[*]})"
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_events WITH (FORCE)" >/dev/null
