#!/usr/bin/env bash
# Builds the images of an offline compose deployment locally (no registry is reachable), from
# Debian's packages. Idempotent: skips what exists.
#   containerizer-ci/debian-python:bookworm  debootstrap minbase + python3, python3-venv,
#                                            ca-certificates and gpgv: the Dockerfile's BASE_IMAGE
#   containerizer-ci/redis:bookworm          that rootfs + Debian's redis-server, a `redis` user
#                                            owning /data: docker-compose.yml's REDIS_IMAGE
# Each rootfs is kept as a tarball in $CONTAINERIZER_CI_STATE/base-images, so that a run whose
# images were removed only imports it (seconds) instead of bootstrapping again (about a minute).
# A change of a recipe below changes its cache key (a label of the image, part of the tarball's
# name), which rebuilds it. Delete the tarballs to pick up Debian's newer packages.
#
# Env: CONTAINERIZER_CI_STATE       (default /var/tmp/containerizer-ci)
#      CONTAINERIZER_DEBIAN_MIRROR  (default: the first bookworm URI of the machine's apt sources)
set -euo pipefail

state=${CONTAINERIZER_CI_STATE:-/var/tmp/containerizer-ci}
cache=$state/base-images
suite=bookworm
base_image=containerizer-ci/debian-python:$suite
redis_image=containerizer-ci/redis:$suite
# gpgv: minbase's apt cannot verify the archive without it (the Redis image's apt-get needs it).
debootstrap_args=(--variant=minbase "--include=python3,python3-venv,ca-certificates,gpgv" "$suite")
redis_recipe="apt-get install --no-install-recommends redis-server; user redis owns /data"
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unset DOCKER_HOST DOCKER_CONTEXT
mkdir -p "$cache"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

exec 6>"$state/base-images.lock"
flock -w 900 6 || die "waited 15 min for $state/base-images.lock"

# What a killed run left (the lock says no other run is using it).
rm -rf "$cache"/work.* "$cache"/*.partial
# Scratch space beside the cache: the same filesystem (device nodes allowed, a rename publishes a
# tarball) and not /tmp, which may be a small tmpfs.
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log

# Runs a command with its output kept in $log; shows the output only when it fails.
quiet() { "$@" >"$log" 2>&1 || { tail -n 40 "$log" >&2; die "failed: $*"; }; }
key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }
base_key=$(key_of "${debootstrap_args[@]}")
redis_key=$(key_of "$base_key" "$redis_recipe")
base_tar=$cache/debian-python-$suite-$base_key.tar
redis_tar=$cache/redis-$suite-$redis_key.tar

# image_is NAME KEY: the image exists and was imported from the recipe with that key.
image_is() {
    [[ $(docker image inspect -f '{{index .Config.Labels "containerizer-ci.recipe"}}' "$1" 2>/dev/null) == "$2" ]]
}

# The first URI of the machine's apt sources (deb822 or one-line) that serves the suite itself.
debian_mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -e $file ]] || continue
        awk -v suite="$suite" '
            /^[[:space:]]*$/ { if (deb && uri && has) { print uri; exit } deb = uri = has = 0; next }
            $1 == "Types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            $1 == "URIs:" { uri = $2 }
            $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
            END { if (deb && uri && has) print uri }' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $file ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -E 's/\[[^]]*\]//' "$file" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }'
    done
}

# tar_rootfs DIR TARBALL: DIR as a tarball, published by a rename (never a half-written cache).
tar_rootfs() {
    # Docker gives a container its own /dev, /proc, /sys and resolv.conf at run time.
    rm -rf "${1:?}"/dev/* "$1/etc/resolv.conf" "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*
    tar -C "$1" --numeric-owner -cf "$2.partial" .
    mv "$2.partial" "$2"
}

# import_image TARBALL NAME KEY CHANGES...: docker import, with the recipe's key as a label.
import_image() {
    local tarball=$1 name=$2 key=$3 change
    shift 3
    local changes=(--change "LABEL containerizer-ci.recipe=$key" --change "ENV $path_env")
    for change in "$@"; do changes+=(--change "$change"); done
    quiet docker import "${changes[@]}" "$tarball" "$name"
}

# --- the base rootfs -------------------------------------------------------------------------
ensure_base_tarball() {
    [[ -s $base_tar ]] && return
    if ! command -v debootstrap >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        quiet apt-get update -qq
        quiet apt-get install -y -qq debootstrap
    fi
    local mirror=${CONTAINERIZER_DEBIAN_MIRROR:-$(debian_mirror | head -n 1)}
    [[ -n $mirror ]] || die "no $suite mirror in the apt sources: set CONTAINERIZER_DEBIAN_MIRROR"
    local started=$SECONDS rootfs=$work/base
    # In a mount namespace of its own: whatever debootstrap mounts in the target (/proc, /sys, a
    # bind of /dev inside a container) is gone when it exits, even when it fails half-way, so
    # removing the directory afterwards never reaches the host's.
    quiet unshare --mount debootstrap "${debootstrap_args[@]}" "$rootfs" "$mirror"
    tar_rootfs "$rootfs" "$base_tar"
    base_built="debootstrap from $mirror in $((SECONDS - started)) s"
}

base_built=""
if image_is "$base_image" "$base_key"; then
    base_status=present
else
    ensure_base_tarball
    import_image "$base_tar" "$base_image" "$base_key" 'CMD ["python3"]'
    base_status="imported from the cached $base_tar"
    [[ -z $base_built ]] || base_status="built ($base_built), cached in $base_tar"
fi
echo "image $base_image: $base_status"

# --- redis on the same rootfs ----------------------------------------------------------------
ensure_redis_tarball() {
    [[ -s $redis_tar ]] && return
    ensure_base_tarball
    local started=$SECONDS rootfs=$work/redis
    mkdir "$rootfs"
    tar -C "$rootfs" --numeric-owner -xpf "$base_tar"
    # The chroot uses the host's network (the mirror works there, unlike TLS inside containers)
    # and must not start the redis it installs: policy-rc.d forbids every service start.
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    # shellcheck disable=SC2016  # expanded by the inner sh
    quiet unshare --mount --fork sh -ec '
        mount -t proc proc "$1/proc"
        mount --rbind /dev "$1/dev"
        exec chroot "$1" sh -ec "
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends redis-server
            getent passwd redis >/dev/null || useradd --system --user-group --home-dir /data redis
            mkdir -p /data
            chown redis:redis /data
            apt-get clean"' _ "$rootfs"
    rm -f "$rootfs/usr/sbin/policy-rc.d"
    # shellcheck disable=SC2016  # dpkg-query's format, not a shell expansion
    redis_built="redis-server $(chroot "$rootfs" dpkg-query -W -f '${Version}' redis-server) installed in $((SECONDS - started)) s"
    tar_rootfs "$rootfs" "$redis_tar"
}

redis_built=""
if image_is "$redis_image" "$redis_key"; then
    redis_status=present
else
    ensure_redis_tarball
    import_image "$redis_tar" "$redis_image" "$redis_key" 'WORKDIR /data' 'USER redis' \
        'EXPOSE 6379' 'CMD ["redis-server", "--dir", "/data"]'
    redis_status="imported from the cached $redis_tar"
    [[ -z $redis_built ]] || redis_status="built ($redis_built), cached in $redis_tar"
fi
echo "image $redis_image: $redis_status"
