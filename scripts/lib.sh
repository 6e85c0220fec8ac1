# Sourced by the scripts beside it: what they share.

# die MESSAGE...: print "SCRIPT: MESSAGE" on stderr and exit 1.
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# detached CMD...: starts CMD in the background (one fork, then exec: no shell stays behind) in a
# session of its own, with no inherited descriptor above 2, so that a daemon holds neither our lock
# nor a caller's pipe (make, CI) open after this script ends. $! is CMD's pid.
detached() {
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then exec {fd}>&-; fi
        done
        exec setsid "$@"
    ) &
}
