# Shared helpers of the bench scripts (sourced, POSIX sh).

# start_registry DIR: starts Debian's docker-registry on a free 127.0.0.1 port with its storage and
# log under DIR; sets registry_pid and reg (host:port). Call stop_registry from the caller's trap.
start_registry() {
    _dir=$1
    _port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$_dir/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $_dir/registry-data}}
http: {addr: 127.0.0.1:$_port}
YAML
    /usr/bin/docker-registry serve "$_dir/registry.yml" >"$_dir/registry.log" 2>&1 &
    registry_pid=$!
    _i=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $_port), 0.2)" 2>/dev/null; do
        _i=$((_i + 1))
        if [ $_i -gt 100 ]; then
            echo "registry did not start" >&2
            cat "$_dir/registry.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    reg=127.0.0.1:$_port
}

# stop_registry: stops the registry start_registry started, if any.
stop_registry() {
    if [ -n "${registry_pid:-}" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=""
    fi
}

# cleanup_work: stops the registry and removes $work (for `trap cleanup_work EXIT INT TERM`).
cleanup_work() {
    stop_registry
    rm -rf "$work"
}
