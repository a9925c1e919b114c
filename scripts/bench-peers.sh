#!/usr/bin/env bash
# pgflow against PgQueuer on one PostgreSQL:  scripts/bench-peers.sh [ROUNDS=3] [JOBS=20000]
#
# Each round drains JOBS no-op jobs twice, one after the other on the same cluster: PgQueuer 1.6 (2 worker
# processes, batch 100, scripts/peers/pgqueuer_drain.py, installed once in the virtualenv
# .pgflow/pgqueuer-venv from PyPI) and pgflow (`scripts/bench-agent.sh drain`: 2 agent processes,
# in-process no-op flows, claims of 200, no cap on the runs in flight as PgQueuer's workers have none,
# every run's four states checked). The order alternates between rounds. Prints
# each round, the medians and the ratio pgflow / PgQueuer of the medians: the figure that counts.
#
# Both clocks run from the first job's start to the last job's end (pgflow: the first Pending state to the
# last Completed state; PgQueuer: the first job body's start to the last body's end, so PgQueuer's final
# status flush is not counted). PgQueuer keeps no history; pgflow keeps every state of every run.
# Also printed per round: the CPU time PostgreSQL's processes spent per run/job (private cluster only).
# PGFLOW_BENCH_NO_BUILD=1 uses the binaries already built; PGFLOW_BENCH_SQL as in bench-agent.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-3}
jobs=${2:-20000}

ensure_system_packages
scripts/db.sh up >/dev/null
admin=$(cat "$PGFLOW_STATE/admin-url")
peers=$(url_with_database "$admin" pgflow_bench_peers)
venv="$PGFLOW_STATE/pgqueuer-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pgqueuer, asyncpg' 2>/dev/null; then
  log "installing PgQueuer 1.6 in $venv (once)"
  python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"
  "$venv/bin/pip" install -q 'pgqueuer>=1.6,<1.7' asyncpg || die "pip could not install pgqueuer 1.6 from PyPI"
fi
py="$venv/bin/python"
pgq_version=$("$py" -c 'import pgqueuer; print(pgqueuer.__version__)')

if [ -z "${PGFLOW_BENCH_NO_BUILD:-}" ]; then
  log "building release binaries"
  swift build -c release --product pgflow-agent >/dev/null
  swift build -c release --product pgflow-bench-agent >/dev/null
  swift build --product pgflow >/dev/null   # scripts/apply-schema.sh's migrator
fi

# PostgreSQL's CPU per job of each round (the private cluster only; "-" with PGFLOW_DATABASE_URL)
cpu_mark() { if [ -z "${PGFLOW_DATABASE_URL:-}" ]; then postgres_cpu_ticks; else echo 0; fi; }
cpu_per_job() {  # $1 $2 = ticks before and after
  if [ -z "${PGFLOW_DATABASE_URL:-}" ]; then
    awk -v c=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v n="$jobs" 'BEGIN { printf "%.0f", c / hz / n * 1e6 }'
  else echo -; fi
}
pgqueuer_round() {  # prints "jobs/s PostgreSQL-µs-per-job"
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_peers WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_peers" >/dev/null
  "$py" scripts/peers/pgqueuer_drain.py setup "$peers" "$jobs"
  psql "$peers" -XAtqc "CHECKPOINT" >/dev/null
  local out w1 w2 c0 c1
  out=$(mktemp)
  c0=$(cpu_mark)
  "$py" scripts/peers/pgqueuer_drain.py work "$peers" 100 >"$out.1" & w1=$!
  "$py" scripts/peers/pgqueuer_drain.py work "$peers" 100 >"$out.2" & w2=$!
  wait "$w1" "$w2"
  c1=$(cpu_mark)
  local left
  left=$("$py" scripts/peers/pgqueuer_drain.py left "$peers")
  [ "$left" = 0 ] || die "PgQueuer left $left jobs queued"
  cat "$out.1" "$out.2" | awk -v n="$jobs" '
    { if (first == "" || $1 < first) first = $1; if ($2 > last) last = $2; done += $3 }
    END { if (done != n) { print "PgQueuer ran " done " jobs, not " n > "/dev/stderr"; exit 1 }
          printf "%.0f ", n / (last - first) }'
  cpu_per_job "$c0" "$c1"
  echo
  rm -f "$out" "$out.1" "$out.2"
}

pgflow_round() {  # prints "runs/s PostgreSQL-µs-per-run" (CPU from just before the agents start to the last run's end)
  local marks rate
  marks=$(mktemp)
  rate=$(PGFLOW_BENCH_BEFORE="cpu_mark >$marks" PGFLOW_BENCH_AFTER="cpu_mark >>$marks" \
         PGFLOW_BENCH_NO_BUILD=1 scripts/bench-agent.sh drain "$jobs" | awk '{print $1}')
  echo "$rate $(cpu_per_job $(head -1 "$marks") $(tail -1 "$marks"))"
  rm -f "$marks"
}
export -f cpu_mark


pg=() pq=() pgc=() pqc=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    read -r a b <<<"$(pgflow_round)"; pg+=("$a"); pgc+=("$b")
    read -r a b <<<"$(pgqueuer_round)"; pq+=("$a"); pqc+=("$b")
  else
    read -r a b <<<"$(pgqueuer_round)"; pq+=("$a"); pqc+=("$b")
    read -r a b <<<"$(pgflow_round)"; pg+=("$a"); pgc+=("$b")
  fi
  log "round $r: pgflow ${pg[-1]} runs/s (PostgreSQL ${pgc[-1]} µs/run), PgQueuer ${pq[-1]} jobs/s (PostgreSQL ${pqc[-1]} µs/job)"
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_peers WITH (FORCE)" >/dev/null

mpg=$(printf '%s\n' "${pg[@]}" | median)
mpq=$(printf '%s\n' "${pq[@]}" | median)
echo
echo "Drain of $jobs no-op jobs, 2 worker processes, $(date -u '+%F %H:%M') UTC, $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %s\n' "pgflow (every state recorded), runs/s" "${pg[*]}  median $mpg"
printf '%-44s %s\n' "PgQueuer $pgq_version (batch 100), jobs/s" "${pq[*]}  median $mpq"
printf '%-44s %s\n' "PostgreSQL CPU per run / per job, µs" "pgflow ${pgc[*]}, PgQueuer ${pqc[*]}"
printf '%-44s %s\n' "ratio pgflow / PgQueuer (medians)" "$(awk -v a="$mpg" -v b="$mpq" 'BEGIN{printf "%.2f", a / b}')"
