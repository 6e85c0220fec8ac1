#!/usr/bin/env bash
# Builds the test images locally (no registry is reachable) and pushes them into the local
# registries started by scripts/registry.sh. Idempotent: skips what exists.
#   containerizer-test/busybox:latest                  local: static busybox + applet links, CMD ["sh"]
#   127.0.0.1:5000/containerizer-test/busybox:latest   in the open registry
#   127.0.0.1:5001/containerizer-test/busybox:latest   in the auth registry
#   127.0.0.1:5000/containerizer-test/big:latest       busybox + a ~100 MB layer of random bytes
# The registry-prefixed tags are removed locally after the push, so tests pull them fresh.
#
# Env: CONTAINERIZER_CI_STATE, CONTAINERIZER_TEST_REGISTRY_USER / _PASSWORD (as in registry.sh).
set -euo pipefail

state=${CONTAINERIZER_CI_STATE:-/var/tmp/containerizer-ci}
user=${CONTAINERIZER_TEST_REGISTRY_USER:-containerizer}
password=${CONTAINERIZER_TEST_REGISTRY_PASSWORD:-s3cret-test-pass}
base=containerizer-test/busybox:latest
unset DOCKER_HOST DOCKER_CONTEXT
export DOCKER_BUILDKIT=0  # the classic builder needs no buildx plugin
mkdir -p "$state"
exec 7>"$state/test-images.lock"
flock -w 900 7 || { echo "test-images.sh: waited 15 min for $state/test-images.lock" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log

die() { echo "test-images.sh: $*" >&2; exit 1; }
# Runs a command with its output kept in $log; shows the output only when it fails.
quiet() { "$@" >"$log" 2>&1 || { cat "$log" >&2; die "failed: $*"; }; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# registry_has HOSTPORT REPO TAG [curl args...]: the registry lists the tag.
registry_has() {
    local hostport=$1 repo=$2 tag=$3
    shift 3
    curl -sf -m 10 "$@" "http://$hostport/v2/$repo/tags/list" 2>/dev/null | grep -q "\"$tag\""
}

# push_to HOSTPORT LOCAL_IMAGE REPO [docker global args...]: tag, push, untag.
push_to() {
    local hostport=$1 image=$2 repo=$3 target
    shift 3
    target=$hostport/$repo:latest
    quiet docker tag "$image" "$target"
    quiet docker "$@" push "$target"
    quiet docker rmi "$target"
}

# --- containerizer-test/busybox:latest --------------------------------------------------
if have_image "$base"; then
    base_status=present
else
    busybox=/bin/busybox
    [[ -x $busybox ]] || die "$busybox missing: apt-get install busybox-static"
    rootfs=$work/rootfs
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,tmp,var/tmp}
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    chmod 700 "$rootfs/root"
    cp "$busybox" "$rootfs/bin/busybox"
    # Applet links exactly where busybox --install -s would put them.
    "$busybox" --list-full | while read -r applet; do
        [[ -e $rootfs/$applet || -L $rootfs/$applet ]] || ln -s /bin/busybox "$rootfs/$applet"
    done
    cat >"$rootfs/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
    cat >"$rootfs/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
    # A deterministic tar (sorted, fixed owner and mtime) gives the same layer digest every build.
    tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/rootfs.tar" .
    quiet docker import \
        --change 'CMD ["sh"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$work/rootfs.tar" "$base"
    base_status=built
fi
echo "image $base: $base_status"

# --- busybox in both registries ------------------------------------------------------------
if registry_has 127.0.0.1:5000 containerizer-test/busybox latest; then
    open_status=present
else
    push_to 127.0.0.1:5000 "$base" containerizer-test/busybox
    open_status=pushed
fi
if registry_has 127.0.0.1:5001 containerizer-test/busybox latest -u "$user:$password"; then
    auth_status=present
else
    # A throwaway client config keeps the credentials out of root's ~/.docker.
    mkdir "$work/docker-config"
    quiet docker --config "$work/docker-config" login -u "$user" --password-stdin 127.0.0.1:5001 <<<"$password"
    push_to 127.0.0.1:5001 "$base" containerizer-test/busybox --config "$work/docker-config"
    quiet docker --config "$work/docker-config" logout 127.0.0.1:5001
    auth_status=pushed
fi
echo "image 127.0.0.1:5000/containerizer-test/busybox:latest: $open_status; 127.0.0.1:5001/containerizer-test/busybox:latest: $auth_status"

# --- big image for pull timing -------------------------------------------------------------
big=127.0.0.1:5000/containerizer-test/big:latest
if registry_has 127.0.0.1:5000 containerizer-test/big latest; then
    big_status=present
else
    mkdir "$work/big"
    cat >"$work/big/Dockerfile" <<D
FROM $base
RUN dd if=/dev/urandom of=/random.bin bs=1M count=100 2>/dev/null
D
    # A tag left by an earlier pull would otherwise move to the new build and leave a dangling image.
    docker image rm "$big" >/dev/null 2>&1 || true
    quiet docker build -q -t "$big" "$work/big"
    quiet docker push "$big"
    quiet docker rmi "$big"
    big_status=pushed
fi
echo "image $big: $big_status ($(du -sh "$state/registry-open/data" 2>/dev/null | cut -f1) in registry-open storage)"
