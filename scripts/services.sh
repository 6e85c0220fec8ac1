#!/usr/bin/env bash
# Installs and starts everything the integration tests need, idempotently:
# Debian packages, dockerd, redis on 127.0.0.1:6379, the two local registries
# (scripts/registry.sh), the test images (scripts/test-images.sh) and the base and Redis images of
# the compose deployment test (scripts/base-images.sh).
# Quiet on success: one status line per service. Safe to run any number of times.
#
# Usage: services.sh [--runtime | --python-only]
#   (none)         everything the tests need
#   --runtime      what `containerizer up` needs: packages and a running dockerd (up starts its own
#                  redis-server when none answers)
#   --python-only  just python3-venv, so that `make install` can create .venv
#
# Env: CONTAINERIZER_CI_STATE (default /var/tmp/containerizer-ci) holds logs, pid files,
#      registry storage, the cached base images; CONTAINERIZER_TEST_REGISTRY_USER / _PASSWORD
#      (see registry.sh).
set -euo pipefail

mode=all
case "${1:-}" in
    "") ;;
    --runtime) mode=runtime ;;
    --python-only) mode=python ;;
    *) echo "usage: $0 [--runtime | --python-only]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERIZER_CI_STATE=${CONTAINERIZER_CI_STATE:-/var/tmp/containerizer-ci}
state=$CONTAINERIZER_CI_STATE
dockerd_log=/var/log/containerizer-dockerd.log
# These scripts manage the machine's default engine, whatever the caller points docker at.
unset DOCKER_HOST DOCKER_CONTEXT
mkdir -p "$state"

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# One run at a time.
exec 9>"$state/services.lock"
flock -w 900 9 || die "waited 15 min for $state/services.lock"

# --- Debian packages --------------------------------------------------------------
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
if [[ $mode != python ]]; then
    # What `containerizer up` needs.
    need_cmd dockerd docker.io
    need_cmd redis-server redis-server
    need_cmd make make
fi
if [[ $mode == all ]]; then
    # What the tests need besides.
    need_cmd redis-cli redis-tools
    need_cmd docker-registry docker-registry
    need_cmd htpasswd apache2-utils
    need_cmd curl curl
    need_cmd docker-compose docker-compose
    # The second broker the tests run the lifecycle and fault suites on.
    need_cmd rabbitmq-server rabbitmq-server
    need_cmd debootstrap debootstrap
    # The rootfs of the test image needs the static busybox, not the dynamically linked one.
    pkg_installed busybox-static || missing+=(busybox-static)
fi
# `python3 -m venv --help` passes without python3-venv on Debian; creating a venv needs ensurepip.
{ python3 -m venv --help && python3 -c 'import ensurepip'; } >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
    apt_log="$state/apt.log"
    echo "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } \
        >"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; die "apt-get failed (log: $apt_log)"; }
else
    echo "packages: all present"
fi

[[ $mode == python ]] && exit 0

# --- dockerd ------------------------------------------------------------------------
# alive PID NAME: PID is a running (not zombie) process named NAME. A killed daemon can stay a
# zombie for a while here, and dockerd counts zombies as alive in its pid files.
alive() {
    local stat
    [[ $1 =~ ^[0-9]+$ ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat == "$1 ($2) "* && ${stat#*) } != Z* ]]
}
if docker info >/dev/null 2>&1; then
    echo "dockerd: already running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
else
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if alive "$pid" dockerd; then
        how="was starting, pid $pid"
    else
        # Stale pid files (a killed dockerd or its containerd) make the new dockerd refuse to
        # start, or wait 60 s for a containerd that is gone.
        rm -f /var/run/docker.pid
        containerd_pid_file=/var/run/docker/containerd/containerd.pid
        alive "$(cat "$containerd_pid_file" 2>/dev/null || true)" containerd || rm -f "$containerd_pid_file"
        detached dockerd </dev/null >>"$dockerd_log" 2>&1
        how="started, log $dockerd_log"
    fi
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { tail -n 30 "$dockerd_log" >&2; die "dockerd did not answer within 60 s"; }
    echo "dockerd: up ($how)"
fi

[[ $mode == runtime ]] && exit 0

# --- redis ----------------------------------------------------------------------------
redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }
if redis_ping; then
    echo "redis: already running on 127.0.0.1:6379"
else
    detached redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
        --dir "$state" --logfile "$state/redis.log" --pidfile "$state/redis.pid" \
        </dev/null >/dev/null
    # redis forks into the background itself: its first process exits once it has.
    wait $! || die "redis-server failed to start (log: $state/redis.log)"
    for _ in $(seq 50); do redis_ping && break; sleep 0.2; done
    redis_ping || { tail -n 20 "$state/redis.log" >&2; die "redis did not answer on 127.0.0.1:6379"; }
    echo "redis: started on 127.0.0.1:6379 (log $state/redis.log)"
fi

# --- rabbitmq (the second broker of the tests) --------------------------------------------
# On loopback only, the Erlang distribution and epmd included; guest/guest (loopback only too).
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5672 ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
rabbit_ping() { timeout 10 rabbitmqctl -q status >/dev/null 2>&1; }
if rabbit_ping; then
    echo "rabbitmq: already running on 127.0.0.1:5672"
else
    detached rabbitmq-server </dev/null >>"$state/rabbitmq.log" 2>&1
    for _ in $(seq 90); do rabbit_ping && break; sleep 1; done
    rabbit_ping || { tail -n 30 "$state/rabbitmq.log" >&2; die "rabbitmq did not answer within 90 s"; }
    echo "rabbitmq: started on 127.0.0.1:5672 (log $state/rabbitmq.log)"
fi

"$here/registry.sh"
"$here/test-images.sh"
"$here/base-images.sh"
