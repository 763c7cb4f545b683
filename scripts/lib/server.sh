# Shared by the scripts that run throwaway servers for tests and benchmarks (sourced, not run).

# await_server PID SECONDS WHAT CHECK LOG...: run CHECK (a shell function) every 0.1 s until it succeeds;
# exit 1 with the tail of the LOGs if PID dies first, or after SECONDS (stopping PID).
await_server() {
    local pid=$1 seconds=$2 what=$3 check=$4
    shift 4
    for _ in $(seq 1 $((seconds * 10))); do
        "$check" && return 0
        kill -0 "$pid" 2>/dev/null || { tail -5 "$@" >&2 || true; exit 1; }
        sleep 0.1
    done
    echo "$what did not answer within $seconds s" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
}

# stop_server PIDFILE [SIGNAL]: send SIGNAL (TERM) to the PID in PIDFILE and wait up to 30 s for it to be
# gone, then SIGKILL it; nothing to do when PIDFILE or the process is missing.
stop_server() {
    [ -f "$1" ] || return 0
    local pid
    pid=$(cat "$1")
    kill -s "${2:-TERM}" "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}
