#!/bin/sh
# bluetoothd >= 5.67 for the Bluetooth kernel tests (Debian bookworm ships 5.66, whose hog plugin
# drops ATT Multiple Handle Value Notifications: bluez issue #71). Built from Debian trixie's
# source package with a private apt configuration, so the machine's own sources stay bookworm.
set -eu
ROOT=${VOXKEY_BLUEZ_DIR:-/opt/voxkey-bluez}
VERSION=5.82
[ -x "$ROOT/install/libexec/bluetooth/bluetoothd" ] && exit 0
mkdir -p "$ROOT/apt/lists/partial" "$ROOT/apt/cache/archives/partial"
echo 'deb-src http://deb.debian.org/debian trixie main' > "$ROOT/apt/sources.list"
apt_private() {
    apt-get -o "Dir::Etc::SourceList=$ROOT/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o "Dir::State::Lists=$ROOT/apt/lists" -o "Dir::Cache=$ROOT/apt/cache" "$@"
}
apt-get install -y -qq --no-install-recommends gcc make libc6-dev libglib2.0-dev libdbus-1-dev libudev-dev >/dev/null
apt_private update -qq
cd "$ROOT"
apt_private source --download-only "bluez=$VERSION-1.1"
rm -rf "bluez-$VERSION"
tar xzf "bluez_$VERSION.orig.tar.gz"
cd "bluez-$VERSION"
./configure --prefix="$ROOT/install" --sysconfdir=/etc --localstatedir=/var \
    --disable-manpages --disable-cups --disable-obex --disable-client --disable-tools \
    --disable-monitor --disable-systemd --disable-datafiles --disable-midi --disable-mesh \
    --disable-library >/dev/null
make -j"$(nproc)" >/dev/null
install -D -m 755 src/bluetoothd "$ROOT/install/libexec/bluetooth/bluetoothd"
