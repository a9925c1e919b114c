#!/usr/bin/env bash
# What a drain that keeps every state must cost PostgreSQL, whoever writes it:
#   scripts/bench-drain-floor.sh [ROUNDS=3] [RUNS=20000]
#
# Not pgflow's code: three bare tables in a scratch database — runs (a primary key and one index on
# creation time, fillfactor 70 so transitions are HOT updates), states (a primary key) and queue — and
# one procedure that drains RUNS queued runs in batches of 200 as pgflow's agents do (per batch: take the
# queue rows, set the runs Running, write Pending and Running states, commit; set them Completed, write
# Completed, commit). Three models, interleaved, each measured as CPU of all PostgreSQL processes per
# drained run (as scripts/bench-drain-cpu.sh measures pgflow's drain and bench-peers.sh PgQueuer's):
#   floor      the above: the least a drain with its history (three state rows per run) writes
#   +indexes   the runs table with the other nine indexes pgflow's flow_runs has today, four of them on
#              columns a transition changes (state, agent, end time): every transition stops being HOT
#   +events    and one event row per state row (pgflow's slim flow-run events: three indexes, a trigger)
# The point of comparison is PgQueuer's PostgreSQL CPU per job in bench-peers.sh, and pgflow's own in
# bench-drain-cpu.sh. One backend does the work, so runs/s here is not comparable to a 2-agent drain.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
runs=${2:-20000}
[ -z "${PGFLOW_DATABASE_URL:-}" ] || die "bench-drain-floor.sh reads the private cluster's processes: unset PGFLOW_DATABASE_URL"
ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
url=$(url_with_database "$admin" pgflow_bench_floor)
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/floor.sql" <<'SQL'
CREATE TABLE runs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), state text NOT NULL, state_ts timestamptz NOT NULL,
    agent uuid, created timestamptz NOT NULL DEFAULT now(), run_count int NOT NULL DEFAULT 0, end_ts timestamptz,
    params jsonb NOT NULL DEFAULT '{}') WITH (fillfactor = 70);
CREATE INDEX ON runs (created DESC, id DESC);
CREATE TABLE states (run_id uuid NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, type text NOT NULL,
    ts timestamptz NOT NULL, PRIMARY KEY (run_id, id));
CREATE TABLE queue (run_id uuid PRIMARY KEY, queue_id int NOT NULL, at timestamptz NOT NULL);
CREATE INDEX ON queue (queue_id, at);
CREATE PROCEDURE drain(p_batch int) LANGUAGE plpgsql AS $$
DECLARE v_ids uuid[];
BEGIN
    LOOP
        WITH c AS (DELETE FROM queue q WHERE q.run_id IN (SELECT run_id FROM queue WHERE queue_id = 1 AND at <= now()
                                                            ORDER BY at LIMIT p_batch FOR UPDATE SKIP LOCKED)
                   RETURNING q.run_id),
             u AS (UPDATE runs r SET state = 'RUNNING', state_ts = now(), run_count = run_count + 1,
                                     agent = '00000000-0000-0000-0000-000000000001'
                     FROM c WHERE r.id = c.run_id RETURNING r.id),
             s AS (INSERT INTO states (run_id, type, ts) SELECT u.id, t, now() FROM u CROSS JOIN (VALUES ('PENDING'), ('RUNNING')) v(t))
        SELECT array_agg(id) INTO v_ids FROM u;
        COMMIT;
        EXIT WHEN v_ids IS NULL;
        UPDATE runs SET state = 'COMPLETED', state_ts = now(), end_ts = now() WHERE id = ANY (v_ids);
        INSERT INTO states (run_id, type, ts) SELECT x, 'COMPLETED', now() FROM unnest(v_ids) x;
        COMMIT;
    END LOOP;
END $$;
SQL
cat >"$work/indexes.sql" <<'SQL'
ALTER TABLE runs ADD COLUMN deployment_id uuid DEFAULT '00000000-0000-0000-0000-000000000002',
    ADD COLUMN flow_id uuid DEFAULT '00000000-0000-0000-0000-000000000003',
    ADD COLUMN work_queue_id uuid DEFAULT '00000000-0000-0000-0000-000000000004',
    ADD COLUMN idempotency_key text, ADD COLUMN parent uuid, ADD COLUMN schedule uuid, ADD COLUMN expected timestamptz DEFAULT now();
