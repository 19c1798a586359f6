#!/bin/sh
# The bluetoothd builds the Bluetooth kernel tests run (tests/kernel/cases/bluetooth.py), with the
# product's own build script (hardware/bluez/build-bluetoothd.sh):
# - BlueZ 5.82 from Debian trixie's source package: a host whose hog hears what BlueZ servers send
#   (Debian bookworm ships 5.66, whose hog drops ATT Multiple Handle Value Notifications: bluez issue #71);
# - this machine's own BlueZ (bookworm's 5.66) with hardware/bluez/single-notifications.patch: what
#   install.sh --bluetoothd-for-old-hosts builds on a Pi, serving a 5.66 host.
# Idempotent: each build is kept while its inputs are the same.
set -eu
ROOT=${VOXKEY_BLUEZ_DIR:-/opt/voxkey-bluez}
BUILD="$(dirname "$0")/../../hardware/bluez/build-bluetoothd.sh"
"$BUILD" "$ROOT/install/libexec/bluetooth" --suite trixie 5.82-1.1
"$BUILD" "$ROOT/single-notifications" --patch "$(dirname "$0")/../../hardware/bluez/single-notifications.patch"
