#!/usr/bin/env bash
# Chaos drain: scripts/chaos.sh [N]   (default 200; a release check runs 2000)
#
# Drains N runs of a command that starts a child process, with 3 agents and a scheduler running its
# reaper, while agents are killed (-9, then restarted), frozen (SIGSTOP for 1 to 15 s, then SIGCONT) and
# PostgreSQL is restarted. Each attempt of each run appends `start`/`end` records with its run id,
# attempt and nanosecond timestamps to a trace file (its TERM trap writes `end` when it is stopped), and
# prints three log lines (a SIGPIPE, when its agent died before reading them, also writes `end`). Prints:
#   runs lost            runs not Completed when the drain ends (or after its deadline)
#   attempts overlapped  pairs of attempts of one run whose [start, end] intersect (no end: still running)
#   leaked slots         concurrency slots held once every run is finished
#   log lines lost       lines of completed attempts missing from pgflow.logs (3 per completed run)
# Settings: agents --heartbeat 0.5 --fence-timeout 3 --kill-grace 2, scheduler --heartbeat-timeout 12.
# CHAOS_PUSH=1: runs pushed to idle agents under the same chaos — the deployment has no concurrency
# limit (a limit that applies to a run keeps it from being pushed; with CHAOS_OTHER_LIMIT=1 a limit on
# another deployment and one on an unused tag are active, so pushes and claims take 0020's rules for
# limits elsewhere) and the N runs are enqueued one at a time by run_deployment, ≈ 25 a
# second (each with an idempotency key, retried across PostgreSQL restarts), so agents are mostly idle
# and take most runs as pushes; also prints how many runs were pushed.
# Uses the private cluster of scripts/db.sh (database pgflow_chaos, recreated) and debug binaries.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT" || exit 1

N=${1:-200}
DEADLINE=${CHAOS_DEADLINE:-1800}
swift build >/dev/null 2>&1 || die "build failed (run swift build)"
BIN=$(swift build --show-bin-path)
PGFLOW_BIN=$BIN scripts/db.sh up >/dev/null 2>&1 || die "the database did not start"
admin=$(tail -n 1 "$PGFLOW_STATE/admin-url")
psql "$admin" -Xqc "DROP DATABASE IF EXISTS pgflow_chaos WITH (FORCE)" -c "CREATE DATABASE pgflow_chaos" >/dev/null
URL=$(url_with_database "$admin" pgflow_chaos)
PGFLOW_BIN=$BIN scripts/apply-schema.sh "$URL" >/dev/null 2>&1 || die "schema not applied"
work=$(mktemp -d /tmp/pgflow-chaos.XXXXXX)
trace=$work/trace
touch "$trace"

command="sh -c 'a=\"\$PGFLOW_FLOW_RUN_ID \$PGFLOW_RUN_COUNT\"; trap \"echo end \$a \\\$(date +%s%N) >> $trace; exit 143\" TERM PIPE HUP INT; echo start \$a \$(date +%s%N) >> $trace; echo line 1 \$a; sleep 0.\$((\$\$ % 5 + 1)) & wait; echo line 2 \$a; echo line 3 \$a; echo end \$a \$(date +%s%N) >> $trace'"
PUSH=${CHAOS_PUSH:-0}
if [ "$PUSH" = 1 ]; then
  psql "$URL" -Xq -v ON_ERROR_STOP=1 -v cmd="$command" >/dev/null <<'SQL' || die "could not create the deployment"
SELECT pgflow.create_deployment('chaos', 'child', :'cmd', p_retries => 20);
SQL
  if [ "${CHAOS_OTHER_LIMIT:-0}" = 1 ]; then
    psql "$URL" -Xq -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || die "could not create the other limits"
SELECT pgflow.create_deployment('chaos', 'other', 'true', p_concurrency_limit => 2);
SELECT pgflow.create_concurrency_limit('tag:unused', 3);
SQL
  fi
else
  psql "$URL" -Xq -v cmd="$command" >/dev/null <<'SQL'
SELECT pgflow.create_deployment('chaos', 'child', :'cmd', p_retries => 20, p_concurrency_limit => 20);
SQL
  psql "$URL" -XAtqc "SELECT count(*) FROM pgflow.run_deployments('chaos/child', array_fill('{}'::jsonb, ARRAY[$N]))" >/dev/null
fi

