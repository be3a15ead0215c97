# Helpers shared by the shell system tests. Source it; it defines
# functions only.

# A TCP port on the loopback that nothing listens on right now.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_for SECONDS COMMAND...: run COMMAND every 50 ms until it succeeds;
# fail (status 1) when SECONDS pass first.
wait_for() {
    local limit=$(( $1 * 20 )) i=0
    shift
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -ge "$limit" ] && return 1
        sleep 0.05
    done
    return 0
}

# configstreamd's process table under $TMP/run, and one row's pid or state
# by role and index: pid_of configstream-frontend 1.
procs() { cat "$TMP/run/configstream/configstreamd.procs"; }
pid_of() {
    procs | awk -v r="$1" -v i="$2" '$1 == r && $2 == i { print $3 }'
}
state_of() {
    procs | awk -v r="$1" -v i="$2" '$1 == r && $2 == i { print $4 }'
}
