#!/usr/bin/env bash
# A throwaway ZooKeeper (Debian's zookeeper package, Java) for the ClickHouse cluster tests; 127.0.0.1 only.
#   scripts/zookeeper.sh start DIR PORT   config and data in DIR, start, wait until it serves requests; prints the PID
#   scripts/zookeeper.sh stop DIR         stop the server started in DIR (by its PID) and wait until it is gone
set -euo pipefail
. "$(dirname "$0")/lib/server.sh"
action=${1:?usage: zookeeper.sh start DIR PORT | stop DIR}
dir=${2:?directory}
jar=/usr/share/java/zookeeper.jar
case "$action" in
start)
    port=${3:?port}
    [ -f "$jar" ] || { echo "ZooKeeper not found ($jar; scripts/system-deps.sh installs zookeeper)" >&2; exit 1; }
    dir=$(realpath -m "$dir")
    mkdir -p "$dir/data"
    printf '%s\n' "tickTime=2000" "dataDir=$dir/data" "clientPort=$port" "clientPortAddress=127.0.0.1" \
        "admin.enableServer=false" "4lw.commands.whitelist=srvr" >"$dir/zoo.cfg"
    java -Xmx256m -cp "/etc/zookeeper/conf:$jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
        >"$dir/zookeeper.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/zookeeper.pid"
    # listening is not serving: a client connecting before "Mode:" shows gets its handshake dropped (and
    # ClickHouse 18.16's distributed DDL thread then crashed the server). Each probe waits 2 s at most for the
    # answer: a server still starting can take the connection and never answer (a CI run hung here for 90 s).
    serves() { (exec 3<>"/dev/tcp/127.0.0.1/$port" && echo srvr >&3 && timeout 2 grep -q "^Mode:" <&3) 2>/dev/null; }
    await_server "$pid" 30 "ZooKeeper on 127.0.0.1:$port" serves "$dir/zookeeper.log"
    echo "$pid"
    ;;
stop)
    stop_server "$dir/zookeeper.pid"
    ;;
*)
    echo "unknown action $action" >&2
    exit 2
    ;;
esac
