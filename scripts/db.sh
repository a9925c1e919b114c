#!/usr/bin/env bash
# PostgreSQL on demand for pgflow.
#
#   scripts/db.sh up       install what is missing, start a private cluster (unless PGFLOW_DATABASE_URL is set),
#                          create the database, apply sql/schema.sql, print the URL
#   scripts/db.sh url      print the URL of the database (starting nothing)
#   scripts/db.sh status   say whether the private cluster runs
#   scripts/db.sh stop     stop the private cluster
#   scripts/db.sh restart  restart the private cluster (fast shutdown), keeping its data
#
# The private cluster lives in .pgflow/postgres (or in /tmp when the `postgres` user cannot reach the
# repository), listens on a unix socket in that folder and on 127.0.0.1 at a free port from 54329 up,
# and is started as `postgres` when we are root. Running `up` twice is fine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

url_file="$PGFLOW_STATE/database-url"
dir_file="$PGFLOW_STATE/cluster-dir"

cluster_dir() {
  if [ -f "$dir_file" ]; then cat "$dir_file"; return; fi
  mkdir -p "$PGFLOW_STATE"
  local dir="$PGFLOW_STATE/cluster"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  if ! as_pg_owner test -w "$dir" 2>/dev/null; then
    rmdir "$dir"
    dir="/tmp/pgflow-$(printf '%s' "$PGFLOW_ROOT" | md5sum | cut -c1-10)"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
  fi
  echo "$dir" >"$dir_file"
  echo "$dir"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p=${PGFLOW_PG_PORT:-54329}
  while port_in_use "$p"; do p=$((p + 1)); done
  echo "$p"
}

cluster_port() { sed -n "s/^port = \([0-9]*\).*/\1/p" "$1/data/postgresql.conf" | tail -n 1; }

running() {
  local dir=$1
  [ -f "$dir/data/PG_VERSION" ] && as_pg_owner "$(pg_bindir)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

start_cluster() {
  local dir bin port
  dir=$(cluster_dir)
  bin=$(pg_bindir)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "creating a private PostgreSQL cluster in $dir"
    as_pg_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed (log above)"; }
    port=$(free_port)
    as_pg_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
# pgflow's private cluster
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 256MB
timezone = 'UTC'
log_timezone = 'UTC'
autovacuum_naptime = 5s
logging_collector = off
EOF
  fi
  if running "$dir"; then
    return 0
  fi
  port=$(cluster_port "$dir")
  if port_in_use "$port"; then
    port=$(free_port)
    as_pg_owner sed -i "s/^port = .*/port = $port/" "$dir/data/postgresql.conf"
  fi
  log "starting PostgreSQL on port $port (socket in $dir)"
  as_pg_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL did not start (server log above)"; }
}

local_url() {
  local dir
  dir=$(cluster_dir)
  echo "postgresql:///${PGFLOW_DB_NAME:-pgflow}?host=$dir&port=$(cluster_port "$dir")&user=postgres"
}

admin_url() {
  local dir
  dir=$(cluster_dir)
  echo "postgresql:///postgres?host=$dir&port=$(cluster_port "$dir")&user=postgres"
}

cmd_up() {
  ensure_system_packages
  local url
  if [ -n "${PGFLOW_DATABASE_URL:-}" ]; then
    url=$PGFLOW_DATABASE_URL
    log "using PGFLOW_DATABASE_URL (no local cluster started)"
  else
    start_cluster
    url=$(local_url)
    local db=${PGFLOW_DB_NAME:-pgflow}
    if [ "$(psql "$(admin_url)" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      psql "$(admin_url)" -Xqc "CREATE DATABASE \"$db\"" >/dev/null
    fi
  fi
  mkdir -p "$PGFLOW_STATE"
  echo "$url" >"$url_file"
  if [ -n "${PGFLOW_DATABASE_URL:-}" ]; then echo "$url" >"$PGFLOW_STATE/admin-url"; else admin_url >"$PGFLOW_STATE/admin-url"; fi
  if [ "${PGFLOW_SKIP_SCHEMA:-0}" != 1 ]; then
    "$PGFLOW_ROOT/scripts/apply-schema.sh" "$url"
  fi
  echo "$url"
}

case "${1:-up}" in
  up) cmd_up ;;
  url)
    if [ -n "${PGFLOW_DATABASE_URL:-}" ]; then echo "$PGFLOW_DATABASE_URL"; else local_url; fi ;;
  admin-url) admin_url ;;
  status)
    dir=$(cluster_dir)
    if running "$dir"; then echo "running: $(local_url)"; else echo "stopped ($dir)"; exit 3; fi ;;
  stop)
    dir=$(cluster_dir)
    if running "$dir"; then as_pg_owner "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; log "stopped"; else log "not running"; fi ;;
  restart)
    dir=$(cluster_dir)
    as_pg_owner "$(pg_bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w restart >/dev/null; log "restarted" ;;
  *) die "unknown command '$1': use up, url, status, stop or restart" ;;
esac
