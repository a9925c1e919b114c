#!/usr/bin/env bash
# Brings a database up to the current pgflow schema:  scripts/apply-schema.sh [DATABASE_URL]
#
# Runs `pgflow db upgrade`, the one migrator: a database without pgflow gets every migration, one with
# an older pgflow the migrations it lacks, in one transaction under an advisory lock (concurrent upgrades
# are safe; a failing migration changes nothing). Uses $PGFLOW_BIN/pgflow when PGFLOW_BIN names a folder
# of built binaries, else builds the debug CLI (incremental: seconds once built). Without a Swift
# toolchain, `psql -f sql/schema.sql` creates the schema in a database without pgflow.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PGFLOW_ROOT"

url=${1:-${PGFLOW_DATABASE_URL:-}}
[ -n "$url" ] || die "no database: pass a URL or set PGFLOW_DATABASE_URL (scripts/db.sh up prints one)"

if [ -n "${PGFLOW_BIN:-}" ]; then
  pgflow="$PGFLOW_BIN/pgflow"
else
  swift build --product pgflow >/dev/null 2>&1 || { swift build --product pgflow; die "the pgflow CLI did not build (errors above)"; }
  pgflow="$(swift build --show-bin-path)/pgflow"
fi
[ -x "$pgflow" ] || die "no pgflow binary at $pgflow"
"$pgflow" db upgrade --database-url "$url" >/dev/null || die "applying the schema failed (error above); nothing was changed"
log "schema is current ($(psql "$url" -XAtc 'SELECT max(version) FROM pgflow.schema_migrations') migrations)"
