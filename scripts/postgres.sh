#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests on machines where none is running (trust auth, 127.0.0.1 only).
#   scripts/postgres.sh start DIR PORT   initdb in DIR (if new) and start; prints the connection URL
#   scripts/postgres.sh stop DIR         fast shutdown
# initdb refuses to run as root, so as root the server runs as the "postgres" system user (DIR and its
# parents must then be reachable by that user, e.g. a fresh directory under /tmp made with mode 0755).
set -euo pipefail
action=${1:?usage: postgres.sh start DIR PORT | stop DIR}
dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$action" in
start)
    port=${3:?port}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1
    fi
    as_owner timeout 60 "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    as_owner timeout 60 "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    ;;
*)
    echo "unknown action $action" >&2
    exit 2
    ;;
esac
