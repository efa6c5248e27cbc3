#!/usr/bin/env bash
# Runs one command inside the Debian 13 root (debian13.mk), as root, in the repository:
#   tests/debian13/enter.sh ROOT REPO [NAME=VALUE ...] -- COMMAND [ARG ...]
# The root sees /proc, /sys, /dev, the machine's Rust toolchain (/root/.rustup, /root/.cargo)
# and the repository (and its git directory) at the same paths as here. Everything runs in a
# mount namespace of its own (unshare -m, private propagation): the mounts never show outside,
# and they go when the command ends, even on SIGKILL; the trap also unmounts them in reverse
# order on exit, error or interrupt. The command gets a clean environment (env -i) with only
# the NAME=VALUE pairs given, so nothing of this machine's (pyenv shims, venvs) leaks in.
set -euo pipefail

if [ -z "${IGUARD_DEBIAN13_NS:-}" ]; then
    export IGUARD_DEBIAN13_NS=1
    exec unshare --mount --propagation private "$0" "$@"
fi

root=$(realpath "$1")
repo=$(realpath "$2")
shift 2
vars=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do vars+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 ROOT REPO [NAME=VALUE ...] -- COMMAND [ARG ...]" >&2; exit 2; }
[ -x "$root/usr/bin/env" ] || { echo "$root is not a Debian root" >&2; exit 1; }

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
}
trap cleanup EXIT
# The command runs as a process group of its own: an interrupt stops all of it at once (the
# trap runs while `wait` waits), and only then are the mounts taken down.
child=
stop() {
    if [ -n "$child" ]; then
        kill -TERM -- "-$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM HUP

# bind SOURCE [ro]: SOURCE at the same path inside the root.
bind() {
    mkdir -p "$root$1"
    mount --rbind "$1" "$root$1"
    mount --make-rslave "$root$1"
    mounted+=("$root$1")
    if [ "${2:-}" = ro ]; then mount -o remount,bind,ro "$root$1"; fi
}

mount -t proc proc "$root/proc"
mounted+=("$root/proc")
bind /sys
bind /dev
bind /root/.rustup
bind /root/.cargo
bind "$repo"
# A worktree's .git is a file naming the main repository's git directory: show that too.
common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
case "$common" in
    "" | "$repo"/*) ;;
    *) bind "$common" ;;
esac
# The network as this machine sees it: its resolver, and its trusted certificates (a proxy's CA
# included) bound read-only at a path of their own, which the command's TLS clients are pointed
# at. Not over the root's own bundle: ca-certificates' postinst replaces that file, and a file
# mounted over cannot be replaced (a fresh root's package install then fails).
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
bundle=/run/iguard-host-ca-certificates.crt
host_bundle=/etc/ssl/certs/ca-certificates.crt
if [ -f "$host_bundle" ]; then
    mkdir -p "$root/run"
    touch "$root$bundle"
    mount --bind "$host_bundle" "$root$bundle"
    mount -o remount,bind,ro "$root$bundle"
    mounted+=("$root$bundle")
else
    bundle=/etc/ssl/certs/ca-certificates.crt
fi

setsid chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
    SSL_CERT_FILE=$bundle PIP_CERT=$bundle REQUESTS_CA_BUNDLE=$bundle CURL_CA_BUNDLE=$bundle \
    GIT_SSL_CAINFO=$bundle CARGO_HTTP_CAINFO=$bundle \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${vars[@]}" /bin/bash -c 'cd "$0" && exec "$@"' "$repo" "$@" <&0 &
child=$!
rc=0
wait "$child" || rc=$?
child=
exit "$rc"
