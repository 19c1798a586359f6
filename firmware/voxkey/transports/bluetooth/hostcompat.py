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

LINUX_FOUNDATION = 0x1D6B
BLUEZ_PRODUCT = 0x0246
FIRST_AFFECTED = (5, 55)
"""The first BlueZ whose client asks for multiple notifications (commit b8b59af4e)."""
FIXED = (5, 67)
"""The first BlueZ whose hog hears them."""
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


def host_problem(modalias: str | None) -> str | None:
    """Why a host with this ``Modalias`` will type nothing, as a message for the user; None if it can."""
    version = bluez_version(modalias)
    if version is None or not FIRST_AFFECTED <= version < FIXED:
        return None
    shown = f"{version[0]}.{version[1]}"
    return (
        f"the host runs BlueZ {shown}, whose HID driver ignores the key reports every Pi's BlueZ sends it "
        "(bluez issue #71, fixed in 5.67): it would type nothing. Update BlueZ on the host to 5.67 or later "
        "(hardware/bluetooth.md, 'Hosts that type nothing'), or use voxkey over USB"
    )