CREATE UNIQUE INDEX ON runs (flow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX ON runs (deployment_id, expected) WHERE schedule IS NOT NULL;
CREATE INDEX ON runs (agent) WHERE state IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
CREATE INDEX ON runs (parent) WHERE parent IS NOT NULL;
CREATE INDEX ON runs (end_ts) INCLUDE (state, deployment_id) WHERE end_ts IS NOT NULL;
CREATE INDEX ON runs (deployment_id, flow_id, created, id);
CREATE INDEX ON runs (work_queue_id, created, id);
CREATE INDEX ON runs (state, created, id) WHERE state IN ('FAILED', 'CRASHED', 'CANCELLED');
CREATE INDEX ON runs (state, created, id) WHERE state IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING');
SQL
cat >"$work/events.sql" <<'SQL'
CREATE TABLE events (seq bigint GENERATED ALWAYS AS IDENTITY, occurred timestamptz NOT NULL, event text NOT NULL,
    resource_id text NOT NULL, xid xid8 NOT NULL DEFAULT pg_current_xact_id(), shard int NOT NULL DEFAULT 0);
CREATE INDEX ON events (shard, xid, seq);
CREATE INDEX ON events (occurred, seq);
CREATE INDEX ON events (resource_id, occurred) WHERE event NOT LIKE 'pgflow.flow-run.%';
CREATE FUNCTION state_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (occurred, event, resource_id)
    SELECT n.ts, 'pgflow.flow-run.' || n.type, n.run_id::text FROM new_rows n ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER state_events AFTER INSERT ON states REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION state_events();
SQL

one() {  # $@ = SQL files; prints "pg_us"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_floor WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_floor" >/dev/null
  local f
  for f in "$@"; do psql "$url" -XAtq -v ON_ERROR_STOP=1 -f "$f" >/dev/null; done
  psql "$url" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
WITH r AS (INSERT INTO runs (state, state_ts) SELECT 'SCHEDULED', now() FROM generate_series(1, $runs) RETURNING id)
INSERT INTO queue SELECT id, 1, now() FROM r;
INSERT INTO states (run_id, type, ts) SELECT id, 'SCHEDULED', now() FROM runs;
CHECKPOINT;
VACUUM ANALYZE runs, queue, states;
SQL
  local c0 c1
  sleep 0.5
  c0=$(postgres_cpu_ticks)
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -c "CALL drain(200)"
  sleep 0.3  # the backend's exit, counted in the postmaster's children's time
  c1=$(postgres_cpu_ticks)
  [ "$(psql "$url" -XAtc "SELECT count(*) FROM states")" = $((4 * runs)) ] || die "a run lacks one of its four states"
  awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$runs" 'BEGIN { printf "%.0f\n", c / hz / n * 1e6 }'
}

: >"$work/r-floor"; : >"$work/r-indexes"; : >"$work/r-events"
for r in $(seq 1 "$rounds"); do
  echo "$(one "$work/floor.sql")" >>"$work/r-floor"
  echo "$(one "$work/floor.sql" "$work/indexes.sql")" >>"$work/r-indexes"
  echo "$(one "$work/floor.sql" "$work/indexes.sql" "$work/events.sql")" >>"$work/r-events"
  log "round $r: floor $(tail -1 "$work/r-floor"), +indexes $(tail -1 "$work/r-indexes"), +events $(tail -1 "$work/r-events") µs/run (load $(cut -d' ' -f1 /proc/loadavg))"
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_floor WITH (FORCE)" >/dev/null
echo
echo "PostgreSQL CPU per drained run, a bare model of a drain with history ($runs runs, batches of 200, $rounds interleaved rounds), $(date -u '+%F %H:%M') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in floor indexes events; do
  case $m in
    floor) label="floor (HOT transitions, 3 state rows)" ;;
    indexes) label="+ flow_runs' other 9 indexes (not HOT)" ;;
    events) label="+ one event row per state" ;;
  esac
  printf '%-42s %s µs/run (rounds %s)\n' "$label" "$(median <"$work/r-$m")" "$(paste -sd/ "$work/r-$m")"
done
