#!/usr/bin/env bash
# Builds the real Asterisk 22 the integration tests run: a Debian unstable (sid) chroot with the
# `asterisk` packages, cached under /var/cache/pbxsync/asterisk-sid (override: PBXSYNC_ASTERISK_ROOT).
#
# - Idempotent: a stamp file inside the chroot marks a finished build; a second run (from any clone) is
#   instant. Changing RECIPE below forces a rebuild.
# - Safe after a half-finished run: the chroot is built in a temporary sibling directory and renamed into
#   place only when complete; leftovers of interrupted builds are removed first.
# - Safe when two runs race (two checkouts running `make pytest`): the build holds a lock.
# Needs root (debootstrap, chroot) and network access to the Debian archive.
set -euo pipefail

ROOT="${PBXSYNC_ASTERISK_ROOT:-/var/cache/pbxsync/asterisk-sid}"
MIRROR="${PBXSYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the chroot holds; bump the version when the package list or the steps change.
PACKAGES=(asterisk asterisk-modules asterisk-core-sounds-en-gsm)
RECIPE="pbxsync-asterisk-recipe-1 ${PACKAGES[*]}"
STAMP_NAME=".pbxsync-asterisk-ready"

log() { printf '[setup-asterisk] %s\n' "$*"; }

is_ready() {
    [ -f "$ROOT/$STAMP_NAME" ] && [ "$(cat "$ROOT/$STAMP_NAME")" = "$RECIPE" ] && [ -x "$ROOT/usr/sbin/asterisk" ]
}

if is_ready; then
    log "ready: $ROOT ($(cat "$ROOT/etc/pbxsync-asterisk-version" 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-asterisk.sh must run as root (debootstrap and chroot need it); try: sudo make asterisk" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is missing; run: bash scripts/setup-system-deps.sh (or apt-get install debootstrap)" >&2
    exit 1
}

PARENT="$(dirname "$ROOT")"
BASE="$(basename "$ROOT")"
mkdir -p "$PARENT"

exec 9>"$PARENT/.$BASE.lock"
log "waiting for the build lock $PARENT/.$BASE.lock"
flock 9
if is_ready; then  # another run finished it while we waited
    log "ready: $ROOT (built by a concurrent run)"
    exit 0
fi

unmount_under() {  # never delete through a live mount
    local dir="$1" m
    # deepest first
    for m in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" || true
    done
}

for stale in "$PARENT/$BASE".partial.* "$PARENT/$BASE".old.*; do
    [ -e "$stale" ] || continue
    log "removing leftover of an interrupted build: $stale"
    unmount_under "$stale"
    rm -rf --one-file-system "$stale"
done

START=$(date +%s)
WORK="$(mktemp -d "$PARENT/$BASE.partial.XXXXXX")"
cleanup() { unmount_under "$WORK"; }
trap cleanup EXIT

log "debootstrap --variant=minbase sid into $WORK (from $MIRROR)"
debootstrap --variant=minbase sid "$WORK" "$MIRROR" >"$WORK.debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK.debootstrap.log" >&2
    [ -f "$WORK/debootstrap/debootstrap.log" ] && tail -n 30 "$WORK/debootstrap/debootstrap.log" >&2
    echo "debootstrap failed; full log: $WORK.debootstrap.log" >&2
    exit 1
}
rm -f "$WORK.debootstrap.log"
log "debootstrap done after $(( $(date +%s) - START ))s"

# No service may start inside the chroot while packages install.
printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d"
chmod +x "$WORK/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$WORK/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$WORK/proc"
mount -t proc proc "$WORK/proc"

APT_OPTS=(-o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root -o APT::Install-Recommends=false -o Dpkg::Use-Pty=0 -q)
log "apt-get install ${PACKAGES[*]} inside the chroot"
chroot "$WORK" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get "${APT_OPTS[@]}" update >/dev/null
chroot "$WORK" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get "${APT_OPTS[@]}" -y install "${PACKAGES[@]}" >"$WORK.apt.log" 2>&1 || {
    tail -n 40 "$WORK.apt.log" >&2
    echo "apt-get install failed; full log: $WORK.apt.log" >&2
    exit 1
}
rm -f "$WORK.apt.log"
chroot "$WORK" apt-get clean
umount -l "$WORK/proc"

VERSION="$(chroot "$WORK" /usr/sbin/asterisk -V)"
case "$VERSION" in
    "Asterisk 22"*) ;;
    *) echo "expected Asterisk 22 in the chroot, got: $VERSION" >&2; exit 1 ;;
esac
echo "$VERSION" >"$WORK/etc/pbxsync-asterisk-version"
printf '%s' "$RECIPE" >"$WORK/$STAMP_NAME"

# Swap into place; an older (e.g. previous-recipe) chroot is moved aside first, then removed.
if [ -e "$ROOT" ]; then
    OLD="$PARENT/$BASE.old.$$"
    mv "$ROOT" "$OLD"
    unmount_under "$OLD"
    rm -rf --one-file-system "$OLD"
fi
mv "$WORK" "$ROOT"
trap - EXIT
log "ready: $ROOT ($VERSION) built in $(( $(date +%s) - START ))s"
