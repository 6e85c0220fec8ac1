#!/usr/bin/env bash
# Starts two local image registries (Debian's docker-registry = registry v2), plain HTTP on loopback:
#   registry-open  127.0.0.1:5000  no auth
#   registry-auth  127.0.0.1:5001  htpasswd (bcrypt) user/password below
# A registry whose port already answers as expected is left alone. dockerd treats 127.0.0.0/8 as an
# insecure registry by default, so it pushes and pulls over plain HTTP without configuration.
#
# Env: CONTAINERIZER_CI_STATE                (default /var/tmp/containerizer-ci)
#      CONTAINERIZER_TEST_REGISTRY_USER      (default containerizer)
#      CONTAINERIZER_TEST_REGISTRY_PASSWORD  (default s3cret-test-pass)
# Files, per registry NAME: $STATE/NAME/{config.yml,data/,pid[,htpasswd]},
#   $STATE/NAME.log      HTTP access log, one Apache combined-format line per request (stdout)
#   $STATE/NAME-app.log  the registry's own log (logrus, stderr)
set -euo pipefail

state=${CONTAINERIZER_CI_STATE:-/var/tmp/containerizer-ci}
user=${CONTAINERIZER_TEST_REGISTRY_USER:-containerizer}
password=${CONTAINERIZER_TEST_REGISTRY_PASSWORD:-s3cret-test-pass}
mkdir -p "$state"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# One run at a time.
exec 8>"$state/registry.lock"
flock -w 900 8 || die "waited 15 min for $state/registry.lock"

# Prints the HTTP status of a GET, 000 when nothing answers.
http_status() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" || true; }

write_config() {
    local name=$1 port=$2 auth=$3 dir=$state/$1
    mkdir -p "$dir/data"
    {
        cat <<YAML
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
  fields:
    service: $name
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: containerizer-ci-$name
  headers:
    X-Content-Type-Options: [nosniff]
YAML
        if ((auth)); then
            cat <<YAML
auth:
  htpasswd:
    realm: containerizer-test
    path: $dir/htpasswd
YAML
        fi
    } >"$dir/config.yml"
    if ((auth)); then
        htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
    fi
}

our_pid() {  # the pid from NAME/pid when it is still a docker-registry process
    local pid
    pid=$(cat "$state/$1/pid" 2>/dev/null || true)
    # /proc/PID/stat is "PID (COMM) STATE ...": a zombie (state Z) is not ours any more.
    [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/stat" 2>/dev/null || true) == "$pid (docker-registry) "[!Z]* ]] && echo "$pid"
    return 0
}

ensure_registry() {
    local name=$1 port=$2 auth=$3 dir=$state/$1 url=http://127.0.0.1:$2/v2/ expect=200 status pid
    ((auth)) && expect=401
    status=$(http_status "$url")
    if [[ $status == "$expect" ]]; then
        if ((auth)) && [[ $(http_status -u "$user:$password" "$url") != 200 ]]; then
            # Up, but started with other credentials: restart it when it is ours.
            pid=$(our_pid "$name")
            [[ -n $pid ]] || die "$name on port $port rejects $user's password and is not ours to restart"
            kill "$pid"
            for _ in $(seq 50); do [[ $(http_status "$url") == 000 ]] && break; sleep 0.1; done
        else
            echo "$name: already running on 127.0.0.1:$port"
            return
        fi
    elif [[ $status != 000 ]]; then
        die "port $port answers HTTP $status on /v2/, expected $expect: not our $name registry"
    fi

    write_config "$name" "$port" "$auth"
    # shellcheck disable=SC2016  # expanded by the inner bash
    detached bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/pid" docker-registry serve "$dir/config.yml" \
        </dev/null >>"$state/$name.log" 2>>"$state/$name-app.log"
    for _ in $(seq 150); do
        [[ $(http_status "$url") == "$expect" ]] && break
        sleep 0.2
    done
    if [[ $(http_status "$url") != "$expect" ]]; then
        tail -n 20 "$state/$name-app.log" >&2
        die "$name did not come up on 127.0.0.1:$port"
    fi
    echo "$name: started on 127.0.0.1:$port$( ((auth)) && echo " (htpasswd user $user)") (access log $state/$name.log)"
}

ensure_registry registry-open 5000 0
ensure_registry registry-auth 5001 1
