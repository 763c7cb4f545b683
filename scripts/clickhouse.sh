#!/usr/bin/env bash
# A throwaway ClickHouse server for tests and benchmarks (Debian's clickhouse-server; 127.0.0.1 only).
#   scripts/clickhouse.sh start DIR TCP_PORT HTTP_PORT [ZOOKEEPER_PORT]
#                                                        private config in DIR, start, wait until it answers;
#                                                        prints the server's PID, then the clickhouse:// URL;
#                                                        with a ZooKeeper port: also a one-node cluster named
#                                                        "flowscope" (shard 01, replica r1) for replicated tables
#                                                        and ON CLUSTER statements
#   scripts/clickhouse.sh stop DIR [SIGNAL]              stop the server started in DIR (by its PID, with SIGTERM
#                                                        or SIGNAL, e.g. KILL for a crash) and wait until it is gone
# Every path (data, tmp, logs, format schemas) is under DIR; the users come from /etc/clickhouse-server/users.xml.
set -euo pipefail
. "$(dirname "$0")/lib/server.sh"
action=${1:?usage: clickhouse.sh start DIR TCP_PORT HTTP_PORT | stop DIR}
dir=${2:?directory}
server=$(command -v clickhouse-server || echo /usr/bin/clickhouse-server)
[ -x "$server" ] || { echo "clickhouse-server not found (scripts/system-deps.sh installs it)" >&2; exit 1; }
case "$action" in
start)
    tcp=${3:?tcp port}
    http=${4:?http port}
    zookeeper=${5:-}
    dir=$(realpath -m "$dir")
    cluster=""
    if [ -n "$zookeeper" ]; then
        cluster="<zookeeper><node><host>127.0.0.1</host><port>$zookeeper</port></node></zookeeper>
    <remote_servers><flowscope><shard><internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>$tcp</port></replica></shard></flowscope></remote_servers>
    <macros><shard>01</shard><replica>r1</replica></macros>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>"
    fi
    mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/format_schemas" "$dir/user_files"
    cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><console>0</console></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>/etc/clickhouse-server/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>67108864</mark_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <timezone>UTC</timezone>
    $cluster
</yandex>
XML
    "$server" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/server.pid"
    # Ready means a query answers (over HTTP: bash has no client for the native port). An open TCP port was not
    # enough: a client connecting while the server still started up got "Unexpected EOF" (a CI run's cluster test).
    # Each probe waits 2 s at most for the answer (a server still starting may take the connection and not answer).
    answers() {
        local reply
        reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$http" &&
            printf 'GET /?query=SELECT%%201 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && timeout 2 cat <&3) 2>/dev/null) || return 1
        [ "${reply##*$'\n'}" = "1" ] && (exec 3<>"/dev/tcp/127.0.0.1/$tcp") 2>/dev/null
    }
    await_server "$pid" 30 "clickhouse-server on 127.0.0.1:$tcp" answers "$dir/log/stdout.log" "$dir/log/error.log"
    echo "$pid"
    echo "clickhouse://127.0.0.1:$tcp/default"
    ;;
stop)
    stop_server "$dir/server.pid" "${3:-TERM}"
    ;;
*)
    echo "unknown action $action" >&2
    exit 2
    ;;
esac
