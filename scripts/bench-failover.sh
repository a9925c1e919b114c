#!/usr/bin/env bash
# How long runs stall across a primary failover:   scripts/bench-failover.sh [ROUNDS=5]
#
# Runs the failover process test (Tests/PGFlowAgentTests/FailoverProcessTests.swift) ROUNDS times with
# release-built agents (PGFLOW_BIN_DIR): a primary and a synchronous streaming standby in /tmp, 3
# `pgflow-agent` processes reaching the primary through a TCP proxy, 300 command runs; the primary is
# stopped (immediate), after 1 s (a failover manager's detection time) the standby is promoted and the
# proxy switched to it. The test prints, and this script collects (medians):
#   outage        primary stopped -> proxy switched (the 1 s wait + pg_ctl promote)
#   stall         last run state written before the stop -> first one written after the switch
#   first state   proxy switched -> first run state written on the new primary (reconnect + claim)
#   every agent   proxy switched -> every agent has started a run again
# The test's assertions (every run Completed, no overlapping attempts, no lost log line, every agent's
# pool and listener reconnected) hold in every round, or the script stops.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
rounds=${1:-5}

ensure_system_packages
log "building the tests"
swift build --build-tests >/dev/null
release=$(release_binaries pgflow-agent)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "Failover benchmark, $(date -u '+%F %H:%M UTC'), $(nproc) cores, PostgreSQL $("$(pg_bindir)/postgres" --version | awk '{print $3}'), release pgflow-agent"
for r in $(seq 1 "$rounds"); do
  load=$(uptime | sed 's/.*average: //')
  PGFLOW_BIN_DIR="$release" swift test --skip-build --filter FailoverProcessTests >"$out/test.log" 2>&1 \
    || { grep -E '✘|Expectation|error' "$out/test.log" | head -20 >&2; die "round $r: the failover test failed (above)"; }
  line=$(grep 'failover figures:' "$out/test.log")
  echo "round $r (load before: $load): ${line#*failover figures: }"
  sed -E 's/.*outage ([0-9.]+) s.*stall ([0-9.]+) s.*first state ([0-9.]+) s.*started a run ([0-9.]+) s.*/\1 \2 \3 \4/' <<<"$line" >>"$out/figures"
done
echo
echo "Medians of $rounds rounds (load at the end: $(uptime | sed 's/.*average: //')):"
printf '  outage (stop -> switch)            %s s\n' "$(cut -d' ' -f1 "$out/figures" | median)"
printf '  stall (last state -> next state)   %s s\n' "$(cut -d' ' -f2 "$out/figures" | median)"
printf '  switch -> first state              %s s\n' "$(cut -d' ' -f3 "$out/figures" | median)"
printf '  switch -> every agent running      %s s\n' "$(cut -d' ' -f4 "$out/figures" | median)"
