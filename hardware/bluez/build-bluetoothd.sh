#!/bin/sh
# Build only bluetoothd from a Debian/Raspberry Pi OS BlueZ source package, optionally patched.
#
#   build-bluetoothd.sh DEST                          this system's own BlueZ (the installed version, from
#                                                     the system's own apt sources), into DEST/bluetoothd
#   build-bluetoothd.sh DEST --suite trixie 5.82-1.1  that version from Debian's SUITE instead
#   ... --patch FILE                                  apply FILE (patch -p1) after the package's own patches
#
# install.sh --bluetoothd-for-old-hosts runs it with single-notifications.patch (hardware/bluetooth.md,
# "Hosts that type nothing"); the kernel tests run it for their bluetoothd builds. The source comes
# through apt (signed archives) with a private apt configuration: deb-src lines made from the system's
# own deb lines, or one Debian suite, so the system's sources are never touched. Idempotent: an
# existing DEST/bluetoothd built from the same inputs is kept.
set -eu
usage() { echo "usage: $0 DEST [--suite SUITE VERSION] [--patch FILE]..." >&2; exit 2; }
[ $# -ge 1 ] || usage
DEST=$1; shift
SUITE=; VERSION=; PATCHES=
while [ $# -gt 0 ]; do
    case $1 in
        --suite) [ $# -ge 3 ] || usage; SUITE=$2; VERSION=$3; shift 3 ;;
        --patch) [ $# -ge 2 ] || usage; PATCHES="$PATCHES $(readlink -f "$2")"; shift 2 ;;
        *) usage ;;
    esac
done
if [ -z "$VERSION" ]; then
    VERSION=$(dpkg-query -W -f '${Version}' bluez 2>/dev/null) || {
        echo "$0: the bluez package is not installed: nothing to rebuild" >&2; exit 1; }
fi
STAMP="bluez $VERSION${SUITE:+ from $SUITE}; patches:"
for patch in $PATCHES; do STAMP="$STAMP $(sha256sum "$patch" | cut -c1-16)"; done
if [ -x "$DEST/bluetoothd" ] && [ "$(cat "$DEST/bluetoothd.built-from" 2>/dev/null)" = "$STAMP" ]; then
    exit 0
fi

WORK=$(mktemp -d /var/tmp/voxkey-bluez.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/apt/sources.list.d"
if [ -n "$SUITE" ]; then
    echo "deb-src http://deb.debian.org/debian $SUITE main" > "$WORK/apt/sources.list"
else  # the system's own archives (Debian's, and on a Pi archive.raspberrypi.com's), as deb-src
    : > "$WORK/apt/sources.list"
    for list in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$list" ] && sed -n 's/^deb \(.*\)/deb-src \1/p' "$list" >> "$WORK/apt/sources.list"
    done
    for sources in /etc/apt/sources.list.d/*.sources; do
        [ -f "$sources" ] && sed 's/^Types:.*/Types: deb-src/' "$sources" > "$WORK/apt/sources.list.d/${sources##*/}"
    done
fi
apt_private() {
    apt-get -o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o "Dir::Etc::SourceParts=$WORK/apt/sources.list.d" \
        -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache" "$@"
}
apt-get install -y -qq --no-install-recommends gcc make libc6-dev libglib2.0-dev libdbus-1-dev libudev-dev \
    dpkg-dev patch autoconf automake libtool >/dev/null
apt_private update -qq
cd "$WORK"
apt_private source --download-only -qq "bluez=$VERSION"
dpkg-source --no-check -x bluez_*.dsc source >/dev/null  # apt checked the archive's signatures and hashes
cd source
for patch in $PATCHES; do patch -p1 --quiet < "$patch"; done
[ -x configure ] || autoreconf -fi >/dev/null 2>&1  # Debian's bookworm package ships the source without it
# Only the daemon; --localstatedir=/var keeps the bonds where the packaged daemon keeps them.
./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
    --disable-manpages --disable-cups --disable-obex --disable-client --disable-tools \
    --disable-monitor --disable-systemd --disable-datafiles --disable-midi --disable-mesh \
    --disable-library >/dev/null
make -j"$(nproc)" >/dev/null
install -D -m 755 src/bluetoothd "$DEST/bluetoothd"
echo "$STAMP" > "$DEST/bluetoothd.built-from"