agent_flags=(--queue default --limit 8 --heartbeat 0.5 --fence-timeout 3 --kill-grace 2 --heartbeat-timeout 12 --reconcile-after 3 --poll 0.5)
declare -a agents
start_agent() { PGFLOW_DATABASE_URL=$URL PGFLOW_LOG_LEVEL=warning "$BIN/pgflow-agent" "${agent_flags[@]}" --name "chaos-$1-$RANDOM" >>"$work/agent-$1.log" 2>&1 & agents[$1]=$!; }
for i in 0 1 2; do start_agent $i; done
PGFLOW_DATABASE_URL=$URL "$BIN/pgflow-scheduler" --heartbeat-timeout 12 >>"$work/scheduler.log" 2>&1 &
scheduler=$!
cleanup() {
  for p in "${agents[@]}" $scheduler; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

trickle=
if [ "$PUSH" = 1 ]; then
  (for i in $(seq 1 "$N"); do
     tries=0
     until psql "$URL" -XAtqc "SELECT pgflow.run_deployment('chaos/child', p_idempotency_key => 'chaos-$i')" >/dev/null 2>>"$work/trickle.log"; do
       tries=$((tries + 1)); [ $tries -lt 150 ] || { echo "chaos: run $i could not be enqueued in 30 s (see $work/trickle.log)" >&2; exit 1; }
       sleep 0.2
     done
     sleep 0.04
   done) &
  trickle=$!
fi
enqueued() { [ -z "$trickle" ] || ! kill -0 "$trickle" 2>/dev/null; }

kills=0 freezes=0 restarts=0
begin=$(date +%s)
last_restart=$begin
unfinished() { psql "$URL" -XAtc "SELECT count(*) FROM pgflow.flow_runs WHERE NOT pgflow.is_terminal(state_type)" 2>/dev/null || echo 1; }
while { ! enqueued || [ "$(unfinished)" != 0 ]; } && [ $(($(date +%s) - begin)) -lt "$DEADLINE" ]; do
  sleep $((RANDOM % 3 + 2))
  i=$((RANDOM % 3))
  case $((RANDOM % 3)) in
    0) kill -9 "${agents[$i]}" 2>/dev/null; wait "${agents[$i]}" 2>/dev/null; kills=$((kills + 1)); sleep 1; start_agent $i ;;
    1) kill -STOP "${agents[$i]}"; freezes=$((freezes + 1)); (sleep $((RANDOM % 15 + 1)); kill -CONT "${agents[$i]}") & ;;
    2) if [ $(($(date +%s) - last_restart)) -ge 20 ]; then
         PGFLOW_BIN=$BIN scripts/db.sh restart >/dev/null 2>&1; restarts=$((restarts + 1)); last_restart=$(date +%s)
       fi ;;
  esac
done
for p in "${agents[@]}"; do kill -CONT "$p" 2>/dev/null; done
elapsed=$(($(date +%s) - begin))

[ -n "$trickle" ] && kill "$trickle" 2>/dev/null
lost=$(psql "$URL" -XAtc "SELECT $N - count(*) FILTER (WHERE state_type = 'COMPLETED') FROM pgflow.flow_runs")
pushed=$(psql "$URL" -XAtc "SELECT count(DISTINCT flow_run_id) FROM pgflow.flow_run_states WHERE message LIKE 'pushed to an idle agent%'")
slots=$(psql "$URL" -XAtc "SELECT count(*) FROM pgflow.concurrency_slots")
# Overlaps: intervals per attempt record (start line order), end = the matching end line, else infinity.
overlaps=$(awk '
  $1 == "start" { k = $2 ":" $3; n[k]++; id = k "#" n[k]; s[id] = $4; runs[$2] = runs[$2] " " id; open[k] = open[k] " " id }
  $1 == "end"   { k = $2 ":" $3; split(open[k], o, " "); for (j in o) if (o[j] != "" && !(o[j] in e)) { e[o[j]] = $4; break } }
  END {
    c = 0
    for (r in runs) {
      m = split(runs[r], ids, " ")
      for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) {
        x = ids[a]; y = ids[b]
        ex = (x in e) ? e[x] : 9e30; ey = (y in e) ? e[y] : 9e30
        if (s[x] <= ey && s[y] <= ex) c++
      }
    }
    print c
  }' "$trace")
expected=$(psql "$URL" -XAtc "SELECT 3 * count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'")
found=$(psql "$URL" -XAtc "
  SELECT count(DISTINCT (l.message)) FROM pgflow.flow_runs r JOIN pgflow.logs l ON l.flow_run_id = r.id
   WHERE r.state_type = 'COMPLETED' AND l.name = 'stdout'
     AND l.message IN ('line 1 ' || r.id || ' ' || r.run_count, 'line 2 ' || r.id || ' ' || r.run_count, 'line 3 ' || r.id || ' ' || r.run_count)")
attempts=$(grep -c '^start' "$trace")
crashed=$(psql "$URL" -XAtc "SELECT count(*) FROM pgflow.flow_run_states WHERE state_name = 'Crashed' OR message LIKE '%Crashed%'")

echo "chaos: $N runs, 3 agents, ${elapsed}s; $kills agent kills, $freezes freezes, $restarts PostgreSQL restarts; $attempts attempts, $crashed crash states"
echo "runs pushed:          $pushed (of $N)"
echo "runs lost:            $lost"
echo "attempts overlapped:  $overlaps"
echo "leaked slots:         $slots"
echo "log lines lost:       $((expected - found)) (of $expected)"
echo "(trace and logs in $work)"
[ "$lost" = 0 ] && [ "$overlaps" = 0 ] && [ "$slots" = 0 ] && [ "$expected" = "$found" ]
