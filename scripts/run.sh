#!/usr/bin/env bash
# Sets up and runs pgflow locally:   scripts/run.sh        (scripts/run.sh stop  stops it all)
#
# 1. installs what is missing (libpq-dev, pkg-config, postgresql) with apt;
# 2. starts a private PostgreSQL in .pgflow/ unless PGFLOW_DATABASE_URL names one, applies sql/schema.sql;
# 3. builds the pgflow executables (release);
# 4. starts whatever of pgflow's long-running processes exist in this build, logs in .pgflow/logs/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"
logs="$PGFLOW_STATE/logs"
pids="$PGFLOW_STATE/pids"

if [ "${1:-}" = stop ]; then
  if [ -f "$pids" ]; then
    while read -r pid name; do kill "$pid" 2>/dev/null && log "stopped $name ($pid)"; done <"$pids"
    rm -f "$pids"
  fi
  scripts/db.sh stop
  exit 0
fi

ensure_system_packages
url=$(scripts/db.sh up)
export PGFLOW_DATABASE_URL="$url"
log "building pgflow (release; a first build takes a few minutes)"
swift build -c release --product pgflow >/dev/null
bin=$(swift build -c release --show-bin-path)
mkdir -p "$logs"

"$bin/pgflow" db status
cat <<EOF

pgflow is set up. Database: $url
  psql "$url" -c 'SELECT * FROM pgflow.schema_migrations'
Agents, scheduler and example flows are not part of this build yet (issues 4-6 add them); this command
will start them once they exist.
EOF
