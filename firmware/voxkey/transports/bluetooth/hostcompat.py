"""Hosts whose Bluetooth stack cannot receive voxkey's keys: BlueZ 5.55 to 5.66 (Debian 12, Ubuntu 22.04).

Why no key arrives. BlueZ's GATT server (the Pi's bluetoothd, every version
from 5.55 to today's) sends each notification as an ATT *Multiple* Handle Value
Notification (opcode 0x23) whenever the connected client wrote bit 2
("multiple handle value notifications") into its Client Supported Features
characteristic, and as a plain Handle Value Notification (0x1B) otherwise
(``send_notification_to_device`` in ``src/gatt-database.c``). That is the only
input to the choice: no ``main.conf`` option changes it, and a value written
through ``AcquireNotify``'s socket takes the same path as one emitted as a
``PropertiesChanged`` signal. BlueZ's own GATT client sets the bit on every
connection since 5.55 (``src/shared/gatt-client.c``), but the HID-over-GATT
driver (``hog``) of 5.55 to 5.66 only listens for 0x1B and drops the rest
(bluez issue #71, fixed in 5.67 by commit 2f4c576ad). The host's controller
still acknowledges the packets, so the link looks healthy while the host's
keyboard types nothing.

The way round it on the Pi: a bluetoothd patched to pass "not multiple" there
(``hardware/bluez/single-notifications.patch``), built from the Pi's own BlueZ
source package and run by systemd through a drop-in, both by ``install.sh
--bluetoothd-for-old-hosts``. With that drop-in in place these hosts are not
refused (``single_notifications_bluetoothd``).

How voxkey knows. bluetoothd reads the Device Information service of every
host that connects ("reverse service discovery", on by default) and shows its
PnP ID as the device's ``Modalias``. A BlueZ host reports the Linux Foundation
vendor (0x1D6B), product 0x0246 and its own version as ``major << 8 | minor``
(``src/main.c``), so Debian's 5.66 is ``usb:v1D6Bp0246d0542``. Hosts that
run another stack (Android, iOS, Windows, macOS) or hide their version are
not affected and not flagged.
"""

from __future__ import annotations

import re
from pathlib import Path

LINUX_FOUNDATION = 0x1D6B
BLUEZ_PRODUCT = 0x0246
FIRST_AFFECTED = (5, 55)
"""The first BlueZ whose client asks for multiple notifications (commit b8b59af4e)."""
FIXED = (5, 67)
"""The first BlueZ whose hog hears them."""
SINGLE_NOTIFICATIONS_DROPIN = Path("/etc/systemd/system/bluetooth.service.d/voxkey-bluetoothd.conf")
"""Written by ``install.sh --bluetoothd-for-old-hosts``: systemd runs the patched bluetoothd it names."""
MODALIAS = re.compile(r"^(?:usb|bluetooth):v([0-9A-Fa-f]{4})p([0-9A-Fa-f]{4})d([0-9A-Fa-f]{4})$")


def bluez_version(modalias: str | None) -> tuple[int, int] | None:
    """The host's BlueZ version from its ``Modalias``, or None if the host does not say it runs BlueZ."""
    match = MODALIAS.match(modalias or "")
    if match is None:
        return None
    vendor, product, version = (int(group, 16) for group in match.groups())
    if (vendor, product) != (LINUX_FOUNDATION, BLUEZ_PRODUCT):
        return None
    return version >> 8, version & 0xFF


def _affected_version(modalias: str | None) -> tuple[int, int] | None:
    """The host's BlueZ version if it is one whose hog drops multiple notifications (5.55-5.66), else None."""
    version = bluez_version(modalias)
    return version if version is not None and FIRST_AFFECTED <= version < FIXED else None


def single_notifications_bluetoothd(dropin: Path | None = None) -> Path | None:
    """The patched bluetoothd systemd runs instead of the packaged one, if ``install.sh`` set one up.

    Read from the drop-in, not from the running process: voxkey's unit cannot see other processes
    (``ProtectProc=invisible``). ``install.sh`` restarts bluetoothd when it writes the drop-in.
    """
    try:
        lines = (dropin or SINGLE_NOTIFICATIONS_DROPIN).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    commands = [line.split("=", 1)[1].split() for line in lines if line.strip().startswith("ExecStart=")]
    binary = Path(commands[-1][0]) if commands and commands[-1] else None
    return binary if binary is not None and binary.is_file() else None


def host_problem(modalias: str | None, dropin: Path | None = None) -> str | None:
    """Why a host with this ``Modalias`` will type nothing, as a message for the user; None if it can."""
    version = _affected_version(modalias)
    if version is None or single_notifications_bluetoothd(dropin) is not None:
        return None
    shown = f"{version[0]}.{version[1]}"
    return (
        f"the host runs BlueZ {shown}, whose HID driver ignores the key reports every Pi's BlueZ sends it "
        "(bluez issue #71, fixed in 5.67): it would type nothing. Update BlueZ on the host to 5.67 or later, "
        "or give the Pi a bluetoothd that sends single notifications (sudo ./install.sh "
        "--bluetoothd-for-old-hosts; hardware/bluetooth.md, 'Hosts that type nothing'), or use voxkey over USB"
    )


def unheard_notifications(modalias: str | None, multiple_sent: int) -> str | None:
    """What went wrong if the Pi's bluetoothd sent Multiple Handle Value Notifications to an affected host.

    The drop-in says a rebuilt bluetoothd runs, but only the air can prove it: a bluetoothd not restarted
    since ``install.sh``, or a drop-in naming a stock build, still batches. The HCI monitor counts what was
    sent (``DeliveryLedger.notification_pdus``); the keys in those PDUs never typed.
    """
    version = _affected_version(modalias)
    if not multiple_sent or version is None:
        return None
    return (
        f"the Pi's bluetoothd sent {multiple_sent} Multiple Handle Value Notifications to this host, whose BlueZ "
        f"{version[0]}.{version[1]} drops them: those keys never typed. Restart it (sudo systemctl restart "
        "bluetooth) so the bluetoothd of install.sh --bluetoothd-for-old-hosts runs"
    )
