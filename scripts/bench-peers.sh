#!/usr/bin/env bash
# pgflow against PgQueuer on one PostgreSQL:  scripts/bench-peers.sh [ROUNDS=3] [JOBS=20000]
#
# Each round drains JOBS no-op jobs twice, one after the other on the same cluster: PgQueuer 1.6 (2 worker
# processes, batch 100, scripts/peers/pgqueuer_drain.py, installed once in the virtualenv
# .pgflow/pgqueuer-venv from PyPI) and pgflow (`scripts/bench-agent.sh drain`: 2 agent processes,
# in-process no-op flows, every run's four states checked). The order alternates between rounds. Prints
# each round, the medians and the ratio pgflow / PgQueuer of the medians: the figure that counts.
#
# Both clocks run from the first job's start to the last job's end (pgflow: the first Pending state to the
# last Completed state; PgQueuer: the first job body's start to the last body's end, so PgQueuer's final
# status flush is not counted). PgQueuer keeps no history; pgflow keeps every state of every run.
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

pgqueuer_round() {  # prints jobs/s
  psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_peers WITH (FORCE)" -c "CREATE DATABASE pgflow_bench_peers" >/dev/null
  "$py" scripts/peers/pgqueuer_drain.py setup "$peers" "$jobs"
  psql "$peers" -XAtqc "CHECKPOINT" >/dev/null
  local out w1 w2
  out=$(mktemp)
  "$py" scripts/peers/pgqueuer_drain.py work "$peers" 100 >"$out.1" & w1=$!
  "$py" scripts/peers/pgqueuer_drain.py work "$peers" 100 >"$out.2" & w2=$!
  wait "$w1" "$w2"
  local left
  left=$("$py" scripts/peers/pgqueuer_drain.py left "$peers")
  [ "$left" = 0 ] || die "PgQueuer left $left jobs queued"
  cat "$out.1" "$out.2" | awk -v n="$jobs" '
    { if (first == "" || $1 < first) first = $1; if ($2 > last) last = $2; done += $3 }
    END { if (done != n) { print "PgQueuer ran " done " jobs, not " n > "/dev/stderr"; exit 1 }
          printf "%.0f\n", n / (last - first) }'
  rm -f "$out" "$out.1" "$out.2"
}

pgflow_round() {  # prints runs/s
  PGFLOW_BENCH_NO_BUILD=1 scripts/bench-agent.sh drain "$jobs" | awk '{print $1}'
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

pg=() pq=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    pg+=("$(pgflow_round)"); pq+=("$(pgqueuer_round)")
  else
    pq+=("$(pgqueuer_round)"); pg+=("$(pgflow_round)")
  fi
  log "round $r: pgflow ${pg[-1]} runs/s, PgQueuer ${pq[-1]} jobs/s"
done
psql "$admin" -XAtqc "DROP DATABASE IF EXISTS pgflow_bench_peers WITH (FORCE)" >/dev/null

mpg=$(printf '%s\n' "${pg[@]}" | median)
mpq=$(printf '%s\n' "${pq[@]}" | median)
echo
echo "Drain of $jobs no-op jobs, 2 worker processes, $(date -u '+%F %H:%M') UTC, $(nproc) cores, PostgreSQL $(psql "$admin" -XAtc 'SHOW server_version' | cut -d' ' -f1), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %s\n' "pgflow (every state recorded), runs/s" "${pg[*]}  median $mpg"
printf '%-44s %s\n' "PgQueuer $pgq_version (batch 100), jobs/s" "${pq[*]}  median $mpq"
printf '%-44s %s\n' "ratio pgflow / PgQueuer (medians)" "$(awk -v a="$mpg" -v b="$mpq" 'BEGIN{printf "%.2f", a / b}')"
