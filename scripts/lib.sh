# Shared helpers for pgflow's scripts. Source it; do not run it.
# Knows where the repository is, how to install the system packages pgflow needs, and how to run a
# command as the PostgreSQL server's owner (PostgreSQL refuses to run as root).

PGFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGFLOW_STATE="$PGFLOW_ROOT/.pgflow"

log() { printf '[pgflow] %s\n' "$*" >&2; }
die() { printf '[pgflow] error: %s\n' "$*" >&2; exit 1; }

# Installs libpq-dev, pkg-config, the PostgreSQL server and pgTAP (PGFLOW_WITH_PGTAP=1) and PgBouncer
# (PGFLOW_WITH_PGBOUNCER=1) with apt when any is missing.
ensure_system_packages() {
  local missing=()
  dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  dpkg -s postgresql >/dev/null 2>&1 || missing+=(postgresql)
  command -v pg_config >/dev/null 2>&1 || missing+=(postgresql-server-dev-all)
  if [ "${PGFLOW_WITH_PGTAP:-0}" = 1 ]; then
    dpkg -s postgresql-15-pgtap >/dev/null 2>&1 || [ -n "$(ls /usr/share/postgresql/*/extension/pgtap.control 2>/dev/null)" ] \
      || missing+=("postgresql-$(pg_server_major)-pgtap")
    command -v pg_prove >/dev/null 2>&1 || missing+=(libtap-parser-sourcehandler-pgtap-perl)
  fi
  if [ "${PGFLOW_WITH_PGBOUNCER:-0}" = 1 ]; then
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here: install them by hand"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing ${missing[*]} with apt-get (once)"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# The major version of the installed PostgreSQL server (15 here).
pg_server_major() {
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
  echo "${v:-15}"
}

# The folder of the server binaries (initdb, pg_ctl, postgres).
pg_bindir() {
  local d="/usr/lib/postgresql/$(pg_server_major)/bin"
  if [ -x "$d/pg_ctl" ]; then echo "$d"; else pg_config --bindir; fi
}

# Runs a command as the owner of the local cluster: `postgres` when we are root, else ourselves.
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The same postgresql:// URL with another database name.
url_with_database() {
  local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
  [[ $1 =~ $re ]] || die "cannot change the database of '$1': use a postgresql:// URL"
  echo "${BASH_REMATCH[1]}/$2${BASH_REMATCH[4]}"
}

# Prints `export PGHOST=… PGPORT=… PGUSER=… PGPASSWORD=… PGDATABASE=…` for a postgresql:// URL (for
# tools such as pg_prove that take no URL).
url_to_pg_env() {
  python3 - "$1" <<'PY'
import sys, shlex, urllib.parse as u
p = u.urlsplit(sys.argv[1]); q = {k: v[-1] for k, v in u.parse_qs(p.query).items()}
env = {"PGHOST": q.get("host", p.hostname or ""), "PGPORT": q.get("port", str(p.port or "")),
       "PGUSER": q.get("user", u.unquote(p.username or "")), "PGPASSWORD": q.get("password", u.unquote(p.password or "")),
       "PGDATABASE": q.get("dbname", p.path.lstrip("/"))}
print(" ".join("export %s=%s;" % (k, shlex.quote(v)) for k, v in env.items() if v))
PY
}

# Preloads pg_stat_statements (a restart of the private cluster, once; a server of PGFLOW_DATABASE_URL
# must have it preloaded already) and creates the extension. $1 = the admin URL.
ensure_pg_stat_statements() {
  if ! psql "$1" -XAtc "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
    [ -z "${PGFLOW_DATABASE_URL:-}" ] || die "add pg_stat_statements to shared_preload_libraries of your server and restart it"
    log "preloading pg_stat_statements in the private cluster (a restart)"
    psql "$1" -XAtqc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    "$PGFLOW_ROOT/scripts/db.sh" restart >/dev/null
  fi
  psql "$1" -XAtqc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
}

# Raises max_connections of the private cluster to at least $2 (a restart; never lowers it). $1 = the
# admin URL. A server of PGFLOW_DATABASE_URL must be configured by hand.
ensure_max_connections() {
  local now
  now=$(psql "$1" -XAtc "SHOW max_connections")
  [ "$now" -ge "$2" ] && return 0
  [ -z "${PGFLOW_DATABASE_URL:-}" ] || die "max_connections is $now, $2 needed: raise it on your server and restart it"
  log "raising max_connections of the private cluster from $now to $2 (a restart)"
  psql "$1" -XAtqc "ALTER SYSTEM SET max_connections = $2"
  "$PGFLOW_ROOT/scripts/db.sh" restart >/dev/null
}

# The same postgresql:// URL with one more query parameter: url_with_param URL KEY VALUE.
url_with_param() {
  case $1 in *\?*) echo "$1&$2=$3" ;; *) echo "$1?$2=$3" ;; esac
}

# For benchmarks: builds the release products named (unless PGFLOW_BENCH_NO_BUILD is set, to measure
# the binaries already built) and prints the folder of the release binaries.
release_binaries() {
  if [ -z "${PGFLOW_BENCH_NO_BUILD:-}" ]; then
    log "building release binaries ($*)"
    local product
    for product in "$@"; do swift build -c release --product "$product" >/dev/null || die "swift build of $product failed"; done
  fi
  swift build -c release --show-bin-path
}

# CPU ticks (getconf CLK_TCK per second) of the private cluster's PostgreSQL: the postmaster and its
# children, exited ones included (the postmaster's cutime/cstime). For benchmarks on a shared machine.
postgres_cpu_ticks() {
  local postmaster sum=0 p t
  postmaster=$(as_pg_owner head -1 "$(cat "$PGFLOW_STATE/cluster-dir")/data/postmaster.pid")
  for p in "$postmaster" $(pgrep -P "$postmaster"); do
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}

# ab_schemas DIR [A.sql] [B.sql]: the two schema files an A/B benchmark compares, written to DIR/a.sql and
# DIR/b.sql; A defaults to the schema of the commit before HEAD, B to sql/schema.sql.
ab_schemas() {
  if [ -n "${2:-}" ]; then cat "$2" >"$1/a.sql"; else git -C "$PGFLOW_ROOT" show HEAD~1:sql/schema.sql >"$1/a.sql"; fi
  if [ -n "${3:-}" ]; then cat "$3" >"$1/b.sql"; else cat "$PGFLOW_ROOT/sql/schema.sql" >"$1/b.sql"; fi
}

# The median of the numbers on standard input, one per line (the mean of the middle two for an even count).
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
